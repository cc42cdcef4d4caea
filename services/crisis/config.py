"""Crisis-specific settings (environment), next to the shared plumbing settings."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(__file__).resolve().parent / "data"


class CrisisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    resources_file: Path = Field(default=DATA_DIR / "crisis_resources.yaml", alias="CRISIS_RESOURCES_FILE")
    # Ladder step delays live here: tests point this at a file with delays of seconds.
    policy_file: Path = Field(default=DATA_DIR / "ladder_policies.yaml", alias="CRISIS_POLICY_FILE")
    # A timer claim is held this long; a crashed holder's claim lapses and another instance takes over.
    lease_s: float = Field(default=10.0, alias="CRISIS_TIMER_LEASE_S")
    timer_poll_s: float = Field(default=0.1, alias="CRISIS_TIMER_POLL_S")
    timer_concurrency: int = Field(default=16, alias="CRISIS_TIMER_CONCURRENCY")
    # Paging gateway (telephony/SMS bridge) notified on every ladder rung; unset: events only.
    paging_url: str | None = Field(default=None, alias="CRISIS_PAGING_URL")
    paging_timeout_s: float = Field(default=1.0, alias="CRISIS_PAGING_TIMEOUT_S")
    # Consumers of the disconnection topics in this process (same group: they split the partitions).
    drop_consumers: int = Field(default=1, alias="CRISIS_DROP_CONSUMERS")
    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", alias="CRISIS_INSTANCE_ID"
    )


@lru_cache(maxsize=1)
def get_crisis_settings() -> CrisisSettings:
    return CrisisSettings()
