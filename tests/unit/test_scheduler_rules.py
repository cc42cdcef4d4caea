"""Pure scheduling rules: windows, time zones and DST, slots, breaks, fatigue rules, FHIR projection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from iop.compliance.v1 import compliance_pb2
from services.plumbing.errors import FailedPrecondition, FieldViolations, InvalidArgument, Unavailable
from services.scheduler import domain as d
from services.scheduler import fhir
from services.scheduler.compliance_client import require_allowed

NY = d.zone("America/New_York")
LA = d.zone("America/Los_Angeles")
REF = d.load_reference_data()
RULES = REF.default_rules


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


def booked(sid: str, start: datetime, minutes: int, rules: d.Rules = RULES, video: bool = True) -> d.Booked:
    end = start + timedelta(minutes=minutes)
    return d.Booked(sid, start, end, tuple(d.screen_segments(start, end, d.break_plan(start, end, rules), video)))


def violations(windows: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    v = FieldViolations()
    d.parse_windows(windows, "windows", v)
    return v.items


# ---------- reference data ----------


def test_reference_data_loads_and_layers_program_then_clinician() -> None:
    assert REF.rules_version and REF.codes_version
    assert REF.service_code("IOP_PSYCH", d.GROUP) == "S9480"
    assert REF.service_code("IOP_SUD", d.GROUP) == "H0015"
    program = RULES.layered({"max_back_to_back_sessions": 2, "min_gap_minutes": 5})
    clinician = program.layered({"max_back_to_back_sessions": 4})
    assert (program.max_back_to_back_sessions, program.min_gap_minutes) == (2, 5)
    assert (clinician.max_back_to_back_sessions, clinician.min_gap_minutes) == (4, 5)
    assert RULES.layered(None) is RULES


# ---------- time zones and windows ----------


def test_unknown_or_malformed_time_zones_are_rejected() -> None:
    assert d.zone("America/New_York") is not None
    for bad in ("", "Mars/Olympus", "EST5EDT ", "../etc/passwd", "/etc/localtime"):
        assert d.zone(bad) is None, bad


def test_windows_reject_inverted_zero_length_overlapping_and_malformed() -> None:
    assert violations([(0, "09:00", "12:00"), (0, "13:00", "24:00"), (1, "00:00", "08:00")]) == []
    assert [f for f, _ in violations([(0, "12:00", "09:00")])] == ["windows[0].end"]
    assert [f for f, _ in violations([(0, "09:00", "09:00")])] == ["windows[0].end"]
    assert [f for f, _ in violations([(0, "09:00", "12:00"), (0, "11:00", "13:00")])] == ["windows"]
    fields = {f for f, _ in violations([(7, "9:00", "25:00")])}
    assert fields == {"windows[0].weekday", "windows[0].start", "windows[0].end"}


def test_availability_follows_local_time_across_spring_forward() -> None:
    # Monday 09:00-12:00 New York. 2026-03-02 is EST (UTC-5), 2026-03-09 is EDT (UTC-4).
    windows = [d.Window(0, 9 * 60, 12 * 60)]
    assert NY is not None
    assert d.within_windows(utc(2026, 3, 2, 14), utc(2026, 3, 2, 15), NY, windows)
    assert not d.within_windows(utc(2026, 3, 2, 13), utc(2026, 3, 2, 14), NY, windows)
    assert d.within_windows(utc(2026, 3, 9, 13), utc(2026, 3, 9, 14), NY, windows)  # 09:00 EDT
    assert not d.within_windows(utc(2026, 3, 9, 15, 30), utc(2026, 3, 9, 16, 30), NY, windows)  # ends 12:30 EDT


def test_availability_on_the_fall_back_night() -> None:
    # Sunday 2026-11-01: 01:00-02:00 EDT happens, then 01:00-02:00 EST again.
    windows = [d.Window(6, 0, 3 * 60)]
    assert NY is not None
    assert d.within_windows(utc(2026, 11, 1, 5), utc(2026, 11, 1, 7), NY, windows)  # 01:00 EDT -> 02:00 EST
    assert not d.within_windows(utc(2026, 11, 1, 7), utc(2026, 11, 1, 9), NY, windows)  # ends 04:00 EST


def test_a_session_across_local_midnight_needs_both_days_covered() -> None:
    assert LA is not None
    crossing = (utc(2026, 12, 1, 7, 30), utc(2026, 12, 1, 8, 30))  # Mon 23:30 - Tue 00:30 PST
    every_day = [d.Window(i, 0, 24 * 60) for i in range(7)]
    assert d.within_windows(*crossing, LA, every_day)
    assert d.within_windows(*crossing, LA, [d.Window(0, 22 * 60, 24 * 60), d.Window(1, 0, 60)])
    assert not d.within_windows(*crossing, LA, [d.Window(0, 22 * 60, 24 * 60)])  # Tuesday not covered
    assert not d.within_windows(*crossing, LA, [d.Window(0, 22 * 60, 23 * 60 + 45), d.Window(1, 0, 60)])
    assert not d.within_windows(*crossing, LA, [d.Window(0, 22 * 60, 24 * 60), d.Window(1, 15, 60)])
    assert [x.isoformat() for x in d.local_days(*crossing, LA)] == ["2026-11-30", "2026-12-01"]
    assert [x.isoformat() for x in d.local_days(utc(2026, 12, 1, 7), utc(2026, 12, 1, 8), LA)] == ["2026-11-30"]


def test_local_day_uses_the_owners_zone_and_dst_day_lengths() -> None:
    assert NY is not None and LA is not None
    at = utc(2026, 12, 1, 3)  # 22:00 on Nov 30 in New York, 19:00 in Los Angeles
    assert d.local_day(at, NY) == "2026-11-30"
    assert d.local_day(utc(2026, 12, 1, 5), NY) == "2026-12-01"
    # spring-forward Sunday has 23 hours: 04:59Z is still Mar 7 (EST); 05:00Z is Mar 8; 03:59Z Mar 9 is Mar 8 (EDT)
    assert d.local_day(utc(2026, 3, 8, 5), NY) == "2026-03-08"
    assert d.local_day(utc(2026, 3, 9, 3, 59), NY) == "2026-03-08"
    assert d.local_day(utc(2026, 3, 9, 4), NY) == "2026-03-09"


def test_daily_screen_cap_counts_the_local_day_on_a_dst_day() -> None:
    # two 3h groups on the 23-hour spring-forward Sunday in New York: same local day, 320 screen minutes
    assert NY is not None
    first = booked("a", utc(2026, 3, 8, 14), 180)
    second = booked("b", utc(2026, 3, 9, 0), 180)  # 20:00 EDT, still Mar 8
    assert d.local_day(first.start, NY) == d.local_day(second.start, NY)
    rules = RULES.layered({"max_clinician_screen_minutes_per_day": 300})
    assert d.MAX_DAILY_CLINICIAN in d.clinician_violations([first], second, rules)


# ---------- slots ----------


def test_slot_keys_cover_each_15_minutes_and_need_the_grid() -> None:
    start = utc(2026, 12, 1, 14)
    slots = d.slot_starts(start, start + timedelta(minutes=60))
    assert [d.slot_key("clinician:c1", s) for s in slots] == [
        "clinician:c1@20261201T1400",
        "clinician:c1@20261201T1415",
        "clinician:c1@20261201T1430",
        "clinician:c1@20261201T1445",
    ]
    assert d.aligned(start) and not d.aligned(start + timedelta(minutes=5))
    # an overlapping session shares at least one key; an adjacent one shares none
    other = d.slot_starts(start + timedelta(minutes=45), start + timedelta(minutes=90))
    assert set(slots) & set(other)
    assert not set(slots) & set(d.slot_starts(start + timedelta(hours=1), start + timedelta(hours=2)))


def test_candidate_starts_round_up_to_the_grid_and_skip_the_past() -> None:
    now = utc(2026, 12, 1, 14, 7)
    starts = d.candidate_starts(utc(2026, 12, 1, 13), utc(2026, 12, 1, 16), timedelta(hours=1), now)
    assert starts[0] == utc(2026, 12, 1, 14, 15)
    assert starts[-1] == utc(2026, 12, 1, 15)


def test_validate_session_request_names_every_problem() -> None:
    now = utc(2026, 12, 1, 12)
    req = d.SessionRequest(
        request_id="",
        program_id="",
        clinician_id="c",
        client_ids=("a", "a"),
        starts_at=utc(2026, 12, 1, 11, 5),
        ends_at=utc(2026, 12, 1, 11, 5),
        kind=0,
    )
    with pytest.raises(InvalidArgument) as info:
        d.validate_session_request(req, now)
    fields = {f for f, _ in info.value.violations}
    assert {"request_id", "program_id", "client_ids", "kind", "ends_at", "starts_at"} <= fields
    group = d.SessionRequest("r", "p", "c", ("a", "b", "c"), utc(2026, 12, 2, 9), utc(2026, 12, 2, 12), d.GROUP, 2)
    with pytest.raises(InvalidArgument) as info:
        d.validate_session_request(group, now)
    assert [f for f, _ in info.value.violations] == ["client_ids"]  # more clients than seats
    d.validate_session_request(
        d.SessionRequest("r", "p", "c", ("a",), utc(2026, 12, 2, 9), utc(2026, 12, 2, 10), d.INDIVIDUAL), now
    )


def test_an_interruptions_attendance_is_checked_as_an_endings() -> None:
    # the shape: the same rows as at an end; the session's modality is required only with attendance
    rows = [("a", 40, 0), ("", 1441, 9)]
    bad = {"attendance[1].client_id", "attendance[1].minutes_attended", "attendance[1].modality"}
    for ending in (True, False):
        assert {f for f, _ in d.attendance_shape_violations(0, rows, ending=ending)} == bad | {"modality"}
    assert d.attendance_shape_violations(0, [], ending=False) == []  # interrupted, nothing attended given
    assert [f for f, _ in d.attendance_shape_violations(0, [], ending=True)] == ["modality"]
    assert [f for f, _ in d.attendance_shape_violations(7, [], ending=False)] == ["modality"]
    assert d.attendance_rows(d.AUDIO_ONLY, [("a", 40, 0), ("b", 20, d.VIDEO)]) == [
        {"client_id": "a", "minutes_attended": 40, "modality": d.AUDIO_ONLY},
        {"client_id": "b", "minutes_attended": 20, "modality": d.VIDEO},
    ]
    # the minutes: those it ran until the interruption (rounded up), not its booked length; none
    # before it started
    starts = utc(2026, 12, 1, 14)
    assert d.minutes_run(starts, starts + timedelta(minutes=10)) == 10
    assert d.minutes_run(starts, starts + timedelta(minutes=10, seconds=1)) == 11
    assert d.minutes_run(starts - timedelta(minutes=5), starts + timedelta(minutes=25)) == 30  # started early
    assert d.minutes_run(None, starts + timedelta(minutes=25)) == 0
    assert d.attendance_violations([("a", 40, 0)], ["a"], 10, d.INTERRUPTION_BOUND) == [
        ("attendance[0].minutes_attended", "0 to 10 (the minutes it ran until the interruption)")
    ]
    assert d.attendance_violations([("a", 1, 0)], ["a"], 0, d.INTERRUPTION_BOUND) == [
        ("attendance[0].minutes_attended", "0 (the session had not started)")
    ]
    assert d.attendance_violations([("a", 0, 0)], ["a"], 0, d.INTERRUPTION_BOUND) == []


# ---------- breaks and fatigue rules ----------


def test_long_sessions_get_built_in_breaks() -> None:
    start = utc(2026, 12, 1, 14)
    breaks = d.break_plan(start, start + timedelta(hours=3), RULES)
    assert breaks == [
        (start + timedelta(minutes=50), start + timedelta(minutes=60)),
        (start + timedelta(minutes=110), start + timedelta(minutes=120)),
    ]
    three_hours = booked("g", start, 180)
    assert three_hours.screen_minutes() == 160
    assert d.break_plan(start, start + timedelta(minutes=60), RULES) == []
    assert booked("audio", start, 60, video=False).screen_minutes() == 0


def test_a_ledger_entry_keeps_the_booking_and_old_document_entries_still_read() -> None:
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    end = start + timedelta(minutes=150)
    rules = d.load_reference_data().default_rules
    booked = d.Booked(
        "a1b2-c3", start, end, tuple(d.screen_segments(start, end, d.break_plan(start, end, rules), True))
    )
    assert len(booked.segments) == 3  # two built-in breaks
    entry = booked.as_entry()
    assert entry == "a1b2-c3 1796133600 1796142600 1796133600-1796136600 1796137200-1796140200 1796140800-1796142600"
    assert d.Booked.from_entry(entry) == booked
    assert d.Booked.from_entry(d.Booked("s", start, end).as_entry()) == d.Booked("s", start, end)
    old = {"session_id": "a1b2-c3", "start": start, "end": end, "segments": d.segment_docs(booked.segments)}
    assert d.Booked.from_entry(old) == booked
    with pytest.raises(ValueError):
        d.Booked("a b", start, end).as_entry()
    with pytest.raises(ValueError):
        d.Booked("s", start + timedelta(microseconds=5), end).as_entry()


def test_min_gap_between_sessions() -> None:
    a = booked("a", utc(2026, 12, 1, 14), 60)
    assert d.MIN_GAP in d.clinician_violations([a], booked("b", utc(2026, 12, 1, 15), 60), RULES)
    assert d.MIN_GAP not in d.clinician_violations([a], booked("b", utc(2026, 12, 1, 15, 15), 45), RULES)


def test_back_to_back_chain_beyond_the_cap_is_refused() -> None:
    # 60-min sessions with 15-min gaps: a back-to-back chain (gap <= 15), each gap a real break (>= 10)
    day = [booked(str(i), utc(2026, 12, 1, 13) + i * timedelta(minutes=75), 60) for i in range(3)]
    fourth = booked("4", utc(2026, 12, 1, 13) + 3 * timedelta(minutes=75), 60)
    assert d.clinician_violations(day[:2], day[2], RULES) == []
    assert d.clinician_violations(day, fourth, RULES) == [d.MAX_BACK_TO_BACK]
    # a 30-minute gap breaks the chain
    later = booked("5", day[2].end + timedelta(minutes=30), 60)
    assert d.clinician_violations(day, later, RULES) == []
    # the cap is configurable per clinician
    assert d.clinician_violations(day, fourth, RULES.layered({"max_back_to_back_sessions": 4})) == []


def test_continuous_video_without_a_real_break_is_refused() -> None:
    rules = RULES.layered({"min_gap_minutes": 0})
    a = booked("a", utc(2026, 12, 1, 14), 60)
    b = booked("b", utc(2026, 12, 1, 15, 5), 45)  # 5-min gap is no break: 105 continuous minutes > 90
    assert d.MAX_CONTINUOUS_VIDEO in d.clinician_violations([a], b, rules)
    audio = booked("c", utc(2026, 12, 1, 15, 5), 45, video=False)
    assert d.MAX_CONTINUOUS_VIDEO not in d.clinician_violations([a], audio, rules)


def test_daily_screen_time_caps_for_clinicians_and_clients() -> None:
    day = [booked("a", utc(2026, 12, 1, 13), 180), booked("b", utc(2026, 12, 1, 17), 180)]  # 320 screen minutes
    extra = booked("c", utc(2026, 12, 1, 21), 60)
    assert d.MAX_DAILY_CLINICIAN in d.clinician_violations(day, extra, RULES)  # 380 > 360
    assert d.client_violations(day[:1], day[1], RULES) == [d.MAX_DAILY_CLIENT]  # 320 > 240
    assert d.client_violations([], day[0], RULES) == []


def test_day_load_reports_screen_minutes_and_longest_chain() -> None:
    day = [booked(str(i), utc(2026, 12, 1, 13) + i * timedelta(minutes=70), 60) for i in range(3)]
    assert d.day_load(day, RULES.back_to_back_gap_minutes) == (180, 3, 3)
    assert d.day_load([], 15) == (0, 0, 0)


def test_weekly_care_keeps_its_local_time_across_dst() -> None:
    assert NY is not None
    first = utc(2026, 10, 26, 12)  # Monday 08:00 EDT
    occurrences = d.recurrence(first, NY, 7, 3)
    assert [o.astimezone(NY).hour for o in occurrences] == [8, 8, 8]
    assert occurrences[1] == utc(2026, 11, 2, 13)  # 08:00 EST after fall-back


# ---------- compliance decisions ----------


def test_compliance_decisions_map_to_precise_errors() -> None:
    require_allowed(compliance_pb2.SessionEvaluation(decision=compliance_pb2.DECISION_ALLOW))
    with pytest.raises(FailedPrecondition) as deny:
        require_allowed(
            compliance_pb2.SessionEvaluation(decision=compliance_pb2.DECISION_DENY, reasons=["NO_LICENSE_IN_STATE"])
        )
    assert deny.value.reason == "COMPLIANCE_DENIED" and "NO_LICENSE_IN_STATE" in deny.value.message
    with pytest.raises(FailedPrecondition) as review:
        require_allowed(compliance_pb2.SessionEvaluation(decision=compliance_pb2.DECISION_NEEDS_REVIEW))
    assert review.value.reason == "COMPLIANCE_NEEDS_REVIEW"
    with pytest.raises(Unavailable) as none:
        require_allowed(compliance_pb2.SessionEvaluation())
    assert none.value.code == grpc.StatusCode.UNAVAILABLE


# ---------- FHIR ----------


def _session(status: str, **extra: object) -> dict:
    start = utc(2026, 12, 1, 14)
    return {
        "_id": "s-1",
        "clinician_id": "clin-1",
        "client_ids": ["client-1", "client-2"],
        "starts_at": start,
        "ends_at": start + timedelta(hours=3),
        "kind": d.GROUP,
        "status": status,
        **extra,
    }


@pytest.mark.parametrize("status", [d.BOOKED, d.CHECKED_IN, d.IN_PROGRESS, d.ENDED, d.INTERRUPTED, d.CANCELLED])
def test_fhir_appointment_is_valid_r4b(status: str) -> None:
    resource = fhir.appointment(_session(status, cancel_reason="client request"))
    parsed = Appointment.model_validate(resource)
    assert parsed.status == fhir.APPOINTMENT_STATUS[status]
    assert [p.actor.reference for p in parsed.participant if p.actor] == [
        "Practitioner/clin-1",
        "Patient/client-1",
        "Patient/client-2",
    ]


def test_fhir_encounter_is_valid_r4b_once_the_session_happens() -> None:
    assert fhir.encounter(_session(d.BOOKED)) is None
    start = utc(2026, 12, 1, 14)
    ended = fhir.encounter(
        _session(d.ENDED, client_ids=["client-1"], started_at=start, ended_at=start + timedelta(hours=1), minutes=55)
    )
    assert ended is not None
    parsed = Encounter.model_validate(ended)
    assert parsed.status == "finished" and parsed.subject is not None and parsed.length is not None
    group = fhir.encounter(_session(d.INTERRUPTED, started_at=start, interrupted_at=start + timedelta(minutes=20)))
    assert group is not None
    assert Encounter.model_validate(group).status == "finished"


def test_fhir_patient_and_practitioner_carry_only_the_opaque_id() -> None:
    patient = Patient.model_validate(fhir.patient("client-1"))
    assert patient.id == "client-1" and [i.value for i in patient.identifier or []] == ["client-1"]
    practitioner = Practitioner.model_validate(fhir.practitioner("clin-1"))
    assert practitioner.id == "clin-1"
    assert [i.system for i in practitioner.identifier or []] == [fhir.CLINICIAN_ID_SYSTEM]
    # nothing else about the person: no name, telecom, address or birth date
    assert set(fhir.patient("client-1")) == {"resourceType", "id", "identifier", "active"}
    assert set(fhir.practitioner("clin-1")) == {"resourceType", "id", "identifier", "active"}
