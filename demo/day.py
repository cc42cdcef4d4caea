"""Seeding a realistic IOP day through the public APIs: programs, clinicians in several
states with licenses and compact privileges, clients with consents, payer plans and
prior authorizations, availability (including the windows when a client is alone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from demo.platform import Platform, uid
from iop.compliance.v1 import compliance_pb2 as cpb
from iop.engagement.v1 import engagement_pb2 as epb
from iop.events.v1 import scheduling_pb2 as sev
from iop.scheduler.v1 import scheduler_pb2 as spb
from services.plumbing.protos import to_timestamp

ALL_WEEK = [spb.WeeklyWindow(weekday=d, start="00:00", end="24:00") for d in range(7)]
NOW = datetime.now(UTC)


def next_slot(after: timedelta = timedelta(minutes=20)) -> datetime:
    at = (datetime.now(UTC) + after).replace(second=0, microsecond=0)
    return at + timedelta(minutes=(15 - at.minute % 15) % 15)


def local(day: date, hour: int, minute: int, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


class Day:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.clinicians = 0
        self.clients = 0
        self.sessions = 0

    def program(self, name: str, zone: str, plan: str, **rules: int) -> spb.Program:
        return self.p.call(
            self.p.scheduler,
            "CreateProgram",
            spb.CreateProgramRequest(
                request_id=uid("program"),
                name=name,
                time_zone=zone,
                level_of_care="IOP_PSYCH",
                backup_line="+18005550100,4321",
                payer_plan_id=plan,
                tracks=[
                    spb.Track(
                        track_id="3x5",
                        name="3 h/day, 3-5 days",
                        hours_per_day=3,
                        min_days_per_week=3,
                        max_days_per_week=5,
                    )
                ],
                fatigue_rules=spb.FatigueRules(**rules),
            ),
        )

    def clinician(
        self, state: str, licensed_in: Sequence[str], zone: str, license_type: str = "LPC", **rules: int
    ) -> str:
        clinician_id = uid("clin")
        for licensed in licensed_in:
            self.p.call(
                self.p.compliance,
                "RecordLicense",
                cpb.RecordLicenseRequest(
                    clinician_id=clinician_id,
                    state=licensed,
                    license_type=license_type,
                    license_number=f"{license_type}-{uid('n')[-8:].upper()}",
                    valid_from=to_timestamp(NOW - timedelta(days=400)),
                    valid_until=to_timestamp(NOW + timedelta(days=400)),
                ),
            )
        self.p.call(
            self.p.scheduler,
            "SetClinicianAvailability",
            spb.SetClinicianAvailabilityRequest(
                clinician_id=clinician_id,
                time_zone=zone,
                state=state,
                windows=ALL_WEEK,
                fatigue_rules=spb.FatigueRules(**rules),
            ),
        )
        self.clinicians += 1
        return clinician_id

    def compact_privilege(self, clinician_id: str, home_state: str, privilege_state: str) -> None:
        self.p.call(
            self.p.compliance,
            "RecordCompactCredential",
            cpb.RecordCompactCredentialRequest(
                clinician_id=clinician_id,
                compact="COUNSELING",
                kind="PRIVILEGE",
                home_state=home_state,
                privilege_state=privilege_state,
                credential_number=f"CC-{uid('p')[-8:].upper()}",
                valid_from=to_timestamp(NOW - timedelta(days=60)),
                valid_until=to_timestamp(NOW + timedelta(days=300)),
            ),
        )

    def client(self, home_state: str, plan: str, zone: str, alone_windows: Sequence[spb.WeeklyWindow] = ()) -> str:
        client_id = uid("client")
        self.p.call(
            self.p.compliance,
            "RecordConsent",
            cpb.RecordConsentRequest(
                client_id=client_id,
                consent_type="TELEHEALTH",
                form_version="telehealth-2025-01",
                signed_at=to_timestamp(NOW - timedelta(days=10)),
            ),
        )
        start = (NOW - timedelta(days=10)).date()
        self.p.call(
            self.p.compliance,
            "RecordAuthorization",
            cpb.RecordAuthorizationRequest(
                client_id=client_id,
                payer_plan_id=plan,
                auth_number=uid("PA"),
                codes=["S9480", "90853", "90834", "90837", "90832"],
                start_date=start.isoformat(),
                end_date=(start + timedelta(days=60)).isoformat(),
                units=30,
            ),
        )
        self.p.call(
            self.p.scheduler,
            "SetClientAvailability",
            spb.SetClientAvailabilityRequest(
                client_id=client_id,
                time_zone=zone,
                windows=ALL_WEEK,
                alone_windows=list(alone_windows),
                home_state=home_state,
                payer_plan_id=plan,
            ),
        )
        self.clients += 1
        return client_id

    def outcome(self, client_id: str, instrument: int, items: Sequence[int], session_id: str = "") -> epb.OutcomeRecord:
        """A PHQ-9 or GAD-7 the client submits (validated item by item), in a session or not."""
        return self.p.call(
            self.p.engagement,
            "SubmitOutcome",
            epb.SubmitOutcomeRequest(
                submission_id=uid("outcome"),
                client_id=client_id,
                instrument=instrument,  # type: ignore[arg-type]
                item_scores=list(items),
                session_id=session_id,
            ),
            role="client",
            subject=client_id,
        )

    def book(
        self,
        program: spb.Program,
        clinician_id: str,
        client_ids: Sequence[str],
        start: datetime,
        minutes: int = 60,
        kind: int = sev.SESSION_KIND_INDIVIDUAL,
        role: str = "platform",
        **extra: object,
    ) -> spb.Session:
        session = self.p.call(
            self.p.scheduler,
            "BookSession",
            spb.ScheduleSessionRequest(
                request_id=uid("booking"),
                program_id=program.program_id,
                clinician_id=clinician_id,
                client_ids=list(client_ids),
                starts_at=to_timestamp(start),
                ends_at=to_timestamp(start + timedelta(minutes=minutes)),
                kind=kind,  # type: ignore[arg-type]
                **extra,  # type: ignore[arg-type]
            ),
            role=role,
        )
        self.sessions += 1
        return session
