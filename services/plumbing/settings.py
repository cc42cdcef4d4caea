"""Settings from the environment (pydantic-settings).

Every infrastructure endpoint can be overridden, so the same code and tests run
against the local stack (deploy/local/infra.sh), docker-compose or a real cluster.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only signing key. Any deployment whose environment is not
# "local" or "test" refuses to start with it (see Settings.check_production_safety).
DEV_JWT_SECRET = "iop-local-development-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    environment: str = Field(default="local", alias="DEPLOYMENT_ENVIRONMENT")
    service_version: str = Field(default="0.1.0", alias="SERVICE_VERSION")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_partitions: int = Field(default=3, alias="KAFKA_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(default=1, alias="KAFKA_REPLICATION_FACTOR")
    # Consumer groups are "<prefix>.<service>.<purpose>"; test runs use their own prefix.
    kafka_group_prefix: str = Field(default="iop", alias="KAFKA_GROUP_PREFIX")
    # Where a consumer group that has never committed starts: "earliest" (default: a new
    # service consumes everything retained) or "latest" (test runs, which use fresh groups
    # on a broker that keeps other runs' history).
    kafka_new_group_start: str = Field(default="earliest", alias="KAFKA_NEW_GROUP_START")

    mongodb_uri: str = Field(default="mongodb://127.0.0.1:27017/", alias="MONGODB_URI")
    # Prefix for database names, so test runs and benchmarks can use their own databases.
    mongodb_database_prefix: str = Field(default="iop_", alias="MONGODB_DATABASE_PREFIX")

    otel_exporter_otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    zipkin_endpoint: str = Field(default="http://127.0.0.1:9411/api/v2/spans", alias="ZIPKIN_ENDPOINT")
    otel_traces_sampler_ratio: float | None = Field(default=None, alias="OTEL_TRACES_SAMPLER_RATIO")
    otel_export_delay_ms: int = Field(default=500, gt=0, alias="OTEL_BSP_SCHEDULE_DELAY")
    otel_export_queue_size: int = Field(default=2048, ge=1, alias="OTEL_BSP_MAX_QUEUE_SIZE")
    telemetry_enabled: bool = Field(default=True, alias="IOP_TELEMETRY_ENABLED")

    jwt_secret: str = Field(default=DEV_JWT_SECRET, alias="IOP_JWT_SECRET")
    jwt_issuer: str = Field(default="iop-platform", alias="IOP_JWT_ISSUER")
    jwt_audience: str = Field(default="iop-services", alias="IOP_JWT_AUDIENCE")

    grpc_host: str = Field(default="127.0.0.1", alias="GRPC_HOST")
    scheduler_grpc_port: int = Field(default=50051, alias="SCHEDULER_GRPC_PORT")
    engagement_grpc_port: int = Field(default=50052, alias="ENGAGEMENT_GRPC_PORT")
    compliance_grpc_port: int = Field(default=50053, alias="COMPLIANCE_GRPC_PORT")
    crisis_grpc_port: int = Field(default=50054, alias="CRISIS_GRPC_PORT")
    # Where each service reaches the others (host:port).
    scheduler_target: str = Field(default="127.0.0.1:50051", alias="SCHEDULER_TARGET")
    engagement_target: str = Field(default="127.0.0.1:50052", alias="ENGAGEMENT_TARGET")
    compliance_target: str = Field(default="127.0.0.1:50053", alias="COMPLIANCE_TARGET")
    crisis_target: str = Field(default="127.0.0.1:50054", alias="CRISIS_TARGET")
    grpc_client_deadline_s: float = Field(default=2.0, alias="GRPC_CLIENT_DEADLINE_S")
    # Load shedding: the unary calls one server runs at once; past that a call waits up to
    # GRPC_ADMISSION_WAIT_S for a place, then gets RESOURCE_EXHAUSTED (see grpc_server.CallAdmission).
    grpc_max_concurrent_calls: int = Field(default=100, ge=1, alias="GRPC_MAX_CONCURRENT_CALLS")
    grpc_admission_wait_s: float = Field(default=0.1, ge=0, alias="GRPC_ADMISSION_WAIT_S")

    outbox_poll_interval_s: float = Field(default=0.5, alias="OUTBOX_POLL_INTERVAL_S")
    # How often the relay sweeps for entries no hint named (a crashed or vanished writer's). On
    # FerretDB a sweep reads every document of the outbox collections (no index on outbox.time
    # there), a stall of ~0.5 s per 10,000 documents; on MongoDB it is an index range and 10 s is cheap.
    outbox_sweep_interval_s: float = Field(default=60.0, gt=0, alias="OUTBOX_SWEEP_INTERVAL_S")
    consumer_max_attempts: int = Field(default=3, alias="CONSUMER_MAX_ATTEMPTS")
    consumer_retry_backoff_s: float = Field(default=0.2, alias="CONSUMER_RETRY_BACKOFF_S")
    # Lanes (distinct record keys) a consumer applies at once; a key's records stay in order.
    consumer_key_concurrency: int = Field(default=48, ge=1, alias="CONSUMER_KEY_CONCURRENCY")
    shutdown_grace_s: float = Field(default=10.0, alias="SHUTDOWN_GRACE_S")

    def grpc_port(self, service: str) -> int:
        port: int = getattr(self, f"{service}_grpc_port")
        return port

    def sampler_ratio(self) -> float:
        """Sample everything outside production unless told otherwise."""
        if self.otel_traces_sampler_ratio is not None:
            return self.otel_traces_sampler_ratio
        return 0.1 if self.environment == "production" else 1.0

    def is_development(self) -> bool:
        """A developer's machine or a test run (local, test, ci), not a deployment."""
        return self.environment in ("local", "test", "ci")

    def check_production_safety(self) -> None:
        if not self.is_development() and self.jwt_secret == DEV_JWT_SECRET:
            raise RuntimeError("IOP_JWT_SECRET must be set outside local/test environments")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
