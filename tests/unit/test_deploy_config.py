"""docker-compose.yml cannot run here (no Docker engine), so check it against the code:
every service, command, port, environment variable, health check and dependency it names
must exist and agree with what the services actually read and serve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.plumbing.settings import Settings
from tests.support import ROOT, SERVICE_NAMES, token

APP_SERVICES = tuple(SERVICE_NAMES)
WORKERS = {"engagement-worker": "services.engagement.worker"}
INFRA_SERVICES = ("kafka", "mongodb", "otel-collector", "jaeger")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def settings_aliases() -> set[str]:
    return {f.alias for f in Settings.model_fields.values() if f.alias}


def python_sources() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "services").rglob("*.py"))


def test_every_service_is_defined(compose) -> None:
    assert set(compose["services"]) == {*APP_SERVICES, *WORKERS, *INFRA_SERVICES}


@pytest.mark.parametrize("name", WORKERS)
def test_worker_runs_an_existing_module_with_the_service_environment(compose, name: str) -> None:
    svc = compose["services"][name]
    module = WORKERS[name]
    assert svc["command"] == ["python", "-m", module]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    known, sources = settings_aliases(), python_sources()
    for key in svc["environment"]:
        assert key in known or f'"{key}"' in sources, f"{name}: {key} is read by nothing"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_command_port_and_grpc_health_check(compose, name: str) -> None:
    svc = compose["services"][name]
    assert svc["command"] == ["python", "-m", f"services.{name}"]
    assert (ROOT / "services" / name / "__main__.py").is_file()
    port = Settings.model_fields[f"{name}_grpc_port"].default
    assert f"{port}:{port}" in svc["ports"]
    probe = svc["healthcheck"]["test"]
    # a native gRPC health check of this service's registered name, not a TCP check
    assert probe[:4] == ["CMD", "python", "-m", "services.plumbing.healthcheck"]
    assert probe[4] == f"127.0.0.1:{port}"
    assert probe[5] == SERVICE_NAMES[name]
    api = (ROOT / "services" / name / "api.py").read_text()
    assert f'SERVICE = "{SERVICE_NAMES[name]}"' in api


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_environment_is_read_by_the_code(compose, name: str) -> None:
    env = compose["services"][name]["environment"]
    known = settings_aliases()
    sources = python_sources()
    for key in env:
        assert key in known or f'"{key}"' in sources, f"{name}: {key} is read by nothing"
    assert env["GRPC_HOST"] == "0.0.0.0"
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert "replicaSet=" in env["MONGODB_URI"] and "//mongodb:" in env["MONGODB_URI"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    for other in APP_SERVICES:
        host, port = env[f"{other.upper()}_TARGET"].split(":")
        assert host == other
        assert int(port) == Settings.model_fields[f"{other}_grpc_port"].default


def test_dependencies_exist_and_are_health_gated(compose) -> None:
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown {dep}"
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["mongodb"]["condition"] == "service_healthy"
    # the scheduler asks compliance before every booking
    assert services["scheduler"]["depends_on"]["compliance"]["condition"] == "service_healthy"


def test_infrastructure_is_kraft_kafka_mongo_replica_set_collector_and_jaeger(compose) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(kafka["environment"])
    assert "kafka:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    mongo = services["mongodb"]
    assert mongo["image"].startswith("mongo:") and "--replSet" in mongo["command"]
    assert services["jaeger"]["image"].startswith("jaegertracing/")


def test_collector_redacts_phi_before_exporting_to_jaeger(compose) -> None:
    mount = compose["services"]["otel-collector"]["volumes"][0].split(":")[0]
    config = yaml.safe_load((ROOT / mount).read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert any(p.startswith("redaction") for p in pipeline["processors"])
    assert all(p in config["processors"] for p in pipeline["processors"])
    exporter = config["exporters"][pipeline["exporters"][0]]
    assert exporter["endpoint"].split(":")[0] == "jaeger"
    patterns = config["processors"]["redaction/phi"]["blocked_key_patterns"]
    assert any(re.fullmatch(p, "client.phone_number") for p in patterns)
    # and a bearer token, should one reach a span (the services record URLs without their query)
    values = config["processors"]["redaction/phi"]["blocked_values"]
    bearer = token(Settings(), "supervisor")  # type: ignore[call-arg]
    assert any(re.search(v, f"http://svc/dashboard?access_token={bearer}") for v in values)


def test_dockerfile_puts_generated_code_on_the_path() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENV PYTHONPATH=/app:/app/gen/python" in dockerfile
    assert Path(ROOT / "gen" / "python" / "iop").is_dir()
