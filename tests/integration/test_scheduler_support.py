"""Helpers for the scheduler's integration and e2e tests (no tests here).

Real processes only: the scheduler and the compliance service run as OS
processes on the real broker and store; compliance is seeded through its gRPC API.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from iop.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from iop.events.v1 import scheduling_pb2 as ev
from iop.scheduler.v1 import scheduler_pb2 as pb
from iop.scheduler.v1 import scheduler_pb2_grpc
from services.plumbing.errors import bad_request_violations, error_reason
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.support import ServiceProcess, auth_metadata

ALL_WEEK = [pb.WeeklyWindow(weekday=i, start="00:00", end="24:00") for i in range(7)]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def next_slot(after: timedelta = timedelta(minutes=30)) -> datetime:
    """A slot-grid instant at least `after` from now."""
    at = datetime.now(UTC) + after
    at = at.replace(second=0, microsecond=0)
    return at + timedelta(minutes=(15 - at.minute % 15) % 15)


NEW_YORK = ZoneInfo("America/New_York")


@functools.cache
def _test_run_day(zone: ZoneInfo) -> date:
    """The local date in `zone` when the run first asked: every `local_day_at` of a run counts from
    it, so a test's instants stay on the days it meant when the run crosses local midnight."""
    return datetime.now(zone).date()


def local_day_at(days_ahead: int, hour: int, minute: int = 0, zone: ZoneInfo = NEW_YORK) -> datetime:
    """`hour:minute` local time, `days_ahead` days (>= 1, so never in the past) from the run's
    day in `zone` (the programs' zone)."""
    if days_ahead < 1:
        raise ValueError("days_ahead must be at least 1: today's hours may be past")
    day = _test_run_day(zone) + timedelta(days=days_ahead)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def running_for(scheduler_db: Any, session: str, minutes: int) -> None:
    """The session started `minutes` ago (moved back in the store: a test cannot wait that long)."""
    began = datetime.now(UTC) - timedelta(minutes=minutes)
    assert scheduler_db.sessions.update_one({"_id": session}, {"$set": {"started_at": began}}).modified_count == 1


def rich_status(err: grpc.RpcError) -> status_pb2.Status:
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None, "no google.rpc.Status in trailers"
    return st


def reason_of(err: grpc.RpcError) -> str | None:
    return error_reason(rich_status(err))


def fields_of(err: grpc.RpcError) -> set[str]:
    return {f for f, _ in bad_request_violations(rich_status(err))}


@dataclass
class Api:
    """Synchronous stubs for one scheduler and the compliance service, with role tokens."""

    settings: Settings
    scheduler_target: str
    compliance_target: str

    def __post_init__(self) -> None:
        self._sch_channel = grpc.insecure_channel(self.scheduler_target)
        self._cmp_channel = grpc.insecure_channel(self.compliance_target)
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self._sch_channel)
        self.compliance = compliance_pb2_grpc.ComplianceServiceStub(self._cmp_channel)

    def close(self) -> None:
        self._sch_channel.close()
        self._cmp_channel.close()

    def md(self, role: str = "platform", subject: str = "test-app") -> list[tuple[str, str]]:
        return auth_metadata(self.settings, role, subject)

    def call(self, method: str, request: Any, role: str = "platform", subject: str = "test-app", **kw: Any) -> Any:
        return getattr(self.scheduler, method)(
            request, metadata=kw.pop("metadata", None) or self.md(role, subject), timeout=30
        )

    # ---------- seeding ----------

    def program(self, payer_plan_id: str = "", **rules: int) -> pb.Program:
        return self.call(
            "CreateProgram",
            pb.CreateProgramRequest(
                request_id=uid("prog-req"),
                name="Adult IOP",
                time_zone="America/New_York",
                level_of_care="IOP_PSYCH",
                backup_line="+15555550100,1234",
                tracks=[
                    pb.Track(
                        track_id="t3x5", name="3h x 3-5 days", hours_per_day=3, min_days_per_week=3, max_days_per_week=5
                    )
                ],
                fatigue_rules=pb.FatigueRules(**rules),
                payer_plan_id=payer_plan_id,
            ),
        )

    def cohort(self, program_id: str, client_ids: list[str]) -> pb.Cohort:
        """A cohort of the program's three-to-five-day track, starting today."""
        return self.call(
            "CreateCohort",
            pb.CreateCohortRequest(
                request_id=uid("cohort"),
                program_id=program_id,
                track_id="t3x5",
                client_ids=client_ids,
                starts_on=to_timestamp(datetime.now(UTC)),
            ),
        )

    def clinician(
        self,
        clinician_id: str | None = None,
        state: str = "NY",
        licensed_in: Sequence[str] = ("NY",),
        windows: Sequence[pb.WeeklyWindow] = ALL_WEEK,
        time_zone: str = "America/New_York",
        **rules: int,
    ) -> str:
        clinician_id = clinician_id or uid("clin")
        for s in licensed_in:
            self.compliance.RecordLicense(
                compliance_pb2.RecordLicenseRequest(
                    clinician_id=clinician_id,
                    state=s,
                    license_type="LPC",
                    license_number=f"LPC-{uuid.uuid4().hex[:8].upper()}",
                    valid_from=to_timestamp(datetime.now(UTC) - timedelta(days=365)),
                    valid_until=to_timestamp(datetime.now(UTC) + timedelta(days=365)),
                ),
                metadata=self.md(),
                timeout=10,
            )
        self.call(
            "SetClinicianAvailability",
            pb.SetClinicianAvailabilityRequest(
                clinician_id=clinician_id,
                time_zone=time_zone,
                state=state,
                windows=list(windows),
                fatigue_rules=pb.FatigueRules(**rules),
            ),
        )
        return clinician_id

    def client(
        self,
        client_id: str | None = None,
        home_state: str = "NY",
        windows: Sequence[pb.WeeklyWindow] = ALL_WEEK,
        alone_windows: Sequence[pb.WeeklyWindow] = (),
        time_zone: str = "America/New_York",
        consent: bool = True,
    ) -> str:
        client_id = client_id or uid("client")
        if consent:
            self.compliance.RecordConsent(
                compliance_pb2.RecordConsentRequest(
                    client_id=client_id,
                    consent_type="TELEHEALTH",
                    form_version="telehealth-2025-01",
                    signed_at=to_timestamp(datetime.now(UTC) - timedelta(days=1)),
                ),
                metadata=self.md(),
                timeout=10,
            )
        self.call(
            "SetClientAvailability",
            pb.SetClientAvailabilityRequest(
                client_id=client_id,
                time_zone=time_zone,
                windows=list(windows),
                alone_windows=list(alone_windows),
                home_state=home_state,
            ),
        )
        return client_id

    def book(
        self,
        program_id: str,
        clinician_id: str,
        client_ids: Sequence[str],
        start: datetime,
        minutes: int = 60,
        kind: int = ev.SESSION_KIND_INDIVIDUAL,
        role: str = "platform",
        **extra: Any,
    ) -> pb.Session:
        metadata = extra.pop("metadata", None)
        request = pb.ScheduleSessionRequest(
            request_id=extra.pop("request_id", None) or uid("book"),
            program_id=program_id,
            clinician_id=clinician_id,
            client_ids=list(client_ids),
            starts_at=to_timestamp(start),
            ends_at=to_timestamp(start + timedelta(minutes=minutes)),
            kind=kind,  # type: ignore[arg-type]
            **extra,
        )
        return self.call("BookSession", request, role=role, metadata=metadata)


# The machine is shared (2 cores): give the compliance call more than the 2 s production deadline.
SCHEDULER_ENV = {"GRPC_CLIENT_DEADLINE_S": "10"}


@contextlib.contextmanager
def scheduler_with_compliance(settings: Settings) -> Iterator[Api]:
    """A compliance and a scheduler process of this test run, and the Api on both; the scheduler
    must stop cleanly (drained)."""
    compliance = ServiceProcess("compliance")
    scheduler = ServiceProcess("scheduler", env=SCHEDULER_ENV)
    try:
        compliance.start()
        scheduler.start()
        client = Api(settings, scheduler.target, compliance.target)
        yield client
        client.close()
    finally:
        assert scheduler.stop() == 0, f"scheduler did not stop cleanly; see {scheduler.log_path}"
        compliance.stop()
