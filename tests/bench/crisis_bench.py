"""Benchmark: the crisis service's disconnection response and its ladder timers, with a baseline.

    .venv/bin/python -m tests.bench.crisis_bench [--rate 200] [--seconds 5] [--warmup 1] [--ladders 1000]

1. Baseline: raw aiokafka produce -> consume at the same paced rate (idempotent, acks=all).
2. Drops of high-risk clients in live sessions, paced at --rate, timed to the published
   AlertOpened (published only after the alert with its stored callback task was written: one
   insert, outbox), twice: (a) from the ConnectionDropped event, produced as engagement does, to a
   real crisis process (the crisis service alone); (b) from a signed `meeting.participant_left`
   webhook (connection lost) POSTed to a real engagement process, which publishes the
   ConnectionDropped before it answers. The first --warmup seconds of drops after the processes
   start are reported apart and not measured.
3. Ladders: --ladders alerts opened at once (through the service's own AlertService code), their
   rungs due --rung-delay seconds apart, fired by a real crisis process's timer loop; lateness =
   fired_at - due_at of every rung, read back from the store (polled by _id: a scan of the
   records on the shared store would itself slow the timers it measures).
Everything on loopback against the shared local broker and store: other engineers' load counts.
"""

from __future__ import annotations

import os

os.environ.setdefault("IOP_TEST_PORT_BASE", "26050")  # before tests.support reads it; below the ephemeral range

import argparse
import asyncio
import struct
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.crisis import topics
from services.crisis.alerts import AlertService, derived_id
from services.crisis.domain import Risk
from services.crisis.paging import Pager
from services.crisis.reference import load_policies
from services.crisis.store import ALERTS, CLIENT_RECORDS, RISK, CrisisStore, rung_id, seq_id
from services.engagement.config import DEV_WEBHOOK_SECRET
from services.engagement.domain import sign
from services.engagement.store import ATTENDANCE_COLLECTION
from services.plumbing.bus import Topic, ensure_topics, reliable_producer
from services.plumbing.outbox import OutboxRelay
from services.plumbing.storage import find_by_ids, mongo_client, service_database
from tests.bench.common import Result, percentile, store_bound_report, store_commands, store_rates, table
from tests.integration.test_crisis_support import (
    Collector,
    Producer,
    ensure_consumed_topics,
    open_alert_directly,
    policy_file,
    skip_backlog,
    start,
)
from tests.integration.test_engagement_support import HTTP_PORT, engagement_env, zoom_body
from tests.support import TEST_PORTS, ServiceProcess, isolated_settings


async def paced(n: int, rate: float, send) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)


def start_instances(count: int, env: dict[str, str], procs: list[ServiceProcess]) -> None:
    """Start `count` crisis processes in one consumer group (Kubernetes runs at least two), each
    added to `procs` as it starts, so the caller stops the ones that started if a later one fails."""
    for i in range(count):
        own = {"CRISIS_INSTANCE_ID": f"crisis-bench-{i}", "CRISIS_GRPC_PORT": str(TEST_PORTS["crisis"] + 5 * i)}
        procs.append(start(ServiceProcess("crisis", env={**env, **own}, instance=f"-bench{i}")))


def stop_instances(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        proc.stop()


async def baseline(settings, n: int, rate: float) -> Result:  # type: ignore[no-untyped-def]
    topic = f"bench.crisis.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [Topic(topic, "k", "bench")])
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=2
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=f"b-{topic}", auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < n:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                latencies.extend(now - struct.unpack("d", r.value[:8])[0] for r in records)  # type: ignore[index]

    reader = asyncio.create_task(consume())
    await asyncio.sleep(1.0)
    t0 = time.perf_counter()
    await paced(n, rate, lambda i: producer.send(topic, struct.pack("d", time.perf_counter()) + b"x" * 100))
    await asyncio.wait_for(reader, timeout=60)
    elapsed = time.perf_counter() - t0
    await producer.stop()
    await consumer.stop()
    return Result.of(f"baseline raw aiokafka {rate:.0f}/s", n, elapsed, latencies)


async def drops(
    settings, n: int, rate: float, warmup: int, instances: int, from_webhook: bool, directory: Path
) -> tuple[Result, Result, int]:  # type: ignore[no-untyped-def]
    """Drops of high-risk clients in live sessions at `rate`: first `warmup` of them (the processes'
    first second: store connections, fetch sessions and code paths are cold), then the `n` measured
    ones. `from_webhook`: each is the video platform's webhook -> engagement (signature, receipt, the
    session's ledger, ConnectionDropped published before it answers) -> Kafka -> crisis (risk, alert
    with its callback task, outbox) -> AlertOpened; else it starts as the ConnectionDropped event,
    produced as engagement does, and measures the crisis service alone."""
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    env = {"MONGODB_DATABASE_PREFIX": prefix, "CRISIS_POLICY_FILE": str(policy_file(directory, [0, 3600, 3600, 3600]))}
    mongo = mongo_client(settings)
    bench_settings = isolated_settings(MONGODB_DATABASE_PREFIX=prefix)
    db = service_database(mongo, bench_settings, "crisis")
    engagement_db = service_database(mongo, bench_settings, "engagement")
    clients = [f"bench-client-{uuid.uuid4().hex[:10]}" for _ in range(warmup + n)]
    now = datetime.now(UTC)
    await db[CLIENT_RECORDS].insert_many(  # setup: every client screened high risk
        [
            {
                "_id": seq_id(RISK, c, 1),
                "kind": RISK,
                "client_id": c,
                "level": int(Risk.HIGH),
                "source": "c-ssrs",
                "at": now,
            }
            for c in clients
        ]
    )
    if from_webhook:  # and in a session that is on (engagement's ledger)
        await engagement_db[ATTENDANCE_COLLECTION].insert_many(
            [
                {
                    "_id": f"bench-session-{c}",
                    "clinician_id": "bench-clinician",
                    "program_id": "iop-test",
                    "starts_at": now - timedelta(minutes=10),
                    "ends_at": now + timedelta(hours=2),
                    "client_ids": [c],
                    "entries": [{"client_id": c, "status": "expected", "minutes_attended": 0}],
                    "signals": [],
                    "signal_ids": [],
                    "ended": False,
                }
                for c in clients
            ]
        )
    procs: list[ServiceProcess] = []
    out = await Collector(settings, [topics.ALERTS_TOPIC.name]).start()
    producer = await Producer(settings).start()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    url = f"http://127.0.0.1:{HTTP_PORT}/webhooks/video"

    async def report_drop(client: str) -> None:
        session = f"bench-session-{client}"
        if not from_webhook:
            await producer.drop(session, client, "bench-clinician")
            return
        body = zoom_body("meeting.participant_left", session, client, leave_reason="Connection lost")
        ts = str(int(time.time()))
        headers = {"x-zm-request-timestamp": ts, "x-zm-signature": sign(DEV_WEBHOOK_SECRET, ts, body)}
        async with http.post(url, data=body, headers={**headers, "content-type": "application/json"}) as reply:
            answer = await reply.text()  # read to the end, so the connection is kept alive for the next one
            assert reply.status == 200, answer

    async def phase(name: str, phase_clients: list[str]) -> tuple[Result, list[str]]:
        started: dict[str, float] = {}

        async def send(i: int) -> None:
            started[phase_clients[i]] = time.perf_counter()
            await report_drop(phase_clients[i])

        t0 = time.perf_counter()
        await paced(len(phase_clients), rate, send)
        wanted = set(phase_clients)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            got = {p.client_id for _, e, p, _ in out.events if e.type.endswith("AlertOpened") and p.client_id in wanted}
            if len(got) == len(wanted):
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        received: dict[str, float] = {}
        alert_ids: list[str] = []
        mono_offset = time.perf_counter() - datetime.now(UTC).timestamp()
        for _, ev, payload, at in out.events:
            if ev.type.endswith("AlertOpened") and payload.client_id in wanted and payload.client_id not in received:
                received[payload.client_id] = at.timestamp() + mono_offset
                alert_ids.append(payload.alert_id)
        latencies = [received[c] - started[c] for c in received]
        return Result.of(f"{name} {rate:.0f}/s", len(latencies), elapsed, latencies), alert_ids

    try:
        if from_webhook:
            procs.append(start(ServiceProcess("engagement", env={**env, **engagement_env()})))
        start_instances(instances, env, procs)
        warm, _ = await phase("warm-up drops (not measured)", clients[:warmup])
        measured = "webhook -> AlertOpened" if from_webhook else "ConnectionDropped -> AlertOpened"
        drop, alert_ids = await phase(measured, clients[warmup:])
        with_task = 0  # the stored callback task, read back from the store
        for alert_id in alert_ids:
            header = await db.alerts.find_one({"_id": alert_id}, {"open_records": 1})
            tasks = [t["kind"] for r in (header or {}).get("open_records", []) for t in r["tasks"]]
            with_task += "CALLBACK" in tasks
    finally:
        await http.close()
        await out.stop()
        await producer.stop()
        stop_instances(procs)
        await mongo.drop_database(db.name)
        await mongo.drop_database(engagement_db.name)
        await mongo.close()
    return warm, drop, with_task


async def ladders(settings, n: int, delay_s: float, instances: int, directory: Path) -> tuple[list[float], int, float]:  # type: ignore[no-untyped-def]
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    policy = policy_file(directory, [0, delay_s, delay_s, delay_s], name="ladder.yaml")
    procs: list[ServiceProcess] = []
    mongo = mongo_client(settings)
    db = service_database(mongo, isolated_settings(MONGODB_DATABASE_PREFIX=prefix), "crisis")
    producer = reliable_producer(settings, "crisis-bench")
    await producer.start()
    relay = OutboxRelay(db, [ALERTS], producer)  # never run: the service's relay publishes
    alerts = AlertService(CrisisStore(db), relay, load_policies(policy), Pager(None, 1), "bench-opener", 10)
    try:
        start_instances(instances, {"MONGODB_DATABASE_PREFIX": prefix, "CRISIS_POLICY_FILE": str(policy)}, procs)
        # Setup: one alert opened through the service's own code, cloned n times in bulk (opening
        # 1,000 alerts one by one is itself minutes on the shared store; the drop path is measured above).
        template_client = f"ladder-client-{uuid.uuid4().hex[:10]}"
        await open_alert_directly(alerts, derived_id("bench", template_client), template_client, "BENCH")
        template = await db.alerts.find_one({"_id": derived_id("bench", template_client)}, {"outbox": 0})
        assert template is not None
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        clones = []
        for i in range(n - 1):  # opened over the last `delay_s` seconds: rungs fall due at n/delay_s per second
            alert_id = derived_id("bench", template_client, str(i))
            opened = now - timedelta(seconds=delay_s * i / n)
            rung0 = [{**r, "alert_id": alert_id, "at": opened} for r in template["open_records"]]
            clones.append(
                {
                    **template,
                    "_id": alert_id,
                    "client_id": f"{template_client}-{i}",
                    "opened_at": opened,
                    "open_records": rung0,
                    "due_at": opened + timedelta(seconds=delay_s),
                }
            )
        await db.alerts.insert_many(clones)
        await db.timers.insert_many([{"_id": c["_id"], "due_at": c["due_at"]} for c in clones])
        open_s = time.perf_counter() - t0
        expected = 3 * n
        alert_ids = [derived_id("bench", template_client), *(c["_id"] for c in clones)]
        rung_ids = [rung_id(a, i) for a in alert_ids for i in (1, 2, 3)]
        deadline = time.perf_counter() + delay_s * 3 + 30
        while time.perf_counter() < deadline:  # polled by _id (the last rungs): no scan of the records
            if len(await find_by_ids(db.alert_records, [rung_id(a, 3) for a in alert_ids], {"_id": 1})) >= n:
                break
            await asyncio.sleep(2)
        fired = list((await find_by_ids(db.alert_records, rung_ids, {"at": 1, "due_at": 1})).values())
        lateness = [(f["at"] - f["due_at"]).total_seconds() for f in fired]
    finally:
        await producer.stop()
        stop_instances(procs)
        await mongo.drop_database(db.name)
        await mongo.close()
    return lateness, expected, open_s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200, help="drops per second")
    parser.add_argument("--seconds", type=float, default=5, help="length of the paced runs")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of drops before the measured ones")
    parser.add_argument("--instances", type=int, default=1, help="crisis processes in one consumer group")
    parser.add_argument("--ladders", type=int, default=1000, help="concurrent open ladders")
    parser.add_argument("--only", choices=["drops", "ladders"], help="run one part (the baseline always runs)")
    parser.add_argument("--rung-delay", type=float, default=20, help="seconds between rungs in the ladder run")
    args = parser.parse_args()
    settings = isolated_settings()
    await ensure_consumed_topics(settings)
    skip_backlog(settings)
    n = int(args.rate * args.seconds)
    load = os.getloadavg()
    rates = await store_rates(settings)
    with tempfile.TemporaryDirectory() as tmp:
        base = await baseline(settings, n, args.rate)
        print(table("baseline", [base]), flush=True)
        drop_rows: list[Result] = []
        opened: list[tuple[Result, int]] = []  # (measured drops, alerts with their callback task)
        event_phase_end = time.time()  # the crisis service's own traces end here
        if args.only != "ladders":
            for from_webhook in (False, True):
                warm, drop, with_task = await drops(
                    settings, n, args.rate, int(args.rate * args.warmup), args.instances, from_webhook, Path(tmp)
                )
                print(table("drops", [warm, drop]), flush=True)
                drop_rows += [warm, drop]
                opened.append((drop, with_task))
                if not from_webhook:
                    event_phase_end = time.time()
        lateness: list[float] = []
        expected, open_s = 0, 0.0
        if args.only != "drops":
            lateness, expected, open_s = await ladders(
                settings, args.ladders, args.rung_delay, args.instances, Path(tmp)
            )
    print(table("Crisis: disconnection response vs raw Kafka (one run, local broker + store)", [base, *drop_rows]))
    for drop, with_task in opened:
        print(
            f"{drop.name}: alerts opened {drop.count}/{n}, with the stored CALLBACK task {with_task}; "
            f"p99 ratio to raw {drop.p99_ms / base.p99_ms:.1f}x"
        )
    if opened:
        commands = store_commands(settings, "crisis", f"{topics.ATTENDANCE_IN} process", end=event_phase_end)
        print(store_bound_report(rates, commands, "the crisis service's part of a drop"))
    ms = [x * 1000 for x in lateness]
    print(
        f"\nLadders: {args.ladders} alerts opened in {open_s:.1f} s, rungs every {args.rung_delay:.0f} s; "
        f"rungs fired {len(lateness)}/{expected}; timer lateness p50 {percentile(ms, 50):.0f} ms, "
        f"p99 {percentile(ms, 99):.0f} ms, max {max(ms, default=float('nan')):.0f} ms"
    )
    print(
        f"crisis instances: {args.instances}; machine load average at start (2 cores, shared): "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )


if __name__ == "__main__":
    uvloop.run(main())  # as the services run (services.plumbing.runner.main)
