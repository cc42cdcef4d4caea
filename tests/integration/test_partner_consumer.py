"""The reference partner consumer against the real broker: restart, crash window, replay, duplicates, invalid envelopes.

Events are produced as the services produce them (CloudEvent headers with traceparent + reliable_producer)
on unique test topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient

from iop.events.v1 import scheduling_pb2
from partner.consumer import PartnerConsumer, RunStats
from partner.mirror import Mirror
from services.plumbing.bus import Topic, ensure_topics, reliable_producer
from services.plumbing.envelope import CloudEvent
from services.plumbing.settings import Settings
from tests.support import ROOT, RUN_ID, record_headers

pytestmark = pytest.mark.integration


@pytest.fixture
def names(settings: Settings) -> Iterator[dict[str, str]]:
    """A unique topic and group per test, deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    made = {"topic": f"t{RUN_ID}.partner.{suffix}.v1", "group": f"t{RUN_ID}.partner-ehr.{suffix}"}
    yield made
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_groups([made["group"]])
    except Exception:
        pass
    try:
        admin.delete_topics([made["topic"]], raise_errors=False)
    finally:
        admin.close()


@pytest.fixture
async def producer(settings: Settings, names: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(settings, [Topic(names["topic"], "session_id", "partner consumer test", partitions=3)])
    p = reliable_producer(settings, "test-partner-producer")
    await p.start()
    yield p
    await p.stop()


def session_event(session_id: str, event_id: str | None = None) -> CloudEvent:
    message = scheduling_pb2.SessionScheduled(session_id=session_id, program_id="prog-1", clinician_id="clin-1")
    return CloudEvent.new("/iop/scheduler", session_id, message, event_id=event_id)


async def publish(producer: AIOKafkaProducer, topic: str, events: list[CloudEvent]) -> None:
    for ev in events:
        await producer.send_and_wait(topic, value=ev.data, key=ev.subject.encode(), headers=record_headers(ev))


async def publish_many(producer: AIOKafkaProducer, topic: str, n: int, keys: int = 4) -> list[str]:
    events = [session_event(f"s-{i % keys}") for i in range(n)]
    await publish(producer, topic, events)
    return [e.id for e in events]


def consumer_for(settings: Settings, names: dict[str, str], mirror: Mirror) -> PartnerConsumer:
    return PartnerConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=[names["topic"]],
        group_id=names["group"],
        mirror=mirror,
    )


async def drain(consumer: PartnerConsumer, **kw: float | int) -> RunStats:
    # Idle from the assignment on: the first fetch after it must come in that time, on a loaded machine too.
    return await asyncio.to_thread(consumer.run, exit_when_idle_s=4, **kw)  # type: ignore[arg-type]


class CrashBeforeCommit(PartnerConsumer):
    """Dies after the mirror write and before the offset commit: the window a real crash can hit."""

    def commit(self, consumer, offsets):  # type: ignore[no-untyped-def]
        raise RuntimeError("crash between mirror write and commit")


async def test_restart_resumes_from_committed_offsets_without_loss_or_duplicates(
    settings: Settings, names: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    mirror = Mirror(tmp_path / "mirror.sqlite")
    first_ids = await publish_many(producer, names["topic"], 12)

    first = await asyncio.to_thread(consumer_for(settings, names, mirror).run, max_records=5)
    assert first.records == 5 and first.applied == 5

    second_ids = await publish_many(producer, names["topic"], 6)
    second = await drain(consumer_for(settings, names, mirror))
    assert second.records == 13  # started from the committed offsets: nothing re-read ...
    assert second.duplicates == 0
    assert sorted(mirror.event_ids()) == sorted(first_ids + second_ids)  # ... and nothing lost

    # A crash after the mirror write but before the commit: the batch comes again, the mirror keeps one copy.
    third_ids = await publish_many(producer, names["topic"], 4)
    mirrored_before = mirror.counts()["events"]
    with pytest.raises(RuntimeError, match="crash between"):
        await drain(
            CrashBeforeCommit(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topics=[names["topic"]],
                group_id=names["group"],
                mirror=mirror,
            )
        )
    in_crashed_batch = mirror.counts()["events"] - mirrored_before
    assert in_crashed_batch >= 1  # the crashed batch reached the mirror, its offsets were never committed
    after_crash = await drain(consumer_for(settings, names, mirror))
    assert after_crash.records == 4  # redelivered from the last commit ...
    assert after_crash.duplicates == in_crashed_batch  # ... and recognised
    assert after_crash.applied == 4 - in_crashed_batch
    all_ids = first_ids + second_ids + third_ids
    assert sorted(mirror.event_ids()) == sorted(all_ids)
    assert mirror.counts()["events"] == len(all_ids)
    assert mirror.counts()["latest"] == 4  # one row per key (s-0 .. s-3)
    latest = mirror.latest(names["topic"], "s-1")
    assert latest is not None and latest["ce_id"] == third_ids[1]  # the newest event of that key
    mirror.close()


async def test_duplicates_are_mirrored_once_and_invalid_envelopes_recorded(
    settings: Settings, names: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    topic = names["topic"]
    twice = session_event("s-dup")
    await publish(producer, topic, [twice, twice])
    valid = session_event("s-bad")
    good_headers = record_headers(valid)

    def without(name: str) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in good_headers if k != name]

    def replaced(name: str, value: bytes) -> list[tuple[str, bytes]]:
        return [(k, value if k == name else v) for k, v in good_headers]

    bad = {
        "missing ce_id": (without("ce_id"), valid.data),
        "bad time": (replaced("ce_time", b"yesterday"), valid.data),
        "bad specversion": (replaced("ce_specversion", b"0.3"), valid.data),
        "unknown type": (
            [(k, v) for k, v in replaced("ce_type", b"iop.events.v1.NoSuchEvent") if k != "ce_dataschema"],
            valid.data,
        ),
        "garbage payload": (good_headers, b"\xff\xff\xff\xff"),
        "bad content type": (replaced("content-type", b"text/plain"), valid.data),
    }
    for headers, value in bad.values():
        await producer.send_and_wait(topic, value=value, key=b"s-bad", headers=headers)
    after = session_event("s-bad")  # a valid event behind the invalid ones on the same key
    await publish(producer, topic, [after])

    mirror = Mirror(tmp_path / "mirror.sqlite")
    stats = await drain(consumer_for(settings, names, mirror))
    assert stats.records == 2 + len(bad) + 1
    assert stats.duplicates == 1
    assert sorted(mirror.event_ids()) == sorted([twice.id, after.id])
    rejected = mirror.rejected()
    assert len(rejected) == len(bad)
    reasons = " | ".join(str(r["reason"]) for r in rejected)
    for expected in (
        "missing CloudEvents headers: ce_id",
        "ce_time is not RFC 3339",
        "ce_specversion",
        "unknown ce_type",
        "does not decode",
        "unsupported content-type",
    ):
        assert expected in reasons
    assert not any("prog-1" in str(r) for r in rejected)  # reasons never carry payload data
    # Offsets were committed past the invalid records: a restart does not see them again.
    again = await drain(consumer_for(settings, names, mirror))
    assert again.records == 0
    mirror.close()


async def test_replay_from_a_timestamp_with_the_cli(
    settings: Settings, names: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    before = await publish_many(producer, names["topic"], 6)
    await asyncio.sleep(1.0)
    replay_from = datetime.now(UTC)
    await asyncio.sleep(1.0)
    after = await publish_many(producer, names["topic"], 5)

    mirror = Mirror(tmp_path / "live.sqlite")
    live = await drain(consumer_for(settings, names, mirror))
    assert live.records == 11
    mirror.close()

    # The same group rebuilds a fresh mirror from the timestamp: only the later events come back.
    fresh = tmp_path / "rebuilt.sqlite"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}"}
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "partner.consumer",
            "--topics",
            names["topic"],
            "--group",
            names["group"],
            "--mirror",
            str(fresh),
            "--replay-from",
            replay_from.isoformat(),
            "--exit-when-idle",
            "1.5",
            "--bootstrap",
            settings.kafka_bootstrap_servers,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["records"] == 5 and summary["applied"] == 5 and summary["rejected"] == 0
    rebuilt = Mirror(fresh)
    assert sorted(rebuilt.event_ids()) == sorted(after)
    assert not set(before) & set(rebuilt.event_ids())
    rebuilt.close()


def fhir_event(resource: dict[str, Any], version: int = 1) -> CloudEvent:
    message = scheduling_pb2.FhirResourcePublished(
        resource_type=str(resource["resourceType"]),
        resource_id=str(resource["id"]),
        fhir_version="4.3.0",
        json=json.dumps({**resource, "meta": {"versionId": str(version)}}),
    )
    return CloudEvent.new("/iop/scheduler", str(resource["id"]), message)


async def test_fhir_resources_are_mirrored_by_id_and_unresolved_references_named(
    settings: Settings, names: dict[str, str], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": "s-1",
        "status": "booked",
        "participant": [
            {"actor": {"reference": "Practitioner/c-1"}, "status": "accepted"},
            {"actor": {"reference": "Patient/k-1"}, "status": "accepted"},
        ],
    }
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "s-1",
        "appointment": [{"reference": "Appointment/s-1"}],
    }
    consent: dict[str, Any] = {  # a logical reference (identifier only) is not expected to resolve
        "resourceType": "Consent",
        "id": "c-9",
        "patient": {"reference": "Patient/k-1"},
        "provision": {"actor": [{"reference": {"type": "RelatedPerson", "identifier": {"value": "contact-1"}}}]},
    }
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "k-1", "active": True}
    events = [fhir_event(r) for r in (appointment, encounter, consent, patient)]
    await publish(producer, names["topic"], [*events, fhir_event(appointment, version=2)])

    mirror = Mirror(tmp_path / "fhir.sqlite")
    stats = await drain(consumer_for(settings, names, mirror))
    assert stats.applied == 5 and stats.rejected == 0
    assert mirror.counts()["fhir_resources"] == 4  # Appointment and Encounter share an id, not a type
    newest = mirror.fhir_resource("Appointment", "s-1")
    assert newest is not None and newest["meta"] == {"versionId": "2"}
    assert mirror.unresolved_references() == [("Appointment/s-1", "Practitioner/c-1")]
    mirror.close()


def test_the_partner_code_does_not_import_the_platform() -> None:
    code = (
        "import sys, partner.consumer, partner.envelope, partner.fhir, partner.mirror; "
        "leaked = sorted(m for m in sys.modules if m == 'services' or m.startswith('services.')); "
        "assert not leaked, leaked"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
