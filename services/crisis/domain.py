"""Pure crisis domain logic: phones, C-SSRS risk, safety plans, contact routing, alerts and the ladder.

No I/O here: the store, handlers and API call these functions with plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.plumbing.phones import PhoneError, normalize_phone

# ----------------------------------------------------------------------------- risk


class Risk(IntEnum):
    """Values match iop.events.v1.RiskLevel."""

    UNSPECIFIED = 0
    LOW = 1
    MODERATE = 2
    HIGH = 3


ELEVATED = frozenset({Risk.MODERATE, Risk.HIGH})


class Answer(IntEnum):
    """Values match iop.crisis.v1.Answer."""

    NOT_ASKED = 0
    NO = 1
    YES = 2


class Recency(IntEnum):
    UNSPECIFIED = 0
    WITHIN_3_MONTHS = 1
    OVER_3_MONTHS_AGO = 2


@dataclass(frozen=True)
class CssrsAnswers:
    """The C-SSRS screener: Q1-Q5 about the past month, Q6 about suicidal behaviour."""

    wish_to_be_dead: Answer  # Q1
    suicidal_thoughts: Answer  # Q2
    thoughts_with_method: Answer  # Q3 (asked only when Q2 is yes)
    intent: Answer  # Q4 (asked only when Q2 is yes)
    plan_with_intent: Answer  # Q5 (asked only when Q2 is yes)
    suicidal_behavior: Answer  # Q6
    behavior_recency: Recency = Recency.UNSPECIFIED


def validate_cssrs(a: CssrsAnswers) -> list[tuple[str, str]]:
    """The screener's skip logic: Q1, Q2 and Q6 always; Q3-Q5 exactly when Q2 is yes."""
    out: list[tuple[str, str]] = []
    for name in ("wish_to_be_dead", "suicidal_thoughts", "suicidal_behavior"):
        if getattr(a, name) == Answer.NOT_ASKED:
            out.append((name, "required: YES or NO"))
    for name in ("thoughts_with_method", "intent", "plan_with_intent"):
        value = getattr(a, name)
        if a.suicidal_thoughts == Answer.YES and value == Answer.NOT_ASKED:
            out.append((name, "required when suicidal_thoughts is YES"))
        if a.suicidal_thoughts == Answer.NO and value != Answer.NOT_ASKED:
            out.append((name, "must be unset when suicidal_thoughts is NO (the screener skips it)"))
    if a.suicidal_behavior == Answer.YES and a.behavior_recency == Recency.UNSPECIFIED:
        out.append(("behavior_recency", "required when suicidal_behavior is YES"))
    if a.suicidal_behavior != Answer.YES and a.behavior_recency != Recency.UNSPECIFIED:
        out.append(("behavior_recency", "must be unset unless suicidal_behavior is YES"))
    return out


def cssrs_risk(a: CssrsAnswers) -> tuple[Risk, list[str]]:
    """Triage of the C-SSRS screener (Columbia's colour-coded rules).

    high: Q4 (intent) or Q5 (plan with intent) yes, or suicidal behaviour within 3 months;
    moderate: Q3 (thoughts with method) yes, or behaviour more than 3 months ago;
    low: Q1 or Q2 yes only, or no ideation at all.
    """
    reasons: list[str] = []
    level = Risk.LOW
    if a.wish_to_be_dead == Answer.YES:
        reasons.append("CSSRS_Q1_WISH_TO_BE_DEAD")
    if a.suicidal_thoughts == Answer.YES:
        reasons.append("CSSRS_Q2_SUICIDAL_THOUGHTS")
    if a.thoughts_with_method == Answer.YES:
        reasons.append("CSSRS_Q3_METHOD")
        level = max(level, Risk.MODERATE)
    if a.suicidal_behavior == Answer.YES and a.behavior_recency == Recency.OVER_3_MONTHS_AGO:
        reasons.append("CSSRS_Q6_BEHAVIOR_OVER_3_MONTHS")
        level = max(level, Risk.MODERATE)
    if a.intent == Answer.YES:
        reasons.append("CSSRS_Q4_INTENT")
        level = Risk.HIGH
    if a.plan_with_intent == Answer.YES:
        reasons.append("CSSRS_Q5_PLAN_WITH_INTENT")
        level = Risk.HIGH
    if a.suicidal_behavior == Answer.YES and a.behavior_recency == Recency.WITHIN_3_MONTHS:
        reasons.append("CSSRS_Q6_BEHAVIOR_WITHIN_3_MONTHS")
        level = Risk.HIGH
    if not reasons:
        reasons.append("CSSRS_NO_IDEATION")
    return level, reasons


PHQ9_ITEM_MAX = 3  # a PHQ-9 item is answered 0 (not at all) .. 3 (nearly every day)


def risk_after_crisis_signal(current: Risk, value: int) -> Risk:
    """A positive PHQ-9 item 9 (value >= 1) raises risk to at least MODERATE; it never lowers it."""
    if value < 1:
        return current
    return max(current, Risk.MODERATE)


# ----------------------------------------------------------------------------- phones


PHONE_PROBLEMS = frozenset({"NO_BACKUP_PHONE", "INVALID_BACKUP_PHONE"})


def pick_callback_phone(*candidates: str) -> tuple[str, list[str]]:
    """The number to call the client back on: the first of `candidates` (the check-in's backup
    phone, then the plan's) that normalizes, in E.164. One that does not is skipped and named
    (INVALID_BACKUP_PHONE); with none left, "" and NO_BACKUP_PHONE. Never an unnormalized number."""
    problems: list[str] = []
    for raw in candidates:
        if not raw:
            continue
        try:
            return normalize_phone(raw), problems
        except PhoneError:
            if "INVALID_BACKUP_PHONE" not in problems:
                problems.append("INVALID_BACKUP_PHONE")
    return "", [*problems, "NO_BACKUP_PHONE"]


# ----------------------------------------------------------------------------- contact windows


@dataclass(frozen=True)
class ContactWindow:
    weekdays: tuple[int, ...]  # ISO: 1 = Monday .. 7 = Sunday
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        return local.isoweekday() in self.weekdays and self.start <= local.time() < self.end


def parse_hhmm(value: str) -> time:
    if not re.fullmatch(r"[0-9]{2}:[0-9]{2}", value):
        raise ValueError("must be HH:MM")
    hour, minute = int(value[:2]), int(value[3:])
    if hour > 23 or minute > 59:
        raise ValueError("must be a time of day HH:MM")
    return time(hour, minute)


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def validate_windows(windows: list[dict[str, Any]], time_zone: str, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if windows and not time_zone:
        out.append((f"{prefix}time_zone", "required when contact_windows are given"))
    if time_zone and not valid_time_zone(time_zone):
        out.append((f"{prefix}time_zone", "not an IANA time zone (e.g. America/Chicago)"))
    for i, w in enumerate(windows):
        where = f"{prefix}contact_windows[{i}]"
        days = w.get("weekdays") or []
        if not days or any(d < 1 or d > 7 for d in days):
            out.append((f"{where}.weekdays", "one or more ISO weekdays 1 (Monday) .. 7 (Sunday)"))
        parsed: dict[str, time] = {}
        for name in ("start", "end"):
            try:
                parsed[name] = parse_hhmm(str(w.get(name, "")))
            except ValueError as exc:
                out.append((f"{where}.{name}", str(exc)))
        if len(parsed) == 2 and parsed["start"] >= parsed["end"]:
            out.append((f"{where}.end", "must be after start"))
    return out


def to_windows(windows: list[dict[str, Any]]) -> list[ContactWindow]:
    return [ContactWindow(tuple(w["weekdays"]), parse_hhmm(w["start"]), parse_hhmm(w["end"])) for w in windows]


class Route(IntEnum):
    """Values match iop.events.v1.ContactRoute. There is deliberately no personal channel."""

    UNSPECIFIED = 0
    CLINICIAN_WORK_QUEUE = 1
    ON_CALL = 2


@dataclass(frozen=True)
class Routing:
    route: Route
    assignee_id: str
    within_window: bool
    reason: str


def route_contact(
    at: datetime, windows: list[ContactWindow], time_zone: str, clinician_id: str, on_call_id: str
) -> Routing:
    """Inside the client's allowed contact windows: the clinician's work queue.
    Outside them, without windows on file, or with no clinician: on-call. Never a personal channel."""
    if not windows or not time_zone:
        return Routing(Route.ON_CALL, on_call_id, False, "NO_WINDOWS_ON_FILE")
    local = at.astimezone(ZoneInfo(time_zone))
    if any(w.contains(local) for w in windows) and clinician_id:
        return Routing(Route.CLINICIAN_WORK_QUEUE, clinician_id, True, "WITHIN_CONTACT_WINDOW")
    return Routing(Route.ON_CALL, on_call_id, False, "OUTSIDE_CONTACT_WINDOW")


# ----------------------------------------------------------------------------- safety plans

PLAN_SECTIONS = (
    "warning_signs",
    "internal_coping_strategies",
    "social_distractions",
    "people_to_ask_for_help",
    "professionals_and_agencies",
    "environment_safety",
)
MAX_ITEMS = 50
MAX_TEXT = 500


def validate_plan(plan: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Every problem with a safety plan, and the plan with phones normalized to E.164."""
    out: list[tuple[str, str]] = []
    clean = dict(plan)
    if not plan.get("client_id"):
        out.append(("plan.client_id", "required"))
    if not any(plan.get(s) for s in PLAN_SECTIONS):
        out.append(("plan", "at least one of the six Stanley-Brown sections must have an entry"))
    for section in PLAN_SECTIONS:
        items = plan.get(section) or []
        if len(items) > MAX_ITEMS:
            out.append((f"plan.{section}", f"at most {MAX_ITEMS} entries"))
        for i, item in enumerate(items):
            if not item.strip():
                out.append((f"plan.{section}[{i}]", "must not be blank"))
            elif len(item) > MAX_TEXT:
                out.append((f"plan.{section}[{i}]", f"at most {MAX_TEXT} characters"))
    contacts = []
    for i, contact in enumerate(plan.get("emergency_contacts") or []):
        where = f"plan.emergency_contacts[{i}]"
        c = dict(contact)
        if not c.get("name", "").strip():
            out.append((f"{where}.name", "required"))
        try:
            c["phone"] = normalize_phone(c.get("phone", ""))
        except PhoneError as exc:
            out.append((f"{where}.phone", str(exc)))
        if not c.get("consent_to_contact"):
            out.append(
                (
                    f"{where}.consent_to_contact",
                    "CONTACT_CONSENT_REQUIRED: an emergency contact needs the client's consent to be contacted "
                    "(list people without consent under people_to_ask_for_help)",
                )
            )
        contacts.append(c)
    clean["emergency_contacts"] = contacts
    if plan.get("backup_phone"):
        try:
            clean["backup_phone"] = normalize_phone(plan["backup_phone"])
        except PhoneError as exc:
            out.append(("plan.backup_phone", str(exc)))
    out.extend(validate_windows(plan.get("contact_windows") or [], plan.get("time_zone", ""), prefix="plan."))
    return out, clean


def consented_contacts(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The emergency contacts the client consents to be contacted, in the plan as it is now (none
    when there is no plan or it was retired). Consent is read when a contact is about to be
    called or an attempt recorded, never from a snapshot: it may be withdrawn during an alert."""
    if plan is None or plan.get("retired"):
        return []
    return [
        {"contact_id": c["contact_id"], "name": c["name"], "phone": c["phone"], "consent_to_contact": True}
        for c in plan.get("emergency_contacts", [])
        if c.get("consent_to_contact")
    ]


def plan_in_force(versions: list[dict[str, Any]], at: datetime) -> dict[str, Any] | None:
    """The safety-plan version in force at `at`: the latest saved at or before it (None before the
    first). Consent to call a contact is judged at the time of the call: a call made before the
    client withdrew consent was allowed when it was made."""
    earlier = [v for v in versions if v["updated_at"] <= at]
    return max(earlier, key=lambda v: v["version"]) if earlier else None


# ----------------------------------------------------------------------------- alerts


class Status(IntEnum):
    """Values match iop.events.v1.AlertStatus."""

    UNSPECIFIED = 0
    OPEN = 1
    ACKNOWLEDGED = 2
    CONTACT_MADE = 3
    RESOLVED = 4
    ESCALATED = 5


class Step(IntEnum):
    """Values match iop.events.v1.LadderStep."""

    UNSPECIFIED = 0
    CLINICIAN_CALLBACK = 1
    ON_CALL_CLINICIAN = 2
    EMERGENCY_CONTACT = 3
    LOCAL_EMERGENCY_SERVICES = 4


class TransitionError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RequestIdReused(Exception):
    """An idempotency key sent again with different content: not a retry, and not applied."""


ACTIONS: dict[str, dict[Status, Status]] = {
    "acknowledge": {
        Status.OPEN: Status.ACKNOWLEDGED,
        Status.ESCALATED: Status.ACKNOWLEDGED,
        Status.ACKNOWLEDGED: Status.ACKNOWLEDGED,
    },
    "contact_made": {
        Status.OPEN: Status.CONTACT_MADE,
        Status.ACKNOWLEDGED: Status.CONTACT_MADE,
        Status.ESCALATED: Status.CONTACT_MADE,
        Status.CONTACT_MADE: Status.CONTACT_MADE,
    },
    "escalate": {
        Status.OPEN: Status.ESCALATED,
        Status.ACKNOWLEDGED: Status.ESCALATED,
        Status.ESCALATED: Status.ESCALATED,
        Status.CONTACT_MADE: Status.ESCALATED,  # the client dropped again after being reached
    },
    "resolve": {
        Status.OPEN: Status.RESOLVED,
        Status.ACKNOWLEDGED: Status.RESOLVED,
        Status.ESCALATED: Status.RESOLVED,
        Status.CONTACT_MADE: Status.RESOLVED,
    },
}


def transition(status: Status, action: str) -> Status:
    """The alert lifecycle: open -> acknowledged -> contact made -> resolved, or escalated."""
    if status == Status.RESOLVED:
        raise TransitionError("ALERT_RESOLVED", "the alert is already resolved")
    allowed = ACTIONS[action]
    if status not in allowed:
        raise TransitionError(
            "ALERT_STATE_CONFLICT", f"cannot {action.replace('_', ' ')} an alert that is {status.name}"
        )
    return allowed[status]


def may_act_on(alert_assignees: list[str], subject: str, roles: frozenset[str]) -> bool:
    """Only the alert's assignees (session clinician, on-call) or a supervisor act on an alert."""
    return subject in alert_assignees or "supervisor" in roles


TREATING_ROLES = frozenset({"lead", "co_facilitator"})  # a session's facilitators who treat its clients


def treating_clinicians(clinician_id: str, facilitators: list[tuple[str, str]]) -> list[str]:
    """Who treats a session's clients, each once: its clinician and its facilitators (clinician id,
    role) who lead or co-facilitate, as the scheduler's care team (`on_care_team`, acting). An
    observer watches and does not treat, should a producer list one."""
    named = [clinician_id, *(c for c, role in facilitators if role in TREATING_ROLES)]
    return list(dict.fromkeys(c for c in named if c))


CONTACT_TARGETS = frozenset({"CLIENT", "EMERGENCY_CONTACT", "EMERGENCY_SERVICES", "MOBILE_CRISIS"})
CONTACT_OUTCOMES = frozenset({"REACHED", "NO_ANSWER", "VOICEMAIL", "WRONG_NUMBER", "FAILED"})
RESOLUTIONS = frozenset({"SAFE_AT_HOME", "EMERGENCY_SERVICES_DISPATCHED", "ED_TRANSPORT", "FALSE_ALARM", "OTHER"})


# ----------------------------------------------------------------------------- the ladder


@dataclass(frozen=True)
class LadderStepSpec:
    step: Step
    after_s: float  # wait after the previous rung fired (for the first rung: after the alert opened)


@dataclass(frozen=True)
class LadderPolicy:
    policy_id: str
    steps: tuple[LadderStepSpec, ...]
    on_call_id: str
    default_windows: tuple[ContactWindow, ...] = ()
    time_zone: str = ""

    def due_after(self, index: int, fired_at: datetime) -> datetime | None:
        """When rung `index` is due, the previous one having fired at `fired_at`; None past the end."""
        if index >= len(self.steps):
            return None
        return fired_at + timedelta(seconds=self.steps[index].after_s)


@dataclass(frozen=True)
class AlertContext:
    """What a ladder step needs to know about the alert: as snapshotted when it opened, with the
    client's current check-in (location, resources, callback phone) when they checked in since."""

    alert_id: str
    client_id: str
    session_id: str
    clinician_id: str
    on_call_id: str
    callback_phone: str
    backup_line: str
    location: dict[str, Any] | None
    resources: dict[str, Any] | None
    resources_problem: str
    emergency_contacts: list[dict[str, Any]]
    windows: list[ContactWindow]
    time_zone: str
    phone_problems: tuple[str, ...] = ()  # INVALID_BACKUP_PHONE: a number was skipped (pick_callback_phone)


@dataclass(frozen=True)
class Task:
    task_id: str
    # CALLBACK | ON_CALL_NOTIFICATION | EMERGENCY_CONTACT_CALL | EMERGENCY_SERVICES | RECONNECT_RESCHEDULE
    # | CRISIS_SIGNAL
    kind: str
    route: Route
    assignee_id: str
    problems: tuple[str, ...] = ()
    contact_name: str = ""
    contact_phone: str = ""


@dataclass(frozen=True)
class StepFiring:
    index: int
    step: Step
    route: Route
    assignee_id: str
    tasks: list[Task] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def context_problems(ctx: AlertContext) -> list[str]:
    problems = list(ctx.phone_problems)
    if not ctx.callback_phone and "NO_BACKUP_PHONE" not in problems:
        problems.append("NO_BACKUP_PHONE")
    if ctx.location is None:
        problems.append("NO_VERIFIED_LOCATION")
    elif ctx.resources is None:
        problems.append(ctx.resources_problem or "NO_RESOURCES_FOR_LOCATION")
    return problems


def callback_task(ctx: AlertContext, at: datetime, task_id: str, *, escalated: bool) -> Task:
    """The call back on the backup phone: the clinician inside the client's windows, on-call otherwise."""
    if escalated:
        routing = Routing(Route.ON_CALL, ctx.on_call_id, False, "ESCALATED")
    else:
        routing = route_contact(at, ctx.windows, ctx.time_zone, ctx.clinician_id, ctx.on_call_id)
    problems = tuple(p for p in context_problems(ctx) if p in PHONE_PROBLEMS)
    return Task(task_id, "CALLBACK", routing.route, routing.assignee_id, problems)


def signal_task(ctx: AlertContext, at: datetime, task_id: str, *, escalated: bool) -> Task:
    """A new crisis signal (a positive PHQ-9 item 9) while the alert is active: a CRISIS_SIGNAL
    task for whoever answers the alert now, routed like its callback (it carries the same phone,
    location and resources). Whether the ladder restarts is decided by `signal_restarts_ladder`."""
    return replace(callback_task(ctx, at, task_id, escalated=escalated), kind="CRISIS_SIGNAL")


def fire_step(ctx: AlertContext, policy: LadderPolicy, index: int, at: datetime, ladder_round: int = 0) -> StepFiring:
    """What firing rung `index` does: who gets which task. Pure; ids are derived from the alert, the
    ladder's round (a ladder restarted by a crisis signal after contact is round 1, 2, ...) and the rung."""
    spec = policy.steps[index]
    base = f"{ctx.alert_id}:{index}" if ladder_round == 0 else f"{ctx.alert_id}:r{ladder_round}:{index}"
    if spec.step == Step.CLINICIAN_CALLBACK:
        task = callback_task(ctx, at, f"{base}:callback", escalated=False)
        return StepFiring(index, spec.step, task.route, task.assignee_id, [task], list(task.problems))
    if spec.step == Step.ON_CALL_CLINICIAN:
        task = callback_task(ctx, at, f"{base}:callback", escalated=True)
        return StepFiring(index, spec.step, Route.ON_CALL, ctx.on_call_id, [task], list(task.problems))
    if spec.step == Step.EMERGENCY_CONTACT:
        consented = [c for c in ctx.emergency_contacts if c.get("consent_to_contact")]
        if not consented:
            problems = ["NO_CONSENTED_EMERGENCY_CONTACT"]
            task = Task(f"{base}:contact", "EMERGENCY_CONTACT_CALL", Route.ON_CALL, ctx.on_call_id, tuple(problems))
            return StepFiring(index, spec.step, Route.ON_CALL, ctx.on_call_id, [task], problems)
        tasks = [
            Task(
                f"{base}:contact:{c.get('contact_id', n)}",
                "EMERGENCY_CONTACT_CALL",
                Route.ON_CALL,
                ctx.on_call_id,
                contact_name=c.get("name", ""),
                contact_phone=c.get("phone", ""),
            )
            for n, c in enumerate(consented)
        ]
        return StepFiring(index, spec.step, Route.ON_CALL, ctx.on_call_id, tasks)
    if spec.step == Step.LOCAL_EMERGENCY_SERVICES:
        problems = [p for p in context_problems(ctx) if p not in PHONE_PROBLEMS]
        task = Task(f"{base}:emergency", "EMERGENCY_SERVICES", Route.ON_CALL, ctx.on_call_id, tuple(problems))
        return StepFiring(index, spec.step, Route.ON_CALL, ctx.on_call_id, [task], problems)
    raise ValueError(f"unknown ladder step {spec.step}")


def status_after_step(status: Status, index: int) -> Status:
    """The first rung is part of opening; every later rung is an escalation."""
    return status if index == 0 else transition(status, "escalate")


# ----------------------------------------------------------------------------- disconnections


# A drop's time is the video platform's clock, a session's end the scheduler's; the engagement
# service accepts platform times up to 5 minutes ahead of its own, and a platform may report a lost
# connection only after its own timeout. A drop up to this long after the recorded end may have
# happened during the session, and counts as such (fail safe).
DROP_AFTER_END_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class DropDecision:
    action: str  # OPEN_ALERT | ESCALATE_ALERT | RECONNECT_TASK | IGNORE
    reason: str


def decide_on_drop(
    risk: Risk, has_active_alert: bool, session_status: str, dropped_at: datetime, closed_at: datetime | None
) -> DropDecision:
    """A dropped connection during crisis opens (or escalates) an alert; otherwise a reconnect task.

    The drop itself says the session was live, so a session crisis has not yet seen start is
    treated as in progress (fail safe). For a session crisis has seen end (or cancelled), event
    time decides, not the order the events arrived in (they come on different topics): a drop at
    or before `closed_at` (give or take the two clocks, DROP_AFTER_END_TOLERANCE) happened during
    the session; one later is stale. An end of unknown time cannot rule the drop out, so it counts
    as during the session (fail safe).
    """
    if (
        session_status in ("ended", "cancelled")
        and closed_at is not None
        and dropped_at > closed_at + DROP_AFTER_END_TOLERANCE
    ):
        return DropDecision("IGNORE", "SESSION_NOT_IN_PROGRESS")
    if has_active_alert:
        return DropDecision("ESCALATE_ALERT", "DISCONNECTED_WITH_OPEN_ALERT")
    if risk in ELEVATED:
        return DropDecision("OPEN_ALERT", f"DISCONNECTED_AT_{risk.name}_RISK")
    return DropDecision(
        "RECONNECT_TASK", "DISCONNECTED_AT_LOW_RISK" if risk == Risk.LOW else "DISCONNECTED_RISK_UNKNOWN"
    )


# ----------------------------------------------------------------------------- alert state from its records


@dataclass(frozen=True)
class AlertState:
    status: Status
    next_step: int  # in the current round
    due_at: datetime | None
    rungs_fired: tuple[int, ...]  # of the current round
    acknowledged_by: str
    resolution: str
    ladder_round: int = 0  # 0: the ladder as opened; n: restarted n times by a crisis signal after contact


SIGNAL_TRIGGER = "CRISIS_SIGNAL"  # the trigger of a rung that restarted the ladder (a crisis signal)
REPEAT_DROP_TRIGGER = "DISCONNECTED_AGAIN"  # the trigger of an escalation by another drop (a rung or REPEAT)


def signal_restarts_ladder(state: AlertState) -> bool:
    """A crisis signal (a positive PHQ-9 item 9) on an active alert whose client was reached (the
    ladder stopped: CONTACT_MADE) is a new risk: the alert goes back to needing contact and the
    ladder restarts from its first rung, fired at once. While the ladder is still trying to reach
    the client (or has run out waiting for a person), the signal is noted on the alert instead."""
    return state.status == Status.CONTACT_MADE


def overtaken_drops(records: list[dict[str, Any]]) -> list[str]:
    """The trigger ids of repeat drops whose escalation a restart by a crisis signal overtook, and
    which the restarted round has not answered yet.

    A drop and a signal handled at once may both read the ladder stopped by a contact: the signal
    restarts it (round n+1, its first rung) and the drop fires the next rung of round n (or, the
    ladder run out, records a REPEAT), which the restart leaves as history (`fold_alert`): the
    drop moved nothing, and the emergency rungs come one rung later than had it come just after
    the restart. Such a drop is an escalation (a rung with trigger DISCONNECTED_AGAIN, or a
    REPEAT) of an earlier round than the current one with no contact with the client at or after
    it: a restart follows a contact (`signal_restarts_ladder`), so a restart that had read the drop
    would have found the ladder running and only noted the signal. It is answered by firing the
    restarted round's next rung for it, as if it had come just after the restart.

    A REPEAT stored before REPEAT records named their round (2026-12-07) is of an unknown round,
    not round 0: it is never taken for an overtaken drop (one of a restarted round whose ladder had
    run out would be answered a second time: its callback and on-call notification sent again)."""
    current = max((r.get("round", 0) for r in records if r["kind"] == "RUNG"), default=0)
    if current == 0:
        return []
    escalations = [r for r in records if r["kind"] == "RUNG" or (r["kind"] == "REPEAT" and "round" in r)]
    answered = {r.get("trigger_id") for r in escalations if r.get("round", 0) == current}
    contacts = [r["at"] for r in records if r["kind"] == "ATTEMPT" and r.get("reached")]
    overtaken = [
        r["trigger_id"]
        for r in escalations
        if r.get("trigger") == REPEAT_DROP_TRIGGER
        and r.get("round", 0) < current
        and r.get("trigger_id") not in answered
        and not any(at >= r["at"] for at in contacts)
    ]
    return list(dict.fromkeys(overtaken))


def is_signal(record: dict[str, Any]) -> bool:
    """A crisis signal noted on an alert: a SIGNAL record, or the rung that restarted the ladder."""
    return record["kind"] == "SIGNAL" or (record["kind"] == "RUNG" and record.get("trigger") == SIGNAL_TRIGGER)


def ladder_started_at(opened_at: datetime, records: list[dict[str, Any]]) -> datetime:
    """When the ladder was last started (or started again): the alert's opening, a repeat drop (its
    rung or REPEAT record) or a restart by a crisis signal, whichever is latest. A rung the timer
    fired does not count (`fold_alert`). A contact with the client stops the ladder only if it was
    made at or after this time; an earlier one is history."""
    activity = [
        r["at"] for r in records if r["kind"] == "REPEAT" or (r["kind"] == "RUNG" and r.get("trigger") != "TIMER")
    ]
    return max(activity) if activity else opened_at


def contact_stops_ladder(opened_at: datetime, records: list[dict[str, Any]], at: datetime) -> bool:
    """Whether a client reached at `at` stops the ladder of an alert with these records (those
    stored when the contact is recorded): only if the ladder was not started again after it."""
    return at >= ladder_started_at(opened_at, records)


def attempt_stopped_ladder(attempt: dict[str, Any], opened_at: datetime, records: list[dict[str, Any]]) -> bool:
    """Whether a recorded contact attempt stopped the ladder then running, as its
    AlertContactAttempted said (`stopped_ladder`, stored with it). An attempt recorded before that
    field was stored is judged from the records dated up to when it was recorded."""
    if "stopped_ladder" in attempt:
        return bool(attempt["stopped_ladder"])
    if not attempt.get("reached"):
        return False
    recorded_at = attempt.get("recorded_at") or attempt["at"]
    return contact_stops_ladder(opened_at, [r for r in records if r["at"] <= recorded_at], attempt["at"])


def fold_alert(policy: LadderPolicy, opened_at: datetime, records: list[dict[str, Any]]) -> AlertState:
    """An alert's state from its insert-only records (kind RUNG | REPEAT | SIGNAL | ACK | ATTEMPT |
    RESOLVED, with `at`).

    The ladder runs in rounds: round 0 from the alert's opening; a crisis signal after the client
    was reached starts round n+1 with its first rung (`signal_restarts_ladder`). Within the current
    round (the highest with a rung) rungs fire in order, so the next rung is one past the highest
    fired; a rung of an earlier round recorded late (a timer firing when the restart came) is
    history and moves nothing. The ladder stops when the client was reached after the alert opened
    or was last escalated by an event (a later disconnection or a restart starts it again), and when
    the alert is resolved. A rung the timer fired does not restart it: the timer fires only while
    nobody was reached, so a timer rung later than a contact was decided from records read before
    that contact was stored. A SIGNAL record (a note) changes nothing here.
    """
    all_rungs = [r for r in records if r["kind"] == "RUNG"]
    ladder_round = max((r.get("round", 0) for r in all_rungs), default=0)
    rungs = sorted((r for r in all_rungs if r.get("round", 0) == ladder_round), key=lambda r: r["index"])
    fired = tuple(r["index"] for r in rungs)
    next_step = fired[-1] + 1 if fired else 0
    last_activity = ladder_started_at(opened_at, records)
    escalations = [
        r["at"]
        for r in records
        if r["kind"] == "REPEAT"
        or (
            r["kind"] == "RUNG"
            and (r["index"] >= 1 or r.get("round", 0) >= 1 or r.get("trigger") == "DISCONNECTED_AGAIN")
        )
    ]
    last_escalation = max(escalations) if escalations else None
    contacts = [r["at"] for r in records if r["kind"] == "ATTEMPT" and r.get("reached")]
    acks = sorted((r for r in records if r["kind"] == "ACK"), key=lambda r: r["at"])
    resolved = next((r for r in records if r["kind"] == "RESOLVED"), None)
    stopped = bool(contacts) and max(contacts) >= last_activity
    if resolved is not None:
        status = Status.RESOLVED
    elif stopped:
        status = Status.CONTACT_MADE
    elif acks and (last_escalation is None or acks[-1]["at"] >= last_escalation):
        status = Status.ACKNOWLEDGED
    elif last_escalation is not None:
        status = Status.ESCALATED
    else:
        status = Status.OPEN
    due: datetime | None = None
    if resolved is None and not stopped and next_step < len(policy.steps):
        base = rungs[-1]["at"] if rungs else opened_at
        due = base + timedelta(seconds=policy.steps[next_step].after_s)
    return AlertState(
        status=status,
        next_step=next_step,
        due_at=due,
        rungs_fired=fired,
        acknowledged_by=acks[-1]["by"] if acks else "",
        resolution=resolved["resolution"] if resolved is not None else "",
        ladder_round=ladder_round,
    )
