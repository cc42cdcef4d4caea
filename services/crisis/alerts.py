"""Crisis alerts and their escalation ladder: open, escalate, fire a due rung, acknowledge,
record contact attempts, resolve.

Every fact is one insert carrying its events (outbox): the alert header when it opens (with its
first rung), then one record per rung fired (`<alert>:rung:<n>`, unique: exactly once whoever
fires it), per acknowledgement, contact attempt and resolution. The header's state fields are a
cache folded from the records (`reconcile`), also serving as the timer index.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from iop.events.v1 import crisis_pb2 as ev
from services.crisis import events, fhir
from services.crisis.domain import (
    REPEAT_DROP_TRIGGER,
    SIGNAL_TRIGGER,
    AlertContext,
    AlertState,
    ContactWindow,
    LadderPolicy,
    LadderStepSpec,
    RequestIdReused,
    Risk,
    Route,
    Status,
    Step,
    StepFiring,
    Task,
    TransitionError,
    callback_task,
    consented_contacts,
    contact_stops_ladder,
    context_problems,
    fire_step,
    fold_alert,
    overtaken_drops,
    pick_callback_phone,
    plan_in_force,
    signal_restarts_ladder,
    signal_task,
    to_windows,
    transition,
)
from services.crisis.paging import Pager
from services.crisis.reference import PolicyBook
from services.crisis.store import ALERT_RECORDS, ALERTS, CrisisStore, number_given_at, rung_id
from services.crisis.topics import ALERTS_TOPIC, FHIR_TOPIC, TASKS_TOPIC
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, new_document_with_outbox
from services.plumbing.storage import Document
from services.plumbing.telemetry import current_span

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.crisis.alerts")

SOURCE = "/iop/crisis"
NAMESPACE = uuid.UUID("6f1d3c52-7a4e-4c8e-9b7a-3c1e2f0a9d11")
MAX_RETRIES = 5
ATTEMPT_CONTENT = ("target", "outcome", "contact_id")  # what a retried contact attempt must repeat


def derived_id(*parts: str) -> str:
    """A deterministic id, so a redelivered event or a retried request maps to the same record."""
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


def windows_to_docs(windows: Iterable[ContactWindow]) -> list[dict[str, Any]]:
    return [
        {"weekdays": list(w.weekdays), "start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M")}
        for w in windows
    ]


def policy_snapshot(policy: LadderPolicy) -> dict[str, Any]:
    return {
        "policy_id": policy.policy_id,
        "on_call_id": policy.on_call_id,
        "steps": [{"step": int(s.step), "after_s": s.after_s} for s in policy.steps],
    }


def policy_of(alert: Document) -> LadderPolicy:
    """The ladder the alert was opened with (a policy change does not alter a running ladder)."""
    p = alert["policy"]
    steps = tuple(LadderStepSpec(Step(s["step"]), float(s["after_s"])) for s in p["steps"])
    return LadderPolicy(p["policy_id"], steps, p["on_call_id"])


def context_of(alert: Document) -> AlertContext:
    c = alert["context"]
    return AlertContext(
        alert_id=alert["_id"],
        client_id=alert["client_id"],
        session_id=alert["session_id"],
        clinician_id=alert["clinician_id"],
        on_call_id=alert["policy"]["on_call_id"],
        callback_phone=c.get("callback_phone", ""),
        backup_line=c.get("backup_line", ""),
        location=c.get("location"),
        resources=c.get("resources"),
        resources_problem=c.get("resources_problem", ""),
        emergency_contacts=c.get("emergency_contacts", []),
        windows=to_windows(c.get("windows", [])),
        time_zone=c.get("time_zone", ""),
        phone_problems=tuple(c.get("phone_problems", [])),
    )


def all_records(alert: Document, records: list[Document]) -> list[Document]:
    """The alert's records: those embedded in the header at open, then the inserted ones."""
    return [*alert.get("open_records", []), *records]


def state_of(alert: Document, records: list[Document]) -> AlertState:
    return fold_alert(policy_of(alert), alert["opened_at"], all_records(alert, records))


def after_contacts_read(now: datetime, alert: Document, records: list[Document]) -> datetime:
    """The time of an escalation (a repeat drop's rung or REPEAT, a restart by a crisis signal)
    that answers the records read: after every contact with the client among them. `now` (the
    handler's clock, read before the records) can be earlier than a contact stored meanwhile, and
    an escalation dated before the contact it read would be folded as stopped by it
    (`domain.fold_alert`): its tasks and AlertEscalated would go out, the ladder stay stopped.
    The store keeps milliseconds."""
    reached = [r["at"] for r in all_records(alert, records) if r["kind"] == "ATTEMPT" and r.get("reached")]
    return max([now, *(at + timedelta(milliseconds=1) for at in reached)])


@dataclass(frozen=True)
class _Unanswered:
    """An active alert on which a trigger still has to be answered, as read."""

    alert: Document
    records: list[Document]
    state: AlertState
    overtaken: bool = False  # the trigger is a drop a restart overtook, answered again in the new round


@dataclass(frozen=True)
class Delivery:
    status: str  # DELIVERED | FAILED | EVENT_ONLY
    error: str = ""


def rung_record(
    alert: Document,
    firing: StepFiring,
    trigger: str,
    due_at: datetime | None,
    at: datetime,
    delivery: Delivery,
    instance: str,
    tasks: list[dict[str, Any]],
    trigger_id: str = "",
    ladder_round: int = 0,
    dispatched: Document | None = None,
) -> Document:
    """A fired rung. `dispatched`: where its tasks reached the client (`Dispatch.dispatched`; every
    rung fired after the opening records it, the opening rung's is the alert's own context)."""
    record: Document = {
        "_id": rung_id(alert["_id"], firing.index, ladder_round),
        "alert_id": alert["_id"],
        "client_id": alert["client_id"],
        "kind": "RUNG",
        "index": firing.index,
        "round": ladder_round,
        "step": int(firing.step),
        "trigger": trigger,
        "trigger_id": trigger_id,
        "due_at": due_at,
        "at": at,
        "route": int(firing.route),
        "assignee_id": firing.assignee_id,
        "delivery_status": delivery.status,
        "delivery_error": delivery.error,
        "problems": firing.problems,
        "fired_by": instance,
        "tasks": tasks,
    }
    if dispatched is not None:
        record["dispatched"] = dispatched
    return record


def escalated(alert: Document, records: list[Document], record: Document) -> OutgoingEvent:
    """The AlertEscalated of a rung `record` about to be stored beside the alert's `records`, with
    when the next rung is then due."""
    next_due = fold_alert(policy_of(alert), alert["opened_at"], [*all_records(alert, records), record]).due_at
    return OutgoingEvent(ALERTS_TOPIC.name, alert["_id"], events.escalated_event(alert, record, next_due))


def task_events(alert: Document, task_docs: list[Document]) -> list[OutgoingEvent]:
    """The CrisisTaskCreated of each task, keyed by the client; `alert` with the context the tasks
    were dispatched with (`Dispatch.alert`)."""
    return [OutgoingEvent(TASKS_TOPIC.name, alert["client_id"], events.task_event(t, alert)) for t in task_docs]


def checkin_context(checkin: Document | None, plan: Document | None) -> dict[str, Any]:
    """Where the client is and how to call them back, from a check-in (the client's current one)
    and their live safety plan (None when there is none or it was retired): the callback phone
    (`pick_callback_phone`: the check-in's if it normalizes, else the plan's), the verified location
    with the crisis resources resolved for it at check-in, and which check-in that is. An alert
    opens with it; a later escalation takes it anew when the client has checked in since
    (`AlertService.dispatch`)."""
    checkin = checkin or {}
    callback_phone, phone_problems = pick_callback_phone(
        checkin.get("backup_phone", ""), (plan or {}).get("backup_phone", "")
    )
    return {
        "callback_phone": callback_phone,
        # the callback tasks name them; NO_BACKUP_PHONE also follows from an empty callback_phone
        "phone_problems": phone_problems,
        "location": checkin.get("location"),
        "resources": checkin.get("resources"),
        "resources_problem": checkin.get("resources_problem", ""),
        "location_session_id": checkin.get("session_id", ""),
        "location_verified_at": checkin.get("at"),
        # when the check-in's number was given (`store.number_given_at`; None without one): the same
        # check-in can be read later with a number given later (`is_later_checkin`)
        "callback_given_at": number_given_at(checkin),
    }


def is_later_checkin(context: Document, checkin: Document | None, opened_at: datetime) -> bool:
    """Whether `checkin` (the client's current one) is later, by its own time, than the check-in
    the alert's context was built from, or is that one with a number given later than the
    context's: a check-in applied at once with it, older and with a number, stored after the alert
    opened, gives the current check-in its number (`store.with_latest_number`). An alert opened
    without a check-in has none; one stored before contexts named their check-in's time had, at
    best, a check-in current when it opened (and one stored before they named when its number was
    given, 2026-12-07, keeps its number)."""
    if checkin is None:
        return False
    had = context.get("location_verified_at")
    if had is None and context.get("location") is not None:
        had = opened_at
    if had is None or checkin["at"] > had:
        return True
    given, had_given = number_given_at(checkin), context.get("callback_given_at")
    return (
        checkin["at"] == had
        and "callback_given_at" in context
        and given is not None
        and (had_given is None or given > had_given)
    )


@dataclass(frozen=True)
class Dispatch:
    """How the tasks made for an alert now reach the client (`AlertService.dispatch`): `alert` is
    the alert with the context they carry (`events.task_document` / `task_event` read it), `actx`
    the same for the domain's rules, `dispatched` what a rung records it used."""

    alert: Document
    actx: AlertContext

    @property
    def dispatched(self) -> Document:
        return events.dispatched(self.alert["context"])


@dataclass(frozen=True)
class ClientFacts:
    """What an alert's context is built from: the session, the client's latest check-in and
    current safety plan (None where there is none)."""

    session: Document | None
    checkin: Document | None
    plan: Document | None


class AlertService:
    def __init__(
        self,
        store: CrisisStore,
        relay: OutboxRelay,
        policies: PolicyBook,
        pager: Pager,
        instance_id: str,
        lease_s: float,
    ) -> None:
        self.store = store
        self.relay = relay
        self.policies = policies
        self.pager = pager
        self.instance_id = instance_id
        self.lease_s = lease_s
        # told about every due-time change made here (the timer loop's in-memory schedule;
        # the store stays the source of truth, rescanned every second)
        self.on_due: Callable[[str, datetime | None], None] = lambda alert_id, due: None

    # ------------------------------------------------------------------ context

    async def client_facts(self, client_id: str, session_id: str) -> ClientFacts:
        session, records = await asyncio.gather(self.store.session(session_id), self.store.client_records(client_id))
        return ClientFacts(session, records.checkin, records.plan)

    async def build_context(
        self, client_id: str, session_id: str, clinician_id: str, program_id: str, facts: ClientFacts | None = None
    ) -> tuple[dict[str, Any], LadderPolicy, str, str]:
        """Snapshot what the ladder needs: phones, verified location + resources, contacts, windows."""
        facts = facts or await self.client_facts(client_id, session_id)
        session, checkin, plan = facts.session, facts.checkin or {}, facts.plan
        if plan is not None and plan.get("retired"):
            plan = None
        if session:
            program_id = program_id or session.get("program_id", "")
            clinician_id = clinician_id or session.get("clinician_id", "")
        program_id = program_id or checkin.get("program_id", "") or (plan or {}).get("program_id", "")
        clinician_id = clinician_id or checkin.get("clinician_id", "")
        policy = self.policies.for_program(program_id)
        problems: list[str] = []
        if checkin and session_id and checkin.get("session_id") != session_id:
            problems.append("LOCATION_FROM_EARLIER_SESSION")
        windows = (plan or {}).get("contact_windows") or []
        time_zone = (plan or {}).get("time_zone", "")
        if not windows:
            windows, time_zone = windows_to_docs(policy.default_windows), policy.time_zone
        if plan is None:
            problems.append("NO_SAFETY_PLAN")
        context = {
            # the phone, the location and its resources, from the check-in (a later escalation
            # takes them from the client's current check-in when they checked in since: `dispatch`)
            **checkin_context(facts.checkin, plan),
            "backup_line": (session or {}).get("backup_line", ""),
            # as at open, for the record; the ladder and RecordContactAttempt read the current plan
            "emergency_contacts": consented_contacts(plan),
            "windows": windows,
            "time_zone": time_zone,
            "problems": problems,
        }
        return context, policy, program_id, clinician_id

    async def dispatch(self, alert: Document, index: int | None = None) -> Dispatch:
        """How tasks made for the alert now (firing rung `index` of the ladder, or none) reach the
        client, from one read of the client's records:
        - when the client's current check-in (the latest by its own time) is later than the one the
          alert opened with, its location and resources, and the callback phone picked as at open
          (`checkin_context`): an escalation hours later dispatches to where the client is now. The
          alert document is not changed (insert-only): each rung records what it used;
        - an emergency-contact rung calls the contacts the client consents to NOW (the current
          plan), not those consented when the alert opened."""
        held = await self.store.client_records(alert["client_id"])
        context = alert["context"]
        if is_later_checkin(context, held.checkin, alert["opened_at"]):
            plan = held.plan if held.plan is not None and not held.plan.get("retired") else None
            context = {**context, **checkin_context(held.checkin, plan)}
        view = {**alert, "context": context}
        actx = context_of(view)
        steps = alert["policy"]["steps"]
        if index is not None and index < len(steps) and Step(steps[index]["step"]) == Step.EMERGENCY_CONTACT:
            actx = replace(actx, emergency_contacts=consented_contacts(held.plan))
        return Dispatch(view, actx)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(
        self, alert: Document, records: list[Document] | None = None, *, force: bool = False
    ) -> tuple[Document, AlertState]:
        """Recompute the header's cached state from the records and store it (idempotent)."""
        if records is None:
            records = await self.store.records(alert)
        st = state_of(alert, records)
        assignees = list(
            dict.fromkeys([*alert.get("assignees", []), *(r["assignee_id"] for r in records if r.get("assignee_id"))])
        )
        fields: dict[str, Any] = {
            "status": int(st.status),
            "next_step": st.next_step,
            "due_at": st.due_at,
            "assignees": assignees,
            "active": st.status != Status.RESOLVED,
        }
        changed = any(alert.get(k) != v for k, v in fields.items())
        if changed:
            await self.store.set_alert_state(alert["_id"], fields)
        if changed or force:
            await self.store.set_timer(alert["_id"], st.due_at, st.status != Status.RESOLVED)
            self.on_due(alert["_id"], st.due_at)
        if st.status == Status.RESOLVED:
            await self.store.release_active(alert["client_id"], alert["_id"])
        return {**alert, **fields}, st

    # ------------------------------------------------------------------ open / escalate

    async def open_alert(
        self,
        *,
        alert_id: str,
        client_id: str,
        session_id: str,
        program_id: str,
        clinician_id: str,
        reason: str,
        risk: Risk,
        trigger_event_id: str,
        extra_assignees: list[str],
        now: datetime,
        facts: ClientFacts | None = None,
        known_absent: bool = False,
    ) -> tuple[Document | None, bool]:
        """Open an alert with its first rung fired, in ONE insert. Returns (alert, created);
        (None, False) when another alert is already active for the client. A caller that read
        the client's facts, or found no alert with this id, passes them on (`facts`, `known_absent`)."""
        if not known_absent:
            existing = await self.store.alert(alert_id)
            if existing is not None:
                return existing, False  # a redelivery or a retried request
        holder = await self.store.take_active(client_id, alert_id)
        if holder is not None and holder != alert_id:
            other = await self.store.alert(holder)
            if other is not None and state_of(other, await self.store.records(other)).status != Status.RESOLVED:
                return None, False  # another alert is active: the caller escalates it
            # a stale slot (its alert resolved, or never written after a crash): free it and retry
            await self.store.release_active(client_id, holder)
            if await self.store.take_active(client_id, alert_id) != alert_id:
                return None, False
        context, policy, program_id, clinician_id = await self.build_context(
            client_id, session_id, clinician_id, program_id, facts
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        problems = context.pop("problems")
        alert: Document = {
            "_id": alert_id,
            "client_id": client_id,
            "session_id": session_id,
            "program_id": program_id,
            "clinician_id": clinician_id,
            "reason": reason,
            "risk_level": int(risk),
            "active": True,
            "policy": policy_snapshot(policy),
            "context": context,
            "opened_at": now,
            "trigger_event_id": trigger_event_id,
            "assignees": list(dict.fromkeys(a for a in [clinician_id, policy.on_call_id, *extra_assignees] if a)),
            "open_records": [],
            "trace": carrier,
        }
        actx = context_of(alert)
        alert["problems"] = sorted(set(context_problems(actx)) | set(problems))
        tasks: list[Task] = []
        if policy.steps[0].after_s == 0:
            firing = fire_step(actx, policy, 0, now)
            tasks.extend(firing.tasks)
        tasks.append(Task(f"{alert_id}:notify-on-call", "ON_CALL_NOTIFICATION", Route.ON_CALL, policy.on_call_id))
        task_docs = [events.task_document(t, alert, now) for t in tasks]
        if policy.steps[0].after_s == 0:
            record = rung_record(alert, firing, "OPENED", now, now, Delivery("EVENT_ONLY"), self.instance_id, task_docs)
            alert["open_records"].append(record)
        else:
            alert["open_tasks"] = task_docs
        st = state_of(alert, [])
        alert.update(status=int(st.status), next_step=st.next_step, due_at=st.due_at)
        outgoing = [
            OutgoingEvent(ALERTS_TOPIC.name, alert_id, events.opened_event(alert)),
            *(OutgoingEvent(TASKS_TOPIC.name, client_id, events.task_event(t, alert)) for t in task_docs),
            OutgoingEvent(FHIR_TOPIC.name, client_id, fhir.alert_flag(alert_id, client_id, True, now, None)),
        ]
        written = new_document_with_outbox(alert, SOURCE, outgoing)
        if not await self.store.insert_new(ALERTS, written):  # written concurrently (a redelivery, a retry)
            existing = await self.store.alert(alert_id)
            if existing is not None and existing["client_id"] != client_id:
                # a request id reused for another client, concurrently: the slot taken above would
                # make that client's alert this client's active one
                await self.store.release_active(client_id, alert_id)
            return existing, False
        self.relay.notify(ALERTS, alert_id, written)
        await self.store.set_timer(alert_id, st.due_at, True, first=True)
        self.on_due(alert_id, st.due_at)
        return alert, True

    async def escalate_now(self, alert_id: str, trigger_id: str, trigger: str, now: datetime) -> Document | None:
        """Another disconnection while an alert is active: fire the next rung now, with a fresh
        callback task and an on-call notification. None when the alert turned out to be resolved."""
        for _ in range(MAX_RETRIES):
            found = await self._unanswered(alert_id, trigger_id)
            if not isinstance(found, _Unanswered):
                return found
            alert, records, st = found.alert, found.records, found.state
            policy, n = policy_of(alert), st.next_step
            at = after_contacts_read(now, alert, records)  # a drop after a contact starts the ladder again
            now_at = await self.dispatch(alert, n)
            actx = now_at.actx
            tasks: list[Task] = []
            firing: StepFiring | None = None
            if n < len(policy.steps):
                firing = fire_step(actx, policy, n, at, st.ladder_round)
                tasks.extend(firing.tasks)
            if not any(t.kind == "CALLBACK" for t in tasks):
                tasks.append(callback_task(actx, at, f"{alert_id}:{trigger_id}:callback", escalated=n >= 2))
            tasks.append(
                Task(f"{alert_id}:{trigger_id}:notify-on-call", "ON_CALL_NOTIFICATION", Route.ON_CALL, actx.on_call_id)
            )
            task_docs = [events.task_document(t, now_at.alert, at) for t in tasks]
            outgoing = task_events(now_at.alert, task_docs)
            if firing is not None:
                record = rung_record(
                    alert,
                    firing,
                    trigger,
                    st.due_at,
                    at,
                    Delivery("EVENT_ONLY"),
                    self.instance_id,
                    task_docs,
                    trigger_id,
                    st.ladder_round,
                    now_at.dispatched,
                )
                outgoing.insert(0, escalated(alert, records, record))
                written = new_document_with_outbox(record, SOURCE, outgoing)
                if await self.store.insert_new(ALERT_RECORDS, written):
                    self.relay.notify(ALERT_RECORDS, record["_id"], written)
                    fresh, _ = await self.reconcile(alert, [*records, record])
                    await self.answer_overtaken_drops(alert_id)  # a restart stored meanwhile
                    return fresh
                continue  # the rung was fired meanwhile (by the timer): try the next one
            repeat = {
                "alert_id": alert_id,
                "client_id": alert["client_id"],
                "kind": "REPEAT",
                "round": st.ladder_round,
                "trigger": trigger,
                "trigger_id": trigger_id,
                "at": at,
                "tasks": task_docs,
                "dispatched": now_at.dispatched,
            }
            # A drop's own REPEAT goes to the next free position of the log (another drop's beside
            # it is another escalation). The answer to an overtaken drop is looked for by both
            # handlers, so it goes only where the log was read free: of two lookers, one records
            # it and the other reads again and finds it.
            appended = await self._append(alert, records, repeat, outgoing, as_read=found.overtaken)
            if appended is not None:
                fresh, _ = await self.reconcile(alert, [*records, appended])
                await self.answer_overtaken_drops(alert_id)  # a restart stored meanwhile
                return fresh
        raise RuntimeError("alert kept changing under escalation; retry")

    async def answer_overtaken_drops(self, alert_id: str) -> None:
        """Answer in the restarted round each repeat drop whose escalation a restart by a crisis
        signal overtook (`domain.overtaken_drops`): its next rung fired now for the drop, as if the
        drop had come just after the restart. Both handlers look after storing their record, so the
        later of the two finds the pair whichever was stored first (and both may): the rung's unique
        id makes the answer exactly once, and so does, the restarted ladder run out, the REPEAT's
        position in the action log, taken only as read (`escalate_now`). Dated now: after both
        records it answers, which are stored by now."""
        now = datetime.now(UTC)
        alert = await self.store.alert(alert_id)
        if alert is None:
            return
        for trigger_id in overtaken_drops(all_records(alert, await self.store.records(alert))):
            await self.escalate_now(alert_id, trigger_id, REPEAT_DROP_TRIGGER, now)

    async def _unanswered(self, alert_id: str, trigger_id: str) -> _Unanswered | Document | None:
        """The alert, its records and state while `trigger_id` (a disconnection, a crisis signal)
        still has to be answered on it; otherwise what to return: the alert when the trigger was
        answered already, None when there is no alert or it is resolved (then its client's active
        slot is freed for a new alert)."""
        alert = await self.store.alert(alert_id)
        if alert is None:
            return None
        records = await self.store.records(alert)
        answered = any(r.get("trigger_id") == trigger_id for r in records)
        if answered and trigger_id not in overtaken_drops(all_records(alert, records)):
            return alert  # (a drop's escalation that a restart overtook is answered again, in the new round)
        st = state_of(alert, records)
        if st.status == Status.RESOLVED:
            await self.reconcile(alert, records)
            return None
        return _Unanswered(alert, records, st, overtaken=answered)

    async def note_signal(self, alert_id: str, trigger_id: str, reason: str, now: datetime) -> Document | None:
        """A crisis signal for a client whose alert is active, answered once per signal (its
        trigger id is on the record). After the client was reached (the ladder stopped) it is a new
        risk: the ladder restarts (`_restart`). Otherwise it is recorded on the alert (a SIGNAL
        record) with a CRISIS_SIGNAL task for whoever answers the alert now, and the running ladder
        is neither restarted nor moved. None when the alert turned out to be resolved."""
        for _ in range(MAX_RETRIES):
            found = await self._unanswered(alert_id, trigger_id)
            if not isinstance(found, _Unanswered):
                if found is not None:  # answered before (a redelivery): its restart may not have looked
                    await self.answer_overtaken_drops(alert_id)
                return found
            if signal_restarts_ladder(found.state):
                if await self._restart(found, trigger_id, reason, now):
                    return found.alert
                continue  # restarted (or changed) meanwhile: read again
            alert, records, st = found.alert, found.records, found.state
            now_at = await self.dispatch(alert)
            task = signal_task(now_at.actx, now, f"{alert_id}:{trigger_id}:signal", escalated=st.next_step >= 2)
            task_doc = events.task_document(task, now_at.alert, now)
            record = {
                "alert_id": alert_id,
                "client_id": alert["client_id"],
                "kind": "SIGNAL",
                "reason": reason,
                "trigger_id": trigger_id,
                "at": now,
                "tasks": [task_doc],
                "dispatched": now_at.dispatched,
            }
            outgoing = task_events(now_at.alert, [task_doc])
            if await self._append(alert, records, record, outgoing) is not None:
                return alert
        raise RuntimeError("alert kept changing while a signal was noted; retry")

    async def _restart(self, found: _Unanswered, trigger_id: str, reason: str, now: datetime) -> bool:
        """Restart the ladder of an alert whose client was reached: the first rung of the next round
        fired now (its callback, a CRISIS_SIGNAL task, the on-call notification) in ONE unique
        insert, `<alert>:round:<k>:rung:0`, which is the restart's commit: of two signals (or a
        signal and its redelivery) racing, one restarts and the other reads again and finds the
        ladder running (a note) or its own trigger (nothing). A rung of the earlier round still in
        flight is recorded under that round's id and moves nothing (`fold_alert`); the next rungs
        are due from this one. False when that round was started meanwhile."""
        alert, records, st = found.alert, found.records, found.state
        alert_id, policy, ladder_round = alert["_id"], policy_of(alert), st.ladder_round + 1
        now = after_contacts_read(now, alert, records)
        now_at = await self.dispatch(alert, 0)
        actx = now_at.actx
        firing = fire_step(actx, policy, 0, now, ladder_round)
        tasks = [
            *firing.tasks,
            signal_task(actx, now, f"{alert_id}:{trigger_id}:signal", escalated=False),
            Task(f"{alert_id}:{trigger_id}:notify-on-call", "ON_CALL_NOTIFICATION", Route.ON_CALL, actx.on_call_id),
        ]
        task_docs = [events.task_document(t, now_at.alert, now) for t in tasks]
        record = rung_record(
            alert,
            firing,
            SIGNAL_TRIGGER,
            now,
            now,
            Delivery("EVENT_ONLY"),
            self.instance_id,
            task_docs,
            trigger_id,
            ladder_round,
            now_at.dispatched,
        )
        record["reason"] = reason
        outgoing = [escalated(alert, records, record), *task_events(now_at.alert, task_docs)]
        written = new_document_with_outbox(record, SOURCE, outgoing)
        if not await self.store.insert_new(ALERT_RECORDS, written):
            return False
        self.relay.notify(ALERT_RECORDS, record["_id"], written)
        await self.reconcile(alert, [*records, record])
        await self.answer_overtaken_drops(alert_id)  # a drop stored meanwhile, from the stopped ladder
        return True

    # ------------------------------------------------------------------ the timer

    async def fire_due(self, alert_id: str) -> bool:
        """Claim the alert's timer (a unique lease insert), deliver the due rung, record it exactly
        once (unique rung record). True if this call recorded a rung."""
        now = datetime.now(UTC)
        if not await self.store.claim(alert_id, self.instance_id, now, now + timedelta(seconds=self.lease_s)):
            return False  # another instance holds it
        try:
            alert = await self.store.alert(alert_id)
            if alert is None:
                await self.store.set_timer(alert_id, None, False)  # a timer without its alert
                return False
            records = await self.store.records(alert)
            st = state_of(alert, records)
            if st.due_at is None or st.due_at > now:
                await self.reconcile(alert, records, force=True)  # the timer was stale: heal it
                return False
            return await self._fire(alert, records, st)
        finally:
            await self.store.release(alert_id, self.instance_id)

    async def _fire(self, alert: Document, records: list[Document], st: AlertState) -> bool:
        alert_id = alert["_id"]
        parent = propagate.extract(alert.get("trace") or {})
        with current_span(tracer, "crisis ladder rung", context=parent) as span:
            policy, n = policy_of(alert), st.next_step
            now_at = await self.dispatch(alert, n)
            actx = now_at.actx
            fired_at = datetime.now(UTC)
            firing = fire_step(actx, policy, n, fired_at, st.ladder_round)
            assert st.due_at is not None
            span.set_attribute("crisis.ladder.step_index", n)
            span.set_attribute("crisis.ladder.step", firing.step.name)
            span.set_attribute("crisis.ladder.round", st.ladder_round)
            span.set_attribute("crisis.ladder.lateness_ms", (fired_at - st.due_at).total_seconds() * 1000)
            delivery = await self.pager.page(
                # a restarted ladder's rungs are new pages, not repeats of round 0's
                idempotency_key=f"{alert_id}:{n}" if st.ladder_round == 0 else f"{alert_id}:r{st.ladder_round}:{n}",
                alert_id=alert_id,
                step=firing.step.name,
                route=firing.route.name,
                assignee_id=firing.assignee_id,
                task_ids=[t.task_id for t in firing.tasks],
            )
            if delivery.status == "FAILED":
                span.set_status(SpanStatus(StatusCode.ERROR, delivery.error))
            task_docs = [events.task_document(t, now_at.alert, fired_at) for t in firing.tasks]
            record = rung_record(
                alert,
                firing,
                "TIMER",
                st.due_at,
                fired_at,
                delivery,
                self.instance_id,
                task_docs,
                "",
                st.ladder_round,
                now_at.dispatched,
            )
            outgoing = [escalated(alert, records, record), *task_events(now_at.alert, task_docs)]
            written = new_document_with_outbox(record, SOURCE, outgoing)
            if not await self.store.insert_new(ALERT_RECORDS, written):
                span.add_event("rung already recorded (by a disconnection or another instance)")
                await self.reconcile(alert, force=True)
                return False
            self.relay.notify(ALERT_RECORDS, record["_id"], written)
            # The header from the records as they are now, not as read before the page: a contact
            # stored meanwhile stops the ladder (domain.fold_alert), and its own reconcile may have
            # run before this one.
            await self.reconcile(alert, force=True)
            return True

    async def sweep(self, alert_ids: list[str]) -> set[str]:
        """Re-fold active alerts whose timer shows no next rung; returns those that had one due.
        Most have none (the ladder ran out, or the client was reached, and the alert waits for a
        person); a few lost a concurrent header update (FerretDB 1.x applies updates as
        read-modify-write) or their writer stopped between a record and its reconcile. Read in
        bulk and folded here; only alerts whose stored state is wrong are written."""
        healed: set[str] = set()
        alerts = await self.store.alerts_by_id(alert_ids)
        records = await self.store.records_of_many(alerts)
        for alert in alerts:
            due = state_of(alert, records[alert["_id"]]).due_at is not None
            await self.reconcile(alert, records[alert["_id"]], force=due)  # writes only what is wrong
            if due:
                healed.add(alert["_id"])
        return healed

    # ------------------------------------------------------------------ people acting on an alert

    async def current(self, alert_id: str) -> tuple[Document, list[Document], AlertState]:
        alert = await self.store.alert(alert_id)
        if alert is None:
            raise LookupError(alert_id)
        records = await self.store.records(alert)
        return alert, records, state_of(alert, records)

    async def _append(
        self,
        alert: Document,
        records: list[Document],
        record: Document,
        outgoing: list[OutgoingEvent],
        *,
        as_read: bool = False,
    ) -> Document | None:
        """Append an action (ack, attempt, repeat) to the alert's log, with its events, in one insert.
        `as_read`: only at the position after the `records` read (`CrisisStore.append_action`)."""
        first_free = sum(1 for r in records if r["_id"].startswith(f"{alert['_id']}:act:"))
        doc = await self.store.append_action(
            alert["_id"],
            first_free,
            lambda rid: new_document_with_outbox({**record, "_id": rid}, SOURCE, outgoing),
            as_read=as_read,
        )
        if doc is None:
            return None
        self.relay.notify(ALERT_RECORDS, doc["_id"], doc)
        return {k: v for k, v in doc.items() if k != "outbox"}

    async def _record(
        self, alert: Document, records: list[Document], record: Document, outgoing: list[OutgoingEvent]
    ) -> bool:
        if "_id" in record:  # a record with a fixed id (the resolution): exactly once
            written = new_document_with_outbox(record, SOURCE, outgoing)
            if not await self.store.insert_new(ALERT_RECORDS, written):
                return False
            self.relay.notify(ALERT_RECORDS, record["_id"], written)
            saved: Document | None = record
        else:
            saved = await self._append(alert, records, record, outgoing)
        if saved is None:
            return False
        await self.reconcile(alert, [*records, saved])
        return True

    async def acknowledge(self, alert_id: str, by: str) -> Document:
        alert, records, st = await self.current(alert_id)
        transition(st.status, "acknowledge")
        if st.status == Status.ACKNOWLEDGED and st.acknowledged_by == by:
            return alert
        now = datetime.now(UTC)
        record = {
            "alert_id": alert_id,
            "kind": "ACK",
            "by": by,
            "at": now,
        }
        event = ev.AlertAcknowledged(alert_id=alert_id, client_id=alert["client_id"], acknowledged_by=by)
        event.acknowledged_at.FromDatetime(now)
        await self._record(alert, records, record, [OutgoingEvent(ALERTS_TOPIC.name, alert_id, event)])
        return alert

    async def consented_at(self, client_id: str, at: datetime) -> list[dict[str, Any]]:
        """The emergency contacts the client consented to be called at `at` (the plan then in force)."""
        current = await self.store.plan(client_id)
        if current is None or current["updated_at"] <= at:
            return consented_contacts(current)
        return consented_contacts(plan_in_force(await self.store.plan_versions(client_id), at))

    async def record_attempt(
        self, alert_id: str, attempt: dict[str, Any], by: str, attempted_at: datetime | None = None
    ) -> Document:
        """Record a contact attempt made at `attempted_at` (default now): consent to call an
        emergency contact is checked at that time, so a call made before consent was withdrawn can
        be logged after it. The attempt's time is its `at` (a contact stops the ladder only if it
        came after the last restart of it); when it was recorded is `recorded_at`."""
        alert, records, st = await self.current(alert_id)
        prior = next((r for r in records if r.get("attempt_id") == attempt["attempt_id"]), None)
        if prior is not None:
            if any(prior.get(k, "") != attempt.get(k, "") for k in ATTEMPT_CONTENT):
                raise RequestIdReused("this request_id recorded another contact attempt")
            return alert  # a retried request
        if st.status == Status.RESOLVED:
            raise TransitionError("ALERT_RESOLVED", "the alert is already resolved")
        now = datetime.now(UTC)
        # An attempt is not made after it is recorded: a time ahead of our clock (the caller's
        # clock runs ahead, within the API's tolerance) is now. Left in the future, it would make
        # the contact look later than a drop or a crisis signal that comes meanwhile, and the
        # ladder they restart would stay stopped (domain.fold_alert).
        at = min(attempted_at, now) if attempted_at is not None else now
        if attempt["target"] == "EMERGENCY_CONTACT":
            consented = {c["contact_id"] for c in await self.consented_at(alert["client_id"], at)}
            if attempt.get("contact_id", "") not in consented:
                raise TransitionError(
                    "CONTACT_NOT_CONSENTED",
                    "that person was not an emergency contact the client consented to be contacted at the time "
                    "of the attempt (the safety plan then in force)",
                )
        reached = attempt["target"] == "CLIENT" and attempt["outcome"] == "REACHED"
        if reached:
            transition(st.status, "contact_made")
        # A client reached before the ladder was last started again (a repeat drop, a crisis
        # signal after an earlier contact), logged late, is history: the ladder keeps running
        # (domain.fold_alert), so it is not announced as stopping it (no AlertContactMade).
        stopped = reached and contact_stops_ladder(alert["opened_at"], all_records(alert, records), at)
        record = {
            "alert_id": alert_id,
            "kind": "ATTEMPT",
            **attempt,
            "reached": reached,
            "stopped_ladder": stopped,
            "by": by,
            "at": at,
            "recorded_at": now,
        }
        attempted = ev.AlertContactAttempted(
            alert_id=alert_id,
            client_id=alert["client_id"],
            attempt_id=attempt["attempt_id"],
            target=attempt["target"],
            outcome=attempt["outcome"],
            recorded_by=by,
            stopped_ladder=stopped,
        )
        attempted.attempted_at.FromDatetime(at)
        outgoing = [OutgoingEvent(ALERTS_TOPIC.name, alert_id, attempted)]
        if stopped:  # the client was reached: the ladder stops
            made = ev.AlertContactMade(alert_id=alert_id, client_id=alert["client_id"], recorded_by=by, target="CLIENT")
            made.at.FromDatetime(at)
            outgoing.append(OutgoingEvent(ALERTS_TOPIC.name, alert_id, made))
        await self._record(alert, records, record, outgoing)
        return alert

    async def resolve(self, alert_id: str, resolution: str, by: str) -> Document:
        alert, records, st = await self.current(alert_id)
        transition(st.status, "resolve")
        now = datetime.now(UTC)
        record = {
            "_id": f"{alert_id}:resolved",
            "alert_id": alert_id,
            "kind": "RESOLVED",
            "resolution": resolution,
            "by": by,
            "at": now,
        }
        resolved = ev.AlertResolved(
            alert_id=alert_id, client_id=alert["client_id"], resolved_by=by, resolution=resolution
        )
        resolved.resolved_at.FromDatetime(now)
        flag = fhir.alert_flag(alert_id, alert["client_id"], False, alert["opened_at"], now)
        outgoing = [
            OutgoingEvent(ALERTS_TOPIC.name, alert_id, resolved),
            OutgoingEvent(FHIR_TOPIC.name, alert["client_id"], flag),
        ]
        if not await self._record(alert, records, record, outgoing):
            raise TransitionError("ALERT_RESOLVED", "the alert is already resolved")
        return alert
