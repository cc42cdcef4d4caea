"""Settings of the compliance service beyond the shared ones (environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ComplianceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # How often the periodic job closes attended days and checks expiries.
    monitor_interval_s: float = Field(default=30.0, alias="COMPLIANCE_MONITOR_INTERVAL_S")
    # How old a cached credential / client-record snapshot may be on the EvaluateSession path
    # (this process's own writes invalidate at once; other instances' within this TTL).
    read_cache_ttl_s: float = Field(default=2.0, alias="COMPLIANCE_READ_CACHE_TTL_S")
