"""Scheduler-specific settings (environment), next to the shared plumbing settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.scheduler.domain import DEFAULT_ATTENDANCE_GRACE_MIN


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Minutes of attendance EndSession accepts beyond the minutes a session ran from StartSession
    # (the video platform's clock, a client admitted just before the session was started). The
    # demo plays a three-hour session in seconds and runs with a day's grace (launcher.DEMO_ENV).
    attendance_grace_min: int = Field(
        default=DEFAULT_ATTENDANCE_GRACE_MIN, ge=0, le=24 * 60, alias="SCHEDULER_ATTENDANCE_GRACE_MIN"
    )


@lru_cache(maxsize=1)
def get_scheduler_settings() -> SchedulerSettings:
    return SchedulerSettings()
