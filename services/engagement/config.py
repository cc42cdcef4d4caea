"""Engagement-only settings (environment), next to the shared plumbing settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only webhook secret; refused outside local/test/ci (see check_production_safety).
DEV_WEBHOOK_SECRET = "iop-local-video-webhook-secret"


class EngagementConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    http_host: str = Field(default="127.0.0.1", alias="ENGAGEMENT_HTTP_HOST")
    http_port: int = Field(default=8082, alias="ENGAGEMENT_HTTP_PORT")
    webhook_secret: str = Field(default=DEV_WEBHOOK_SECRET, alias="ENGAGEMENT_WEBHOOK_SECRET")
    # The faust worker: its app id (consumer group, changelog and internal topic prefix) is
    # "<KAFKA_GROUP_PREFIX>.engagement.worker"; snapshots of its tables are flushed this often.
    worker_flush_interval_s: float = Field(default=0.5, alias="ENGAGEMENT_WORKER_FLUSH_S")
    # The worker folds session-keyed records in batches of at most this many, waiting at most this
    # long for a batch to fill; each session's state is written to its changelog once per batch.
    worker_batch_max: int = Field(default=500, ge=1, alias="ENGAGEMENT_WORKER_BATCH_MAX")
    worker_batch_within_s: float = Field(default=0.05, gt=0, alias="ENGAGEMENT_WORKER_BATCH_WITHIN_S")
    # Where the ledger consumer starts when its group has no committed offsets yet: earliest
    # (default: a new deployment replays every booked session) or latest (test runs, which share
    # the broker's history with every earlier run and only care about what they publish).
    ledger_start: str = Field(default="earliest", alias="ENGAGEMENT_LEDGER_START")
    # Where the faust worker starts when its group has no committed offsets yet.
    worker_offset_reset: str = Field(default="earliest", alias="ENGAGEMENT_WORKER_OFFSET_RESET")
    # Benchmarks and load tests only: put accepted signals on another topic than the contract one,
    # so a load test's signals do not land in every consumer of iop.engagement.signals.v1.
    signals_topic: str = Field(default="iop.engagement.signals.v1", alias="ENGAGEMENT_SIGNALS_TOPIC")
    # A crashed worker's partitions are reassigned after this long (Kafka group session timeout).
    worker_session_timeout_s: float = Field(default=10.0, alias="ENGAGEMENT_WORKER_SESSION_TIMEOUT_S")
    # Faust's local data directory (the tables themselves live in memory + their changelog topics).
    worker_datadir: str = Field(default="/tmp/iop-engagement-worker", alias="ENGAGEMENT_WORKER_DATADIR")
    # Benchmarks only: the worker writes per-signal latency figures to this file.
    worker_stats_path: str | None = Field(default=None, alias="ENGAGEMENT_WORKER_STATS_PATH")

    def check_production_safety(self, environment: str) -> None:
        if environment not in ("local", "test", "ci") and self.webhook_secret == DEV_WEBHOOK_SECRET:
            raise RuntimeError("ENGAGEMENT_WEBHOOK_SECRET must be set outside local/test environments")


@lru_cache(maxsize=1)
def get_config() -> EngagementConfig:
    return EngagementConfig()
