"""The simulated IOP day at scale: many clinicians and clients through the public APIs.

    python -m demo.scale --clients 500 --clinicians 60      (on a running platform)

The platform must run with the demo's environment (services.plumbing.launcher.DEMO_ENV: `make run`,
or `SCHEDULER_ATTENDANCE_GRACE_MIN=1440 make services`): the 3-hour groups end seconds after they
start, and with the scheduler's default grace (5 minutes beyond the minutes a session ran) every
EndSession is refused.

Clinicians in six states (licensed where they practise), each with a cohort of clients in
the same state and time zone (consents, prior authorizations, availability). Every clinician
runs a 3-hour video group with their cohort today: booking (compliance evaluates every
client), check-in from a verified location with a privacy attestation, session start, the
video platform's signed webhooks (joins, participation, a few dropped connections that come
back), the end with each client's attendance, and a PHQ-9 and a GAD-7 per client taken in the
session. A third of the clients also get an individual session booked for tomorrow.

The platform load benchmark (tests/bench/platform_bench.py) runs this and then checks what
partner EHRs received against what the services committed to publish.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc

from demo.day import Day, local, next_slot
from demo.platform import Platform, reason_of
from demo.scenarios import check_in_and_start, wait_for
from iop.engagement.v1 import engagement_pb2 as epb
from iop.events.v1 import common_pb2
from iop.events.v1 import scheduling_pb2 as sev
from iop.scheduler.v1 import scheduler_pb2 as spb
from services.plumbing.settings import get_settings

T = TypeVar("T")

# state, time zone, a county with crisis reference data (services/crisis/data), its city
STATES = [
    ("NY", "America/New_York", "36061", "New York"),
    ("CA", "America/Los_Angeles", "06075", "San Francisco"),
    ("TX", "America/Chicago", "48201", "Houston"),
    ("IL", "America/Chicago", "17031", "Chicago"),
    ("WA", "America/Los_Angeles", "53033", "Seattle"),
    ("FL", "America/New_York", "12086", "Miami"),
]
PLAN = "demo-commercial-ppo"
GROUP_MINUTES = 180
DROP_EVERY = 25  # one client in this many loses video for a moment and comes back
CRISIS_EVERY = 100  # one client in this many answers PHQ-9 item 9 above zero
INDIVIDUAL_EVERY = 3  # one client in this many also books an individual session tomorrow


@dataclass
class Cohort:
    clinician: str
    state: str
    zone: str
    county_fips: str
    city: str
    program: spb.Program
    clients: list[str]
    session_id: str = ""


@dataclass
class ScaledDay:
    clinicians: int = 0
    clients: int = 0
    groups: int = 0
    individual_sessions: int = 0
    check_ins: int = 0
    webhooks: int = 0
    outcomes: int = 0
    failures: list[str] = field(default_factory=list)
    phases_s: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def failed(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)


def run_scaled_day(
    p: Platform, clients: int, clinicians: int, workers: int = 8, say: Callable[[str], None] = print
) -> ScaledDay:
    day = Day(p)
    result = ScaledDay()
    with ThreadPoolExecutor(workers) as pool:

        def phase(name: str, work: Callable[[T], Any], items: Sequence[T]) -> None:
            t0 = time.monotonic()
            for done, _ in enumerate(pool.map(lambda item: _attempt(result, name, work, item), items), start=1):
                if done % max(1, len(items) // 5) == 0 or done == len(items):
                    say(f"{name}: {done}/{len(items)}")
            result.phases_s[name] = time.monotonic() - t0

        programs = {s: day.program(f"Adult virtual IOP ({s})", zone, PLAN) for s, zone, _, _ in STATES}
        cohorts = [
            Cohort("", state, zone, fips, city, programs[state], [])
            for i in range(clinicians)
            for state, zone, fips, city in [STATES[i % len(STATES)]]
        ]

        def seed_clinician(cohort: Cohort) -> None:
            cohort.clinician = day.clinician(cohort.state, [cohort.state], cohort.zone)
            result.count("clinicians")

        phase("clinicians", seed_clinician, cohorts)
        members = [cohorts[i % len(cohorts)] for i in range(clients)]

        def seed_client(cohort: Cohort) -> None:
            client = day.client(cohort.state, PLAN, cohort.zone)
            with result._lock:
                cohort.clients.append(client)
            result.count("clients")

        phase("clients", seed_client, members)
        phase("group sessions", lambda cohort: _group_day(p, day, cohort, result), cohorts)
        phase("outcomes", lambda cohort: _questionnaires(day, cohort, result), cohorts)
        phase("tomorrow's individual sessions", lambda cohort: _book_tomorrow(day, cohort, result), cohorts)
    return result


def picked(client_id: str, one_in: int) -> bool:
    """The same one client in `one_in`, in every process (str hash is salted per process)."""
    return zlib.crc32(client_id.encode()) % one_in == 0


def _attempt(result: ScaledDay, phase: str, work: Callable[[T], Any], item: T) -> None:
    try:
        work(item)
    except grpc.RpcError as err:
        result.failed(f"{phase}: {err.code().name} {reason_of(err)}: {(err.details() or '')[:120]}")
    except Exception as exc:  # recorded and counted: the run goes on and reports it
        result.failed(f"{phase}: {type(exc).__name__}: {str(exc)[:120]}")


def _group_day(p: Platform, day: Day, cohort: Cohort, result: ScaledDay) -> None:
    if not cohort.clients:
        return
    session = day.book(
        cohort.program,
        cohort.clinician,
        cohort.clients,
        next_slot(),
        minutes=GROUP_MINUTES,
        kind=sev.SESSION_KIND_GROUP,
        capacity=len(cohort.clients) + 2,
    )
    cohort.session_id = session.session_id
    result.count("groups")
    location = common_pb2.ClientLocation(
        state=cohort.state, county_fips=cohort.county_fips, city=cohort.city, verified=True
    )
    check_in_and_start(p, session, dict.fromkeys(cohort.clients, location), cohort.state)
    result.count("check_ins", len(cohort.clients))
    attendance = epb.GetSessionAttendanceRequest(session_id=session.session_id)
    if not wait_for(lambda: p.call(p.engagement, "GetSessionAttendance", attendance).HasField("started_at"), 60):
        raise TimeoutError(f"engagement did not see session {session.session_id} start")
    hooks: list[tuple[str, str, dict[str, Any]]] = [("meeting.participant_joined", cohort.clinician, {})]
    for n, client in enumerate(cohort.clients):
        hooks += [("meeting.participant_joined", client, {}), ("meeting.participant_video_on", client, {})]
        hooks.append(("meeting.participant_speaking", client, {"speaking_seconds": 30 + n}))
        if picked(client, DROP_EVERY):
            hooks.append(("meeting.participant_left", client, {"leave_reason": "Connection lost"}))
            hooks.append(("meeting.participant_joined", client, {}))
    for event, participant, fields in hooks:
        p.webhook(event, session.session_id, participant, **fields).raise_for_status()
    result.count("webhooks", len(hooks))
    p.call(
        p.scheduler,
        "EndSession",
        spb.EndSessionRequest(
            session_id=session.session_id,
            modality=common_pb2.MODALITY_VIDEO,
            attendance=[
                sev.ClientAttendance(
                    client_id=c, minutes_attended=GROUP_MINUTES - 5, modality=common_pb2.MODALITY_VIDEO
                )
                for c in cohort.clients
            ],
        ),
        role="clinician",
        subject=cohort.clinician,
    )


def _questionnaires(day: Day, cohort: Cohort, result: ScaledDay) -> None:
    for n, client in enumerate(cohort.clients):
        item9 = 1 if picked(client, CRISIS_EVERY) else 0
        day.outcome(client, epb.INSTRUMENT_PHQ9, [1, 1, 2, 1, 0, 1, 1, n % 2, item9], cohort.session_id)
        day.outcome(client, epb.INSTRUMENT_GAD7, [1, 1, 1, 0, 1, 0, n % 3], cohort.session_id)
        result.count("outcomes", 2)


def _book_tomorrow(day: Day, cohort: Cohort, result: ScaledDay) -> None:
    tomorrow = datetime.now(ZoneInfo(cohort.zone)).date() + timedelta(days=1)
    for n, client in enumerate(cohort.clients[::INDIVIDUAL_EVERY]):
        start = local(tomorrow, 9 + 2 * n, 0, cohort.zone)  # two hours apart: no back-to-back chain
        day.book(cohort.program, cohort.clinician, [client], start, minutes=60)
        result.count("individual_sessions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--clinicians", type=int, default=60)
    parser.add_argument("--workers", type=int, default=8, help="concurrent API callers")
    args = parser.parse_args()
    platform = Platform(get_settings())
    t0 = time.monotonic()
    try:
        day = run_scaled_day(platform, args.clients, args.clinicians, args.workers)
    finally:
        platform.close()
    print(f"scaled day: {day.clinicians} clinicians, {day.clients} clients in {time.monotonic() - t0:.0f} s")
    print(f"  groups {day.groups}, check-ins {day.check_ins}, webhooks {day.webhooks}, outcomes {day.outcomes}")
    print(f"  individual sessions booked for tomorrow {day.individual_sessions}; failures {len(day.failures)}")
    for failure in day.failures[:20]:
        print(f"  - {failure}")
    return 0 if not day.failures else 1


if __name__ == "__main__":
    sys.exit(main())
