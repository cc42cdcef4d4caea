"""Pure crisis domain: C-SSRS risk levels, phones, safety plans, contact routing, the alert lifecycle, the ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.crisis.domain import (
    DROP_AFTER_END_TOLERANCE,
    AlertContext,
    Answer,
    CssrsAnswers,
    LadderPolicy,
    LadderStepSpec,
    Recency,
    Risk,
    Route,
    Status,
    Step,
    TransitionError,
    attempt_stopped_ladder,
    consented_contacts,
    contact_stops_ladder,
    context_problems,
    cssrs_risk,
    decide_on_drop,
    fire_step,
    fold_alert,
    may_act_on,
    overtaken_drops,
    pick_callback_phone,
    plan_in_force,
    risk_after_crisis_signal,
    route_contact,
    signal_restarts_ladder,
    signal_task,
    status_after_step,
    to_windows,
    transition,
    treating_clinicians,
    validate_cssrs,
    validate_plan,
    validate_windows,
)
from services.crisis.reference import NoResourcesForLocation, ReferenceDataError, load_policies, load_resources
from services.crisis.store import with_latest_number
from services.plumbing.phones import PhoneError, normalize_phone

Y, N, U = Answer.YES, Answer.NO, Answer.NOT_ASKED
DATA = Path(__file__).resolve().parents[2] / "services" / "crisis" / "data"


def screener(q1=N, q2=N, q3=U, q4=U, q5=U, q6=N, recency=Recency.UNSPECIFIED) -> CssrsAnswers:
    return CssrsAnswers(q1, q2, q3, q4, q5, q6, recency)


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        (screener(), Risk.LOW),
        (screener(q1=Y), Risk.LOW),
        (screener(q1=Y, q2=Y, q3=N, q4=N, q5=N), Risk.LOW),
        (screener(q1=Y, q2=Y, q3=Y, q4=N, q5=N), Risk.MODERATE),
        (screener(q6=Y, recency=Recency.OVER_3_MONTHS_AGO), Risk.MODERATE),
        (screener(q1=Y, q2=Y, q3=Y, q4=Y, q5=N), Risk.HIGH),
        (screener(q1=Y, q2=Y, q3=N, q4=N, q5=Y), Risk.HIGH),
        (screener(q6=Y, recency=Recency.WITHIN_3_MONTHS), Risk.HIGH),
    ],
)
def test_cssrs_screener_triage(answers: CssrsAnswers, level: Risk) -> None:
    assert validate_cssrs(answers) == []
    assert cssrs_risk(answers)[0] == level


def test_cssrs_reasons_name_the_items() -> None:
    level, reasons = cssrs_risk(screener(q1=Y, q2=Y, q3=Y, q4=Y, q5=N))
    assert level == Risk.HIGH
    assert reasons == ["CSSRS_Q1_WISH_TO_BE_DEAD", "CSSRS_Q2_SUICIDAL_THOUGHTS", "CSSRS_Q3_METHOD", "CSSRS_Q4_INTENT"]


def test_cssrs_skip_logic_is_enforced() -> None:
    fields = {f for f, _ in validate_cssrs(screener(q1=U, q2=N, q3=Y, q6=Y))}
    assert fields == {"wish_to_be_dead", "thoughts_with_method", "behavior_recency"}
    fields = {f for f, _ in validate_cssrs(screener(q2=Y))}
    assert fields == {"thoughts_with_method", "intent", "plan_with_intent"}


def test_crisis_signal_raises_but_never_lowers() -> None:
    assert risk_after_crisis_signal(Risk.LOW, 1) == Risk.MODERATE
    assert risk_after_crisis_signal(Risk.UNSPECIFIED, 3) == Risk.MODERATE
    assert risk_after_crisis_signal(Risk.HIGH, 2) == Risk.HIGH
    assert risk_after_crisis_signal(Risk.LOW, 0) == Risk.LOW


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(415) 555-0134", "+14155550134"),
        ("415.555.0134", "+14155550134"),
        ("1-415-555-0134", "+14155550134"),
        ("+1 415 555 0134", "+14155550134"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_normalize_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


def fullwidth(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "911",
        "555-0134",
        "(115) 555-0134",
        "(911) 555-0134",
        "(415) 155-0134",
        "(415) 911-0134",
        "+1 415 555 013",
        "+0 123 456 789",
        "415-555-01x4",
        "+1234567890123456",
        # digits other than ASCII 0-9 (str.isdigit accepts them; a dialer does not)
        fullwidth("4155550134"),
        "+" + fullwidth("442079460958"),
        "".join(chr(0x0660 + int(d)) for d in "4155550134"),  # Arabic-Indic
        "415555013\u00b2",  # superscript two
        "\uff0b14155550134",  # fullwidth plus
    ],
)
def test_invalid_phone_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(PhoneError):
        normalize_phone(raw)


def test_contact_window_times_are_ascii_digits() -> None:
    nine = fullwidth("09") + ":" + fullwidth("00")
    violations = validate_windows([{"weekdays": [1], "start": nine, "end": "17:00"}], "America/Chicago")
    assert [f for f, _ in violations] == ["contact_windows[0].start"]


def plan(**overrides: object) -> dict:
    p: dict = {
        "client_id": "c-1",
        "warning_signs": ["isolating"],
        "emergency_contacts": [{"name": "Sam", "phone": "415 555 0199", "consent_to_contact": True}],
        "backup_phone": "(415) 555-0134",
        "contact_windows": [{"weekdays": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}],
        "time_zone": "America/Los_Angeles",
    }
    p.update(overrides)
    return p


def test_valid_plan_has_phones_normalized() -> None:
    violations, clean = validate_plan(plan())
    assert violations == []
    assert clean["backup_phone"] == "+14155550134"
    assert clean["emergency_contacts"][0]["phone"] == "+14155550199"


def test_plan_violations_are_all_named() -> None:
    violations, _ = validate_plan(
        plan(
            warning_signs=[" "],
            emergency_contacts=[{"name": "", "phone": "12", "consent_to_contact": False}],
            backup_phone="555",
            contact_windows=[{"weekdays": [8], "start": "18:00", "end": "09:00"}],
            time_zone="Mars/Olympus",
        )
    )
    fields = {f for f, _ in violations}
    assert fields == {
        "plan.warning_signs[0]",
        "plan.emergency_contacts[0].name",
        "plan.emergency_contacts[0].phone",
        "plan.emergency_contacts[0].consent_to_contact",
        "plan.backup_phone",
        "plan.contact_windows[0].weekdays",
        "plan.contact_windows[0].end",
        "plan.time_zone",
    }
    assert any("CONTACT_CONSENT_REQUIRED" in d for _, d in violations)


WINDOWS = to_windows([{"weekdays": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}])


def test_contact_inside_window_goes_to_clinician_work_queue() -> None:
    tuesday_10am_la = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 10:00 in Los Angeles
    r = route_contact(tuesday_10am_la, WINDOWS, "America/Los_Angeles", "clin-1", "oncall-1")
    assert (r.route, r.assignee_id, r.within_window) == (Route.CLINICIAN_WORK_QUEUE, "clin-1", True)


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 2, 4, 0, tzinfo=UTC),  # Tuesday 20:00 in Los Angeles
        datetime(2026, 12, 5, 18, 0, tzinfo=UTC),  # Saturday 10:00
        datetime(2026, 12, 1, 1, 30, tzinfo=UTC),  # Monday 17:30 (window ends 17:00)
    ],
)
def test_after_hours_contact_goes_to_on_call_never_personal(at: datetime) -> None:
    r = route_contact(at, WINDOWS, "America/Los_Angeles", "clin-1", "oncall-1")
    assert (r.route, r.assignee_id, r.reason) == (Route.ON_CALL, "oncall-1", "OUTSIDE_CONTACT_WINDOW")
    assert {x.name for x in Route} == {"UNSPECIFIED", "CLINICIAN_WORK_QUEUE", "ON_CALL"}  # no personal channel exists


def test_no_windows_on_file_routes_to_on_call() -> None:
    r = route_contact(datetime(2026, 12, 1, 18, 0, tzinfo=UTC), [], "", "clin-1", "oncall-1")
    assert (r.route, r.reason) == (Route.ON_CALL, "NO_WINDOWS_ON_FILE")


def test_alert_lifecycle() -> None:
    s = transition(Status.OPEN, "acknowledge")
    assert s == Status.ACKNOWLEDGED
    assert transition(s, "escalate") == Status.ESCALATED
    assert transition(Status.ESCALATED, "contact_made") == Status.CONTACT_MADE
    assert transition(Status.CONTACT_MADE, "resolve") == Status.RESOLVED
    with pytest.raises(TransitionError) as err:
        transition(Status.CONTACT_MADE, "acknowledge")
    assert err.value.reason == "ALERT_STATE_CONFLICT"
    with pytest.raises(TransitionError) as err:
        transition(Status.RESOLVED, "acknowledge")
    assert err.value.reason == "ALERT_RESOLVED"


def test_only_assignees_or_supervisors_act_on_an_alert() -> None:
    assert may_act_on(["clin-1", "oncall-1"], "clin-1", frozenset({"clinician"}))
    assert not may_act_on(["clin-1", "oncall-1"], "clin-2", frozenset({"clinician"}))
    assert may_act_on(["clin-1"], "sup-9", frozenset({"supervisor"}))


def test_a_sessions_care_team_is_its_clinician_and_its_treating_facilitators() -> None:
    facilitators = [("co-1", "co_facilitator"), ("obs-1", "observer"), ("lead-1", "lead"), ("clin-1", "lead")]
    assert treating_clinicians("clin-1", facilitators) == ["clin-1", "co-1", "lead-1"]
    assert treating_clinicians("", [("", "lead")]) == []


POLICY = LadderPolicy(
    "p",
    (
        LadderStepSpec(Step.CLINICIAN_CALLBACK, 0),
        LadderStepSpec(Step.ON_CALL_CLINICIAN, 300),
        LadderStepSpec(Step.EMERGENCY_CONTACT, 600),
        LadderStepSpec(Step.LOCAL_EMERGENCY_SERVICES, 600),
    ),
    "oncall-1",
)


def context(**overrides: object) -> AlertContext:
    fields: dict = {
        "alert_id": "a-1",
        "client_id": "c-1",
        "session_id": "s-1",
        "clinician_id": "clin-1",
        "on_call_id": "oncall-1",
        "callback_phone": "+14155550134",
        "backup_line": "+18005550100",
        "location": {"state": "CA", "county_fips": "06075"},
        "resources": {"region_id": "US-CA-06075"},
        "resources_problem": "",
        "emergency_contacts": [
            {"contact_id": "k1", "name": "Sam", "phone": "+14155550199", "consent_to_contact": True}
        ],
        "windows": WINDOWS,
        "time_zone": "America/Los_Angeles",
    }
    fields.update(overrides)
    return AlertContext(**fields)


IN_HOURS = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
AFTER_HOURS = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def test_ladder_rungs_in_order_with_their_tasks() -> None:
    ctx = context()
    kinds = [fire_step(ctx, POLICY, i, IN_HOURS) for i in range(4)]
    assert [k.step for k in kinds] == [
        Step.CLINICIAN_CALLBACK,
        Step.ON_CALL_CLINICIAN,
        Step.EMERGENCY_CONTACT,
        Step.LOCAL_EMERGENCY_SERVICES,
    ]
    assert [t.kind for k in kinds for t in k.tasks] == [
        "CALLBACK",
        "CALLBACK",
        "EMERGENCY_CONTACT_CALL",
        "EMERGENCY_SERVICES",
    ]
    assert kinds[0].route == Route.CLINICIAN_WORK_QUEUE and kinds[0].assignee_id == "clin-1"
    assert all(k.route == Route.ON_CALL and k.assignee_id == "oncall-1" for k in kinds[1:])
    assert kinds[2].tasks[0].contact_phone == "+14155550199"
    assert all(not k.problems for k in kinds)
    # task ids are derived from alert and rung: a re-fired rung produces the same ids
    assert fire_step(ctx, POLICY, 1, IN_HOURS).tasks[0].task_id == kinds[1].tasks[0].task_id == "a-1:1:callback"


def test_first_rung_after_hours_goes_to_on_call() -> None:
    firing = fire_step(context(), POLICY, 0, AFTER_HOURS)
    assert (firing.route, firing.assignee_id) == (Route.ON_CALL, "oncall-1")


def test_ladder_due_times_and_end() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    assert POLICY.due_after(0, t0) == t0
    assert POLICY.due_after(1, t0) == t0 + timedelta(seconds=300)
    assert POLICY.due_after(3, t0) == t0 + timedelta(seconds=600)
    assert POLICY.due_after(4, t0) is None


def test_ladder_status_escalates_from_second_rung() -> None:
    assert status_after_step(Status.OPEN, 0) == Status.OPEN
    assert status_after_step(Status.OPEN, 1) == Status.ESCALATED
    assert status_after_step(Status.ACKNOWLEDGED, 2) == Status.ESCALATED


def test_missing_data_is_visible_in_the_rungs() -> None:
    ctx = context(callback_phone="", location=None, resources=None, emergency_contacts=[])
    assert fire_step(ctx, POLICY, 0, IN_HOURS).problems == ["NO_BACKUP_PHONE"]
    assert fire_step(ctx, POLICY, 2, IN_HOURS).problems == ["NO_CONSENTED_EMERGENCY_CONTACT"]
    assert fire_step(ctx, POLICY, 3, IN_HOURS).problems == ["NO_VERIFIED_LOCATION"]
    ctx = context(resources=None, resources_problem="NO_RESOURCES_FOR_LOCATION")
    assert fire_step(ctx, POLICY, 3, IN_HOURS).problems == ["NO_RESOURCES_FOR_LOCATION"]


@pytest.mark.parametrize(
    ("checkin_phone", "plan_phone", "phone", "problems"),
    [
        ("(713) 555-0100", "+14155550134", "+17135550100", []),
        ("", "415-555-0134", "+14155550134", []),
        # the check-in's number does not normalize: the plan's, and the problem named
        ("555-0134 (bad)", "415-555-0134", "+14155550134", ["INVALID_BACKUP_PHONE"]),
        ("555-0134 (bad)", "", "", ["INVALID_BACKUP_PHONE", "NO_BACKUP_PHONE"]),
        ("", "", "", ["NO_BACKUP_PHONE"]),
    ],
)
def test_callback_phone_is_always_a_normalized_number(
    checkin_phone: str, plan_phone: str, phone: str, problems: list[str]
) -> None:
    assert pick_callback_phone(checkin_phone, plan_phone) == (phone, problems)


def test_an_invalid_backup_phone_is_named_on_the_callback_tasks() -> None:
    ctx = context(callback_phone="+14155550134", phone_problems=("INVALID_BACKUP_PHONE",))
    for index in (0, 1):  # the clinician's and the on-call clinician's callback
        firing = fire_step(ctx, POLICY, index, IN_HOURS)
        assert firing.tasks[0].kind == "CALLBACK" and firing.tasks[0].problems == ("INVALID_BACKUP_PHONE",)
    assert fire_step(ctx, POLICY, 3, IN_HOURS).problems == []  # not a problem of the emergency-services rung
    assert context_problems(ctx) == ["INVALID_BACKUP_PHONE"]


@pytest.mark.parametrize(
    ("risk", "active", "status", "action"),
    [
        (Risk.HIGH, False, "in_progress", "OPEN_ALERT"),
        (Risk.MODERATE, False, "", "OPEN_ALERT"),
        (Risk.LOW, True, "in_progress", "ESCALATE_ALERT"),
        (Risk.HIGH, True, "in_progress", "ESCALATE_ALERT"),
        (Risk.LOW, False, "in_progress", "RECONNECT_TASK"),
        (Risk.UNSPECIFIED, False, "in_progress", "RECONNECT_TASK"),
        (Risk.HIGH, False, "ended", "IGNORE"),
    ],
)
def test_disconnection_decision(risk: Risk, active: bool, status: str, action: str) -> None:
    dropped = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    assert decide_on_drop(risk, active, status, dropped, dropped - timedelta(hours=1)).action == action


ENDED_AT = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "dropped_at", "closed_at", "action"),
    [
        # the session's end was processed first (another topic): the drop's own time decides
        ("ended", ENDED_AT - timedelta(minutes=2), ENDED_AT, "OPEN_ALERT"),
        ("ended", ENDED_AT, ENDED_AT, "OPEN_ALERT"),  # at the end is still during the session
        # the drop's time is the video platform's clock, the end the scheduler's: a platform clock
        # minutes ahead, or a lost connection reported after the platform's timeout, is still a drop
        ("ended", ENDED_AT + timedelta(seconds=5), ENDED_AT, "OPEN_ALERT"),
        ("ended", ENDED_AT + DROP_AFTER_END_TOLERANCE, ENDED_AT, "OPEN_ALERT"),
        ("ended", ENDED_AT + DROP_AFTER_END_TOLERANCE + timedelta(seconds=1), ENDED_AT, "IGNORE"),
        ("cancelled", ENDED_AT - timedelta(minutes=2), ENDED_AT, "OPEN_ALERT"),
        ("cancelled", ENDED_AT + timedelta(minutes=20), ENDED_AT, "IGNORE"),
        ("ended", ENDED_AT, None, "OPEN_ALERT"),  # an end of unknown time does not rule the drop out
    ],
)
def test_a_drop_is_judged_by_its_own_time_against_the_sessions_end(
    status: str, dropped_at: datetime, closed_at: datetime | None, action: str
) -> None:
    assert decide_on_drop(Risk.HIGH, False, status, dropped_at, closed_at).action == action


def test_shipped_reference_data_loads_and_fails_loudly_for_unknown_locations() -> None:
    catalog = load_resources(DATA / "crisis_resources.yaml")
    assert len({state for state, _ in catalog.regions}) >= 5
    sf = catalog.lookup("CA", "06075")
    assert sf["lifeline"] == "988" and sf["psap_phone"].startswith("+1") and sf["emergency_departments"]
    with pytest.raises(NoResourcesForLocation):
        catalog.lookup("WY", "56021")
    book = load_policies(DATA / "ladder_policies.yaml")
    assert book.for_program("unknown").policy_id == "standard-v1"
    assert book.for_program("iop-adolescent").steps[1].step == Step.EMERGENCY_CONTACT


def test_bad_reference_data_stops_the_service(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text(
        'version: "x"\nregions:\n  - {region_id: A, state: CA, county_fips: "06075", psap_name: P, psap_phone: "123",'
        " mobile_crisis: {name: M, phone: '+14155550100'},"
        " emergency_departments: [{name: E, address: A, phone: '1'}]}\n"
    )
    with pytest.raises(ReferenceDataError):
        load_resources(bad)


T0 = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def rung(index: int, at_s: float, trigger: str = "TIMER") -> dict:
    return {"kind": "RUNG", "index": index, "at": T0 + timedelta(seconds=at_s), "trigger": trigger, "assignee_id": ""}


def test_fold_ladder_advances_rung_by_rung() -> None:
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED")])
    assert (st.status, st.next_step, st.due_at) == (Status.OPEN, 1, T0 + timedelta(seconds=300))
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), rung(1, 301)])
    assert (st.status, st.next_step, st.due_at) == (Status.ESCALATED, 2, T0 + timedelta(seconds=901))
    st = fold_alert(POLICY, T0, [rung(i, i * 300) for i in range(4)])
    assert (st.status, st.next_step, st.due_at, st.rungs_fired) == (Status.ESCALATED, 4, None, (0, 1, 2, 3))


def test_fold_contact_stops_the_ladder_and_a_new_drop_restarts_it() -> None:
    reached = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=10)}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached])
    assert (st.status, st.due_at) == (Status.CONTACT_MADE, None)
    again = rung(1, 20, "DISCONNECTED_AGAIN")
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, again])
    assert (st.status, st.next_step, st.due_at) == (Status.ESCALATED, 2, T0 + timedelta(seconds=620))


def test_a_contact_stops_the_ladder_only_if_made_after_it_was_last_started() -> None:
    """A client reached before a repeat drop (or a restart) and logged after it is history: the
    fold keeps the ladder running, and the attempt is not announced as stopping it."""
    again = rung(1, 20, "DISCONNECTED_AGAIN")
    records = [rung(0, 0, "OPENED"), again]
    assert contact_stops_ladder(T0, records, T0 + timedelta(seconds=20))
    assert not contact_stops_ladder(T0, records, T0 + timedelta(seconds=10))
    assert contact_stops_ladder(T0, [*records, rung(2, 30)], T0 + timedelta(seconds=25))  # a timer rung: no start
    late = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=10)}
    st = fold_alert(POLICY, T0, [*records, late])
    assert (st.status, st.next_step) == (Status.ESCALATED, 2) and st.due_at is not None
    # stored with the attempt; an attempt recorded before that was judged from what was then dated
    assert not attempt_stopped_ladder({**late, "stopped_ladder": False}, T0, records)
    legacy = {**late, "recorded_at": T0 + timedelta(seconds=30)}
    assert not attempt_stopped_ladder(legacy, T0, records)
    assert attempt_stopped_ladder({**legacy, "recorded_at": T0 + timedelta(seconds=15)}, T0, records)
    assert not attempt_stopped_ladder({"kind": "ATTEMPT", "reached": False, "at": T0}, T0, records)


def test_fold_a_timer_rung_recorded_after_a_contact_does_not_restart_the_ladder() -> None:
    """The timer read the alert's records, then the contact was stored, then the timer recorded its
    rung: the client was reached, and no later rung is due."""
    reached = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=300)}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, rung(1, 300.4)])
    assert (st.status, st.next_step, st.due_at) == (Status.CONTACT_MADE, 2, None)
    # a drop after the contact restarts it, a timer rung or not before it
    again = rung(2, 400, "DISCONNECTED_AGAIN")
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, rung(1, 300.4), again])
    assert (st.status, st.next_step, st.due_at) == (Status.ESCALATED, 3, T0 + timedelta(seconds=400 + 600))


def test_fold_acknowledge_and_resolve() -> None:
    ack = {"kind": "ACK", "by": "clin-1", "at": T0 + timedelta(seconds=5)}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), ack])
    assert (st.status, st.acknowledged_by, st.next_step) == (Status.ACKNOWLEDGED, "clin-1", 1)
    assert st.due_at == T0 + timedelta(seconds=300)  # acknowledging does not stop the ladder
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), ack, rung(1, 300)])
    assert st.status == Status.ESCALATED  # escalated after the acknowledgement
    resolved = {"kind": "RESOLVED", "resolution": "SAFE_AT_HOME", "by": "clin-1", "at": T0 + timedelta(seconds=400)}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), ack, rung(1, 300), resolved])
    assert (st.status, st.due_at, st.resolution) == (Status.RESOLVED, None, "SAFE_AT_HOME")


def test_fold_first_rung_delayed() -> None:
    delayed = LadderPolicy("d", (LadderStepSpec(Step.CLINICIAN_CALLBACK, 30), *POLICY.steps[1:]), "oncall-1")
    st = fold_alert(delayed, T0, [])
    assert (st.status, st.next_step, st.due_at) == (Status.OPEN, 0, T0 + timedelta(seconds=30))


def test_consented_contacts_are_read_from_the_plan_as_it_is() -> None:
    sam = {"contact_id": "k1", "name": "Sam", "phone": "+14155550199", "consent_to_contact": True}
    lee = {"contact_id": "k2", "name": "Lee", "phone": "+14155550198", "consent_to_contact": False}
    assert consented_contacts({"emergency_contacts": [sam, lee]}) == [sam]
    assert consented_contacts({"emergency_contacts": [sam], "retired": True}) == []
    assert consented_contacts({"emergency_contacts": []}) == []
    assert consented_contacts(None) == []


def test_a_crisis_signal_on_an_active_alert_is_a_task_for_whoever_answers_it() -> None:
    task = signal_task(context(), IN_HOURS, "a-1:sig-1:signal", escalated=False)
    assert (task.kind, task.route, task.assignee_id) == ("CRISIS_SIGNAL", Route.CLINICIAN_WORK_QUEUE, "clin-1")
    escalated = signal_task(context(), IN_HOURS, "a-1:sig-1:signal", escalated=True)
    assert (escalated.route, escalated.assignee_id) == (Route.ON_CALL, "oncall-1")


def test_fold_a_signal_neither_restarts_nor_moves_the_ladder() -> None:
    signal = {"kind": "SIGNAL", "reason": "PHQ9_ITEM9_POSITIVE", "at": T0 + timedelta(seconds=20)}
    running = fold_alert(POLICY, T0, [rung(0, 0, "OPENED")])
    assert fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), signal]) == running
    reached = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=10)}
    stopped = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached])
    assert fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, signal]) == stopped


def test_fold_a_restart_after_contact_runs_the_ladder_again_from_its_first_rung() -> None:
    """A crisis signal after the client was reached is a new risk: round 1's first rung (fired at
    the signal) restarts the ladder; its next rungs are due from it, as at open."""
    reached = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=10)}
    stopped = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached])
    assert signal_restarts_ladder(stopped)
    restart = {**rung(0, 50, "CRISIS_SIGNAL"), "round": 1}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, restart])
    assert (st.status, st.ladder_round, st.next_step, st.rungs_fired, st.due_at) == (
        Status.ESCALATED,
        1,
        1,
        (0,),
        T0 + timedelta(seconds=50 + 300),
    )
    assert not signal_restarts_ladder(st)  # a second signal now is noted, not another restart
    # a timer rung of round 0 in flight when the restart came is recorded late: it moves nothing
    late = rung(1, 51)
    assert fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, restart, late]) == st
    # round 1 goes on by its timers, and a contact stops it again
    on_call = {**rung(1, 350), "round": 1}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, restart, late, on_call])
    assert (st.ladder_round, st.next_step, st.due_at) == (1, 2, T0 + timedelta(seconds=350 + 600))
    again = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=400)}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, restart, late, on_call, again])
    assert (st.status, st.due_at) == (Status.CONTACT_MADE, None) and signal_restarts_ladder(st)


def test_a_drop_that_a_restart_overtook_is_answered_in_the_restarted_round() -> None:
    """A drop and a signal handled at once, both reading the ladder stopped by a contact: the
    drop's rung of round 0 is history beside round 1's restart, so it is answered again in round 1,
    once. A drop before a later contact is history the restart read (not overtaken)."""
    reached = {"kind": "ATTEMPT", "reached": True, "at": T0 + timedelta(seconds=10)}
    restart = {**rung(0, 50, "CRISIS_SIGNAL"), "round": 1, "trigger_id": "signal"}
    drop = {**rung(1, 50.002, "DISCONNECTED_AGAIN"), "trigger_id": "drop"}
    assert overtaken_drops([rung(0, 0, "OPENED"), reached, drop]) == []  # no restart: the drop moved it
    assert overtaken_drops([rung(0, 0, "OPENED"), reached, drop, restart]) == ["drop"]
    repeat = {"kind": "REPEAT", "round": 0, "trigger": "DISCONNECTED_AGAIN", "trigger_id": "drop", "at": drop["at"]}
    assert overtaken_drops([rung(0, 0, "OPENED"), reached, repeat, restart]) == ["drop"]  # a ladder run out
    answered = {**rung(1, 50.1, "DISCONNECTED_AGAIN"), "round": 1, "trigger_id": "drop"}
    st = fold_alert(POLICY, T0, [rung(0, 0, "OPENED"), reached, drop, restart, answered])
    assert overtaken_drops([rung(0, 0, "OPENED"), reached, drop, restart, answered]) == []
    assert (st.ladder_round, st.next_step, st.due_at) == (1, 2, answered["at"] + timedelta(seconds=600))
    # the drop was before a contact that the restart answered: nothing was overtaken
    earlier_drop = {**rung(1, 5, "DISCONNECTED_AGAIN"), "trigger_id": "drop"}
    assert overtaken_drops([rung(0, 0, "OPENED"), earlier_drop, reached, restart]) == []
    # a timer rung in flight when the restart came is no drop: history, as before
    assert overtaken_drops([rung(0, 0, "OPENED"), reached, restart, rung(1, 51)]) == []


def test_a_running_or_exhausted_ladder_is_not_restarted_by_a_signal() -> None:
    assert not signal_restarts_ladder(fold_alert(POLICY, T0, [rung(0, 0, "OPENED")]))
    assert not signal_restarts_ladder(fold_alert(POLICY, T0, [rung(i, i * 300) for i in range(4)]))


def test_a_restarted_rounds_tasks_have_their_own_ids() -> None:
    first = fire_step(context(), POLICY, 0, IN_HOURS)
    again = fire_step(context(), POLICY, 0, IN_HOURS, ladder_round=1)
    assert [t.task_id for t in first.tasks] == ["a-1:0:callback"]
    assert [t.task_id for t in again.tasks] == ["a-1:r1:0:callback"]


def test_the_plan_in_force_at_a_time_is_the_latest_saved_by_then() -> None:
    v1 = {"version": 1, "updated_at": T0}
    v2 = {"version": 2, "updated_at": T0 + timedelta(minutes=10)}  # consent withdrawn
    assert plan_in_force([v1, v2], T0 + timedelta(minutes=5)) == v1
    assert plan_in_force([v2, v1], T0 + timedelta(minutes=10)) == v2  # at the withdrawal: withdrawn
    assert plan_in_force([v1, v2], T0 - timedelta(seconds=1)) is None


def test_the_current_checkin_has_the_number_given_latest_among_the_records_read() -> None:
    def checkin(n: int, minutes: int, phone: str = "", given: int | None = None) -> dict[str, object]:
        doc: dict[str, object] = {"_id": f"c:checkin:{n:06d}", "at": T0 + timedelta(minutes=minutes)}
        if phone:
            doc["backup_phone"] = phone
            if given is not None:
                doc["backup_phone_at"] = T0 + timedelta(minutes=given)
        return doc

    older = checkin(2, 1, "+14155550101", 1)  # gave its own number
    newer = checkin(3, 2, "+14155550100", 0)  # applied beside it: kept the one its writer read
    assert with_latest_number(newer, [newer, older])["backup_phone"] == "+14155550101"
    assert with_latest_number(newer, [newer, older])["backup_phone_at"] == T0 + timedelta(minutes=1)
    assert with_latest_number(checkin(3, 2), [checkin(3, 2), older])["backup_phone"] == "+14155550101"
    own = checkin(3, 2, "+14155550102", 2)
    assert with_latest_number(own, [own, older]) == own  # its own number
    tie = checkin(2, 2, "+14155550101", 2)  # another session's check-in at the same instant
    assert with_latest_number(own, [own, tie]) == own
    assert with_latest_number(checkin(3, 2), [checkin(3, 2)]) == checkin(3, 2)  # no number anywhere
    legacy = checkin(2, 1, "+14155550101")  # stored before records named when: its own time
    assert with_latest_number(newer, [newer, legacy])["backup_phone"] == "+14155550101"
