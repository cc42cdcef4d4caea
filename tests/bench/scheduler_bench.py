"""Scheduler benchmark: slot search and booking over gRPC, tracing on, against a bare grpc.aio baseline.

    .venv/bin/python -m tests.bench.scheduler_bench [--seconds 15] [--concurrency 50] [--rates 150,300]

Starts a real compliance process and a real scheduler process (telemetry on: spans go to
Zipkin, or ZIPKIN_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT), seeds them through their gRPC
APIs, then measures on loopback:
  1. baseline: a bare grpc.aio unary echo server in this process, same concurrency;
  2. SearchSlots calls/s and latency;
  3. BookSession capacity: bookings/s and latency with --concurrency clients always waiting on
     one, every booking a distinct free slot (each one also calls compliance.EvaluateSession);
  4. BookSession paced: bookings offered at each of --rates per second (open loop) for
     --paced-seconds; the target (>= 300 bookings/s with p99 < 50 ms) is read here. With 50
     clients always waiting, p99 < 50 ms would take over 1,000 bookings/s (Little's law), so
     the capacity phase cannot show it;
  5. a race: all clients at once for the same few slots, then a check of the store that
     no clinician or client holds overlapping sessions.
Bounded in time (< 2 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import wrappers_pb2
from pymongo import MongoClient

from iop.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from iop.scheduler.v1 import scheduler_pb2_grpc
from services.plumbing.protos import to_timestamp
from tests.bench.common import CpuAccount, Result, paced, store_bound_report, store_commands, store_rates
from tests.support import ServiceProcess, auth_metadata, drop_databases, isolated_settings

ALL_WEEK = [pb.WeeklyWindow(weekday=i, start="00:00", end="24:00") for i in range(7)]
OPEN_RULES = pb.FatigueRules(
    min_gap_minutes=0,
    max_back_to_back_sessions=1000,
    max_continuous_video_minutes=1440,
    max_clinician_screen_minutes_per_day=1440,
    max_client_screen_minutes_per_day=1440,
)


class Refused(Exception):
    """A booking the scheduler did not make (its status is counted in the refusals)."""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_for(
    seconds: float, concurrency: int, call: Callable[[int], Awaitable[bool]]
) -> tuple[int, int, list[float], float]:
    """Run `call` from `concurrency` workers for `seconds`: (ok, refused, latencies ms, elapsed s)."""
    latencies: list[float] = []
    ok = refused = 0
    stop_at = time.perf_counter() + seconds
    counter = itertools.count()

    async def worker() -> None:
        nonlocal ok, refused
        while time.perf_counter() < stop_at:
            n = next(counter)
            t0 = time.perf_counter()
            success = await call(n)
            latencies.append((time.perf_counter() - t0) * 1000)
            if success:
                ok += 1
            else:
                refused += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, refused, latencies, time.perf_counter() - t0


class Echo(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        async def echo(
            request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
        ) -> wrappers_pb2.StringValue:
            return request

        return grpc.unary_unary_rpc_method_handler(
            echo, wrappers_pb2.StringValue.FromString, wrappers_pb2.StringValue.SerializeToString
        )


async def baseline(seconds: float, concurrency: int) -> tuple[int, int, list[float], float]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([Echo()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    echo = channel.unary_unary(
        "/bench.Echo/Echo",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    payload = wrappers_pb2.StringValue(value="x" * 300)

    async def call(n: int) -> bool:
        await echo(payload, timeout=5)
        return True

    try:
        return await run_for(seconds, concurrency, call)
    finally:
        await channel.close()
        await server.stop(0)


async def main_async(args: argparse.Namespace) -> None:
    settings = isolated_settings()
    rates = await store_rates(settings)  # before the services load the store
    env = {"GRPC_CLIENT_DEADLINE_S": "5"}
    compliance = ServiceProcess("compliance", env=env).start()
    scheduler = ServiceProcess("scheduler", env=env).start()
    rows: list[tuple[str, int, int, list[float], float]] = []
    try:
        md = auth_metadata(settings, "platform", "bench")
        s_channel = grpc.aio.insecure_channel(scheduler.target)
        c_channel = grpc.aio.insecure_channel(compliance.target)
        sch = scheduler_pb2_grpc.SchedulerServiceStub(s_channel)
        cmp = compliance_pb2_grpc.ComplianceServiceStub(c_channel)

        # ---- seed through the APIs
        program = await sch.CreateProgram(
            pb.CreateProgramRequest(
                request_id=uuid.uuid4().hex,
                name="bench",
                time_zone="America/New_York",
                level_of_care="IOP_PSYCH",
                backup_line="+15555550100",
                tracks=[pb.Track(track_id="t", name="t", hours_per_day=3, min_days_per_week=3, max_days_per_week=5)],
                fatigue_rules=OPEN_RULES,
            ),
            metadata=md,
        )
        year = timedelta(days=365)
        now = datetime.now(UTC)
        clinicians = [f"bench-clin-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.clinicians)]
        clients = [f"bench-client-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.clients)]
        sem = asyncio.Semaphore(20)

        async def limited(method: Callable[..., Awaitable[Any]], request: Any) -> Any:
            """A seeding call, made only when one of the 20 places is free (a gRPC call starts
            when it is made: made all at once, over 1,000 of them, the server refused streams)."""
            async with sem:
                return await method(request, metadata=md)

        await asyncio.gather(
            *(
                limited(
                    cmp.RecordLicense,
                    compliance_pb2.RecordLicenseRequest(
                        clinician_id=c,
                        state="NY",
                        license_type="LPC",
                        license_number=f"B-{uuid.uuid4().hex[:10].upper()}",
                        valid_from=to_timestamp(now - year),
                        valid_until=to_timestamp(now + year),
                    ),
                )
                for c in clinicians
            ),
            *(
                limited(
                    sch.SetClinicianAvailability,
                    pb.SetClinicianAvailabilityRequest(
                        clinician_id=c, time_zone="America/New_York", state="NY", windows=ALL_WEEK
                    ),
                )
                for c in clinicians
            ),
            *(
                limited(
                    cmp.RecordConsent,
                    compliance_pb2.RecordConsentRequest(
                        client_id=c,
                        consent_type="TELEHEALTH",
                        form_version="telehealth-2025-01",
                        signed_at=to_timestamp(now - timedelta(days=1)),
                    ),
                )
                for c in clients
            ),
            *(
                limited(
                    sch.SetClientAvailability,
                    pb.SetClientAvailabilityRequest(
                        client_id=c, time_zone="America/New_York", windows=ALL_WEEK, home_state="NY"
                    ),
                )
                for c in clients
            ),
        )
        base = (now + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)

        # ---- 1. baseline
        rows.append(("grpc.aio echo (baseline)", *(await baseline(args.seconds / 2, args.concurrency))))

        # ---- 2. slot search
        async def search(n: int) -> bool:
            frm = base + timedelta(days=n % 20)
            try:
                reply = await sch.SearchSlots(
                    pb.SearchSlotsRequest(
                        program_id=program.program_id,
                        clinician_id=clinicians[n % len(clinicians)],
                        client_ids=[clients[n % len(clients)]],
                        to=to_timestamp(frm + timedelta(days=1)),
                        duration_minutes=60,
                        kind=ev.SESSION_KIND_INDIVIDUAL,
                        limit=10,
                        **{"from": to_timestamp(frm)},
                    ),
                    metadata=md,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as err:
                if err.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # shed past the server's limit
                    raise
                return False
            return len(reply.slots) > 0

        rows.append(("SearchSlots", *(await run_for(args.seconds / 2, args.concurrency, search))))

        refusals: dict[str, int] = {}

        # ---- 3. sustained booking: booking n = clinician n % C, client n % K, a distinct hour
        # (clients cycle faster than clinicians, so no pair collides within the run) from the
        # phase's first day on
        async def book(n: int, first_day: int = 40) -> bool:
            clinician = clinicians[n % len(clinicians)]
            client = clients[n % len(clients)]
            hour = n // len(clinicians)  # distinct per clinician
            start = base + timedelta(days=first_day, hours=hour)
            try:
                await sch.BookSession(
                    pb.ScheduleSessionRequest(
                        request_id=f"bench-{n}-{uuid.uuid4().hex[:6]}",
                        program_id=program.program_id,
                        clinician_id=clinician,
                        client_ids=[client],
                        starts_at=to_timestamp(start),
                        ends_at=to_timestamp(start + timedelta(minutes=60)),
                        kind=ev.SESSION_KIND_INDIVIDUAL,
                    ),
                    metadata=md,
                    timeout=10,
                )
                return True
            except grpc.aio.AioRpcError as err:
                why = f"{err.code().name}:{(err.details() or '')[:40]}"
                refusals[why] = refusals.get(why, 0) + 1
                return False

        assert scheduler.proc is not None and compliance.proc is not None
        cpu = CpuAccount(scheduler=scheduler.proc.pid, compliance=compliance.proc.pid)
        cpu_before = cpu.read()
        rows.append(("BookSession (distinct slots)", *(await run_for(args.seconds, args.concurrency, book))))
        name, ok, refused, _, _ = rows[-1]
        booking_cpu = Result(name, 0, 0, 0, ok, cpu.per_event_us(cpu_before, cpu.read(), ok + refused))
        sustained_end = time.time()  # the traces to count commands in: these bookings, not the race's

        # ---- 4. paced: bookings offered at a fixed rate (open loop), each phase on its own days
        paced_rows: list[tuple[float, int, list[float], float]] = []
        for i, rate in enumerate(args.rates):
            numbers = itertools.count()
            first_day = 50 + 10 * i  # after the capacity phase (days 40-47), before the race (80)

            async def book_or_raise(numbers: Iterator[int] = numbers, first_day: int = first_day) -> None:
                if not await book(next(numbers), first_day):
                    raise Refused

            latencies, failures, achieved = await paced(book_or_raise, args.paced_seconds, rate, (Refused,))
            offered = int(args.paced_seconds * rate)
            rows.append((f"BookSession paced {rate:g}/s", len(latencies), failures, latencies, offered / achieved))
            paced_rows.append((rate, failures, latencies, achieved))

        # ---- 5. race: every client at once for the same 4 slots of 2 clinicians
        race_start = base + timedelta(days=80)

        async def race(n: int) -> bool:
            start = race_start + timedelta(minutes=30 * (n % 4))
            try:
                await sch.BookSession(
                    pb.ScheduleSessionRequest(
                        request_id=f"race-{n}-{uuid.uuid4().hex[:6]}",
                        program_id=program.program_id,
                        clinician_id=clinicians[n % 2],
                        client_ids=[clients[n]],
                        starts_at=to_timestamp(start),
                        ends_at=to_timestamp(start + timedelta(minutes=60)),
                        kind=ev.SESSION_KIND_INDIVIDUAL,
                    ),
                    metadata=md,
                    timeout=20,
                )
                return True
            except grpc.aio.AioRpcError:
                return False

        t0 = time.perf_counter()
        lat: list[float] = []

        async def timed(n: int) -> bool:
            t = time.perf_counter()
            ok = await race(n)
            lat.append((time.perf_counter() - t) * 1000)
            return ok

        results = await asyncio.gather(*(timed(n) for n in range(args.concurrency)))
        rows.append(
            ("BookSession race (same slots)", sum(results), len(results) - sum(results), lat, time.perf_counter() - t0)
        )
        await s_channel.close()
        await c_channel.close()

        mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
        db = mongo[f"{settings.mongodb_database_prefix}scheduler"]
        sessions = list(db.sessions.find({"program_id": program.program_id, "status": "booked"}, {"outbox": 0}))
        mongo.close()
        double = 0
        for key in ("clinician_id", "client_ids"):
            by_owner: dict[str, list[tuple[datetime, datetime]]] = {}
            for s in sessions:
                owners = s[key] if isinstance(s[key], list) else [s[key]]
                for o in owners:
                    by_owner.setdefault(o, []).append((s["starts_at"], s["ends_at"]))
            for intervals in by_owner.values():
                intervals.sort()
                double += sum(1 for a, b in itertools.pairwise(intervals) if b[0] < a[1])
    finally:
        scheduler.stop()
        compliance.stop()

    load = os.getloadavg()
    print(f"\nscheduler benchmark: {args.concurrency} concurrent clients, tracing on, loopback; load avg {load[0]:.1f}")
    print(f"{'measure':32} {'ok':>7} {'refused':>8} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, ok, refused, latencies, elapsed in rows:
        print(
            f"{name:32} {ok:7d} {refused:8d} {ok / elapsed:9.1f} {pct(latencies, 0.5):8.1f} {pct(latencies, 0.99):8.1f}"
        )
    base_rate = rows[0][1] / rows[0][4]
    book_rate = rows[2][1] / rows[2][4]
    print(f"booking / baseline throughput ratio: {book_rate / base_rate:.4f}")
    print(booking_cpu.cpu_line("booking"))
    for rate, failures, latencies, achieved in paced_rows:
        # sustained: every offered booking made, at the offered rate (within 3 %), with p99 < 50 ms
        met = rate >= 300 and failures == 0 and achieved >= 0.97 * rate and pct(latencies, 0.99) < 50
        print(
            f"paced {rate:g}/s: achieved {achieved:.1f}/s, {failures} failed, p99 {pct(latencies, 0.99):.1f} ms; "
            f"target >= 300 bookings/s with p99 < 50 ms: {'MET' if met else 'NOT MET'}"
        )
    print(f"double bookings in the store (overlapping sessions of a clinician or client): {double}")
    print(f"stored bookings checked: {len(sessions)}")
    print(f"refusals in the sustained phase: {refusals}")
    commands = store_commands(
        settings,
        "scheduler",
        "/iop.scheduler.v1.schedulerservice/booksession",
        end=sustained_end,
        within_s=args.seconds,
    )
    print(store_bound_report(rates, commands, "a booking (with compliance's share)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--clinicians", type=int, default=50)
    parser.add_argument("--clients", type=int, default=120)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[150.0, 300.0],
        help="offered bookings/s of the paced phases, comma-separated",
    )
    parser.add_argument("--paced-seconds", type=float, default=10)
    try:
        asyncio.run(main_async(parser.parse_args()))
    finally:
        drop_databases()  # a run's bookings are a few hundred MB in the local store


if __name__ == "__main__":
    main()
