"""The whole platform, driven the way `make run` drives it: the five scenarios of PRODUCT.md.

The README's run command (`make run` / `make demo`: infra.sh, then the launcher with --demo)
is run here on the test's ports and databases: the launcher starts the four services and the
engagement stream worker, the demo drives a simulated IOP day through the public APIs only,
and prints its summary. Then, from what the platform really produced:

- every scenario turned out as the product says (the demo exits non-zero otherwise), and the
  summary names each scenario's trace;
- a partner EHR (the reference consumer, its own group) receives the day's events: every
  envelope valid, every FHIR resource valid R4B, every FHIR reference resolvable in its mirror;
- the telemetry edges (in the style of opentelemetry-demo's trace-based tests): the scenarios'
  traces hold the expected service-to-service edges, gRPC and Kafka ones, Zipkin's own
  dependency graph (what its UI draws) has them too, and no span attribute carries PHI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from partner.consumer import PartnerConsumer, message_types_from_contract, topics_from_contract
from partner.mirror import Mirror
from services.plumbing.settings import Settings
from tests.support import ROOT, RUN_ID, isolated_environment, zipkin_base

pytestmark = pytest.mark.e2e

HTTP_PORT = int(os.environ.get("IOP_TEST_PORT_BASE", "21050")) + 60
DEMO_TIMEOUT_S = 600
TRACE_LINE = re.compile(r"^\s+trace ([0-9a-f]{32}): ")
SCENARIO_LINE = re.compile(r"^(\d)\. (.+): (OK|FAILED)$")

# (caller, callee) between services, from the parent/child spans of the scenarios' traces.
GRPC_EDGES = {  # gRPC calls (and the signed video-platform webhook, over HTTP)
    ("demo-driver", "scheduler"),
    ("demo-driver", "compliance"),
    ("demo-driver", "crisis"),
    ("demo-driver", "engagement"),
    ("scheduler", "compliance"),  # EvaluateSession at booking and session start
}
KAFKA_EDGES = {  # a producer span in one service, the consumer's processing span in another
    ("scheduler", "compliance"),  # iop.scheduling.sessions.v1 (billing, re-checks)
    ("scheduler", "engagement"),  # iop.scheduling.sessions.v1 (the attendance ledger)
    ("scheduler", "crisis"),  # iop.scheduling.sessions.v1 (the verified location at check-in)
    ("engagement", "crisis"),  # iop.engagement.attendance.v1 ConnectionDropped
    ("engagement", "scheduler"),  # ConnectionDropped -> the session is flagged for rescheduling
    ("compliance", "scheduler"),  # iop.compliance.privacy.v1 PrivacyCompromised
}
EXPECTED_EDGES = GRPC_EDGES | KAFKA_EDGES
# Zipkin's service graph draws a Kafka hop through the broker: producer -> kafka -> consumer.
ZIPKIN_LINKS = (
    GRPC_EDGES
    | {(producer, "kafka") for producer, _ in KAFKA_EDGES}
    | {("kafka", consumer) for _, consumer in KAFKA_EDGES}
)
# What the demo's people would be identified by if it leaked: names, phone numbers, addresses.
PHI = re.compile(r"Alex Doe|555\D?01\d\d|Valencia St", re.IGNORECASE)


@dataclass
class DemoRun:
    started: datetime
    ended: datetime
    output: str
    returncode: int
    scenarios: dict[str, str]  # title -> OK | FAILED
    trace_ids: list[str]


@pytest.fixture(scope="module")
def demo_run() -> Iterator[DemoRun]:
    env = {
        **os.environ,
        **isolated_environment(),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        "ENGAGEMENT_HTTP_PORT": str(HTTP_PORT),  # the demo posts its webhooks to the same port
        # The run's new consumer groups start at the end of the topics, as the other services' do
        # in tests (the launcher waits for the worker's partitions before the demo starts): from
        # the beginning, on a long-lived broker the worker replayed every earlier run's events,
        # and their spans pushed this run's traces out of the local Zipkin's 100k.
        "ENGAGEMENT_WORKER_OFFSET_RESET": "latest",
        "ENGAGEMENT_LEDGER_START": "latest",
    }
    started = datetime.now(UTC)
    out = subprocess.run(
        [sys.executable, "-m", "services.plumbing.launcher", "--demo", "--exit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    lines = out.stdout.splitlines()
    scenarios = {m.group(2): m.group(3) for line in lines if (m := SCENARIO_LINE.match(line))}
    traces = [m.group(1) for line in lines if (m := TRACE_LINE.match(line))]
    yield DemoRun(started, datetime.now(UTC), out.stdout + out.stderr, out.returncode, scenarios, traces)


def test_the_run_command_drives_all_five_scenarios_and_prints_the_summary(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.output[-4000:]
    assert list(demo_run.scenarios.values()) == ["OK"] * 5, demo_run.output[-4000:]
    assert set(demo_run.scenarios) == {
        "Disconnection during crisis",
        "Privacy-compromised session",
        "Burnout from a full virtual day",
        "Client travels to another state",
        "Audio-only fallback",
    }
    assert len(set(demo_run.trace_ids)) == 5  # one trace per scenario, each named in the summary
    assert "Events received by the reference partner consumer" in demo_run.output


def test_a_partner_receives_valid_envelopes_and_fhir_with_resolvable_references(
    demo_run: DemoRun, settings: Settings, tmp_path: Path
) -> None:
    assert demo_run.returncode == 0, demo_run.output[-2000:]
    mirror = Mirror(tmp_path / "partner.sqlite")
    consumer = PartnerConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=topics_from_contract(),
        group_id=f"t{RUN_ID}.partner-ehr.platform-day",
        mirror=mirror,
    )
    consumer.reset_offsets_to_time(demo_run.started)
    stats = consumer.run(exit_when_idle_s=5)
    assert stats.applied > 0
    assert mirror.rejected() == []
    declared = message_types_from_contract()
    undeclared = sorted((topic, ce_type) for topic, ce_type in mirror.event_types() if ce_type not in declared[topic])
    assert undeclared == [], f"received, but not in the partner contract (docs/asyncapi.yaml): {undeclared}"
    resources = mirror.fhir_resources()
    kinds = {r["resourceType"] for r in resources}
    assert {"Patient", "Practitioner", "Appointment", "Encounter", "Observation", "Consent"} <= kinds, kinds
    assert {"Flag", "RiskAssessment", "CarePlan"} <= kinds, kinds
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # valid FHIR R4B
    assert mirror.unresolved_references() == []
    mirror.close()


def trace_spans(settings: Settings, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans in Zipkin so far; none when a loaded Zipkin does not answer in time (the
    caller polls again)."""
    try:
        reply = httpx.get(f"{zipkin_base(settings)}/api/v2/trace/{trace_id}", timeout=10)
    except httpx.HTTPError:
        return []
    return reply.json() if reply.status_code == 200 else []


def service_edges(spans: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(all edges, Kafka edges) between services: a span whose parent belongs to another service."""
    by_id = {s["id"]: s for s in spans}
    edges: set[tuple[str, str]] = set()
    kafka: set[tuple[str, str]] = set()
    for span in spans:
        parent = by_id.get(span.get("parentId", ""))
        if parent is None:
            continue
        caller = parent["localEndpoint"]["serviceName"]
        callee = span["localEndpoint"]["serviceName"]
        if caller == callee:
            continue
        edges.add((caller, callee))
        if parent.get("kind") == "PRODUCER" and span.get("kind") == "CONSUMER":
            kafka.add((caller, callee))
    return edges, kafka


def test_the_scenarios_traces_hold_the_service_edges_and_no_phi(demo_run: DemoRun, settings: Settings) -> None:
    assert demo_run.returncode == 0, demo_run.output[-2000:]
    deadline = time.monotonic() + 60
    while True:  # each service exports its spans in its own batches: wait until the edges are in
        spans = [s for t in demo_run.trace_ids for s in trace_spans(settings, t)]
        edges, kafka = service_edges(spans)
        if (edges >= EXPECTED_EDGES and kafka >= KAFKA_EDGES) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert EXPECTED_EDGES - edges == set(), sorted(edges)
    assert KAFKA_EDGES - kafka == set(), sorted(kafka)
    assert {s["traceId"] for s in spans} == set(demo_run.trace_ids)
    for span in spans:
        assert span["localEndpoint"].get("serviceName"), span  # every span names its service
        for key, value in (span.get("tags") or {}).items():
            assert not PHI.search(value), (span["localEndpoint"]["serviceName"], span["name"], key)

    # Zipkin's own service graph over the run (what its dependencies UI draws) has the same edges,
    # the Kafka ones through the broker.
    end_ms = int(datetime.now(UTC).timestamp() * 1000)
    lookback_ms = end_ms - int(demo_run.started.timestamp() * 1000) + 60_000
    reply = httpx.get(
        f"{zipkin_base(settings)}/api/v2/dependencies", params={"endTs": end_ms, "lookback": lookback_ms}, timeout=30
    )
    links = {(link["parent"], link["child"]) for link in reply.json()}
    assert ZIPKIN_LINKS - links == set(), sorted(links)
