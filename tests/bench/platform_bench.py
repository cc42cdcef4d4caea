"""Whole-platform load: the simulated IOP day at scale, and what partner EHRs received.

    .venv/bin/python -m tests.bench.platform_bench [--clients 500] [--clinicians 60] [--workers 16]

Starts the four services and the engagement stream worker as the launcher does (`make run`),
on their own ports and databases, and drives `demo.scale` (demo/scale.py): clinicians in six
states, their cohorts of clients, a 3-hour video group per clinician with check-ins, webhooks,
attendance and questionnaires, and individual sessions booked for tomorrow. The target: the
whole day in under 10 minutes of wall time on this machine.

Then the check of zero lost or duplicated partner events, against the source of truth:
- committed: every outbox entry for a partner topic in the services' databases (this run's
  own), plus the FHIR Observation of every stored outcome (published from the outcome itself);
- on Kafka: the distinct CloudEvents ids on the partner topics since the run started (records
  with a repeated id are redeliveries, counted apart);
- mirror: what the reference partner consumer (partner/, its own group, replaying from the
  start of the run) holds.
Lost = committed but not on Kafka; the mirror must equal Kafka exactly (nothing missing,
nothing twice). The stream worker's scores are produced without a store record: for them Kafka
is the source. Also checked: every FHIR reference in the mirror resolves.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pymongo import MongoClient

from demo.platform import Platform
from demo.scale import run_scaled_day
from partner.consumer import PartnerConsumer, topics_from_contract
from partner.mirror import Mirror
from services.compliance.app import DEFINITION as COMPLIANCE
from services.crisis.app import DEFINITION as CRISIS
from services.engagement.app import DEFINITION as ENGAGEMENT
from services.engagement.fhir_relay import observation_event_id
from services.engagement.store import OUTCOMES_COLLECTION
from services.engagement.topics import FHIR as OBSERVATIONS
from services.engagement.topics import SCORES
from services.plumbing.launcher import DEMO_ENV, start_services, stop_services
from services.plumbing.runner import ServiceDefinition
from services.plumbing.settings import Settings
from services.scheduler.app import DEFINITION as SCHEDULER
from tests.support import drop_databases, isolated_environment

DEFINITIONS: list[ServiceDefinition] = [SCHEDULER, ENGAGEMENT, COMPLIANCE, CRISIS]
TARGET_S = 600
PORT_BASE = int(os.environ.get("IOP_BENCH_PORT_BASE", "25050"))  # apart from `make run` and the tests


def service_ports(base: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for offset, definition in enumerate(DEFINITIONS, start=1):
        name = definition.name.upper()
        env[f"{name}_GRPC_PORT"] = str(base + offset)
        env[f"{name}_TARGET"] = f"127.0.0.1:{base + offset}"
    return env


def committed(settings: Settings, partner_topics: set[str]) -> dict[str, set[str]]:
    """Event ids per partner topic that the services' stores say must be published."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    ids: dict[str, set[str]] = {t: set() for t in partner_topics}
    try:
        for definition in DEFINITIONS:
            db = mongo[f"{settings.mongodb_database_prefix}{definition.name}"]
            for collection in definition.outbox_collections:
                for doc in db[collection].find({"outbox": {"$exists": True}}, {"outbox": 1}):
                    for entry in doc["outbox"]:
                        if entry["topic"] in ids:
                            ids[entry["topic"]].add(entry["id"])
        outcomes = mongo[f"{settings.mongodb_database_prefix}engagement"][OUTCOMES_COLLECTION]
        ids[OBSERVATIONS.name] |= {observation_event_id(d["_id"]) for d in outcomes.find({}, {"_id": 1})}
    finally:
        mongo.close()
    return ids


def on_kafka(settings: Settings, topics: list[str], since: datetime) -> tuple[dict[str, set[str]], Counter[str]]:
    """Distinct event ids per topic from `since` to the end, and how many records repeated one."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        starts = consumer.offsets_for_times(dict.fromkeys(partitions, int(since.timestamp() * 1000)))
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        ids: dict[str, set[str]] = {t: set() for t in topics}
        repeated: Counter[str] = Counter()
        remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        while remaining:
            for tp, records in consumer.poll(timeout_ms=1000, max_records=2000).items():
                for record in records:
                    ce_id = dict(record.headers or []).get("ce_id", b"").decode()
                    if ce_id in ids[tp.topic]:
                        repeated[tp.topic] += 1
                    ids[tp.topic].add(ce_id)
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return ids, repeated
    finally:
        consumer.close()


def wait_published(settings: Settings, topics: list[str], since: datetime, timeout_s: float = 120) -> float:
    """Seconds until everything committed is on Kafka (the relays catch up), or the timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        source = committed(settings, set(topics))
        kafka, _ = on_kafka(settings, topics, since)
        if all(source[t] <= kafka[t] for t in topics):
            break
        time.sleep(2)
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--clinicians", type=int, default=60)
    parser.add_argument("--workers", type=int, default=8, help="concurrent API callers")
    args = parser.parse_args()
    env = {
        **isolated_environment(),
        **service_ports(PORT_BASE),
        "ENGAGEMENT_HTTP_PORT": str(PORT_BASE + 60),
        **DEMO_ENV,
    }
    os.environ.update(env)  # the launcher and the demo's clients read their endpoints from it
    settings = Settings()  # type: ignore[call-arg]
    topics = topics_from_contract()
    load = os.getloadavg()
    procs = start_services(env)
    try:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        platform = Platform(settings)
        try:
            day = run_scaled_day(platform, args.clients, args.clinicians, args.workers, say=lambda line: None)
        finally:
            platform.close()
        day_s = time.monotonic() - t0
        drain_s = wait_published(settings, topics, started)
    finally:
        s0 = time.monotonic()
        stop_services(procs)  # drains: nothing is produced after this, so the three views are comparable
        stop_s = time.monotonic() - s0
    source = committed(settings, set(topics))
    kafka, repeated = on_kafka(settings, topics, started)
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Mirror(Path(tmp) / "partner.sqlite")
        partner = PartnerConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topics=topics,
            group_id=f"{settings.kafka_group_prefix}.platform-bench-partner",
            mirror=mirror,
        )
        partner.reset_offsets_to_time(started)
        p0 = time.monotonic()
        stats = partner.run(exit_when_idle_s=5)
        partner_s = time.monotonic() - p0
        mirrored = {t: set(mirror.event_ids(t)) for t in topics}
        unresolved = mirror.unresolved_references()
        fhir_resources = mirror.counts()["fhir_resources"]
        rejected = len(mirror.rejected())
        mirror.close()

    print(f"\nwhole-platform load: {os.cpu_count()} cores, load average at start {load[0]:.1f}")
    print(f"simulated day: {day.clinicians} clinicians, {day.clients} clients, {day.groups} groups")
    print(f"  check-ins {day.check_ins}, webhooks {day.webhooks}, outcomes {day.outcomes}, ", end="")
    print(f"individual sessions booked {day.individual_sessions}, failed calls {len(day.failures)}")
    for failure in day.failures[:10]:
        print(f"  - {failure}")
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in day.phases_s.items())
    print(f"  wall time {day_s:.0f} s ({phases}); target < {TARGET_S} s: {'MET' if day_s < TARGET_S else 'NOT MET'}")
    print(f"  relays caught up {drain_s:.0f} s after the last call; services drained and stopped in {stop_s:.0f} s")
    print(f"  the partner consumer mirrored the day in {partner_s:.0f} s")
    print(f"\n{'partner topic':36} {'committed':>10} {'on kafka':>9} {'repeated':>9} {'mirror':>7} {'lost':>5}")
    lost_total = mismatch_total = 0
    for topic in topics:
        lost = len(source[topic] - kafka[topic])
        mismatch = len(kafka[topic] ^ mirrored[topic])
        lost_total += lost
        mismatch_total += mismatch
        shown = "(kafka)" if topic == SCORES.name else str(len(source[topic]))
        print(f"{topic:36} {shown:>10} {len(kafka[topic]):>9} {repeated[topic]:>9} {len(mirrored[topic]):>7} {lost:>5}")
    print(f"\nlost events (committed, never published): {lost_total}")
    print(f"mirror != kafka (missing or extra ids): {mismatch_total}; redeliveries it absorbed: {stats.duplicates}")
    print(f"rejected envelopes: {rejected}; FHIR resources mirrored: {fhir_resources}")
    print(f"unresolved FHIR references: {len(unresolved)} {unresolved[:5]}")
    ok = day_s < TARGET_S and not day.failures and lost_total == 0 and mismatch_total == 0 and not unresolved
    print(f"result: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    try:
        main()
    finally:
        drop_databases()
