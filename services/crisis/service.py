"""Service layer: risk state, verified check-ins, safety plans, and the response to a dropped
connection. Composes the pure domain, the reference data and the store; used by the gRPC API
and the event handlers alike."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace

from iop.events.v1 import crisis_pb2 as ev
from services.crisis import events, fhir
from services.crisis.alerts import SOURCE, AlertService, ClientFacts, derived_id
from services.crisis.domain import (
    DropDecision,
    Risk,
    Route,
    decide_on_drop,
    route_contact,
    to_windows,
)
from services.crisis.reference import NoResourcesForLocation, PolicyBook, ResourceCatalog
from services.crisis.store import (
    CHECKINS,
    CLIENT_RECORDS,
    PLANS,
    RECONNECT_TASKS,
    CrisisStore,
    late_checkin_id,
    number_given_at,
    seq_id,
)
from services.crisis.store import RISK as RISK_LOG
from services.crisis.topics import FHIR_TOPIC, LOCATIONS_TOPIC, RISK, TASKS_TOPIC
from services.plumbing.outbox import OutboxRelay, OutgoingEvent, new_document_with_outbox
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document, to_millis


def enum_value(value: int) -> Any:
    """A domain IntEnum as a protobuf enum field value (same numbers)."""
    return int(value)


log = logging.getLogger(__name__)
MAX_RETRIES = 5


class VersionConflict(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


@dataclass(frozen=True)
class DropOutcome:
    decision: DropDecision
    alert_id: str = ""
    task_id: str = ""


class CrisisCore:
    def __init__(
        self,
        store: CrisisStore,
        relay: OutboxRelay,
        alerts: AlertService,
        catalog: ResourceCatalog,
        policies: PolicyBook,
    ) -> None:
        self.store = store
        self.relay = relay
        self.alerts = alerts
        self.catalog = catalog
        self.policies = policies

    # ------------------------------------------------------------------ risk

    async def set_risk(
        self,
        client_id: str,
        level: Risk,
        source: str,
        reasons: list[str],
        by: str,
        now: datetime,
        *,
        only_raise: bool = False,
    ) -> Document:
        """Record an assessment (one insert); RiskLevelChanged + a FHIR RiskAssessment ride on it when
        the level changes. `only_raise`: a signal may raise the level, never lower it (so a
        redelivered signal changes nothing)."""
        current = await self.store.risk(client_id)
        previous = Risk(current["level"]) if current else Risk.UNSPECIFIED
        new = max(previous, level) if only_raise else level
        if only_raise and current is not None and new == previous:
            return current
        fields = {
            "client_id": client_id,
            "level": int(new),
            "previous_level": int(previous),
            "source": source,
            "reasons": reasons,
            "by": by,
            "at": now,
        }

        def make(record_id: str, seq: int) -> Document:
            outgoing = []
            if new != previous:
                changed = ev.RiskLevelChanged(
                    client_id=client_id,
                    previous_level=enum_value(previous),
                    level=enum_value(new),
                    source=source,
                    recorded_by=by,
                    changed_at=to_timestamp(now),
                    reasons=reasons,
                )
                assessment = fhir.risk_assessment(derived_id("risk", record_id), client_id, new, source, reasons, now)
                outgoing = [
                    OutgoingEvent(RISK.name, client_id, changed),
                    OutgoingEvent(FHIR_TOPIC.name, client_id, assessment),
                ]
            return new_document_with_outbox({"_id": record_id, **fields}, SOURCE, outgoing)

        doc = await self.store.append(RISK_LOG, client_id, make)
        if new != previous:
            self.relay.notify(CLIENT_RECORDS, doc["_id"], doc)
        return doc

    # ------------------------------------------------------------------ check-ins

    async def record_checkin(
        self,
        *,
        event_id: str,
        client_id: str,
        session_id: str,
        location: dict[str, Any],
        backup_phone: str,
        at: datetime,
    ) -> None:
        """The verified location at session start, with its crisis resources resolved now; a location
        without reference data is published as LocalResourcesMissing (loud, not silent).

        The current location is the check-in with the latest check-in time, not the last to arrive:
        check-ins of different sessions come on different partitions, so an older one may arrive
        after a newer one. Such a late check-in is kept apart (LATE_CHECKINS), as history only, once
        per event: a redelivery of a check-in that is no longer the current one (it came late, or a
        later one came after it) finds its record and changes nothing.
        Two check-ins applied at once may both find the same current one and be appended in either
        order: each names the top of the log it read (`based_on`), from which the store's read
        picks the latest by time (`CrisisStore.current_checkin`) without a lock or an update.

        The callback number is optional at check-in: a check-in without one keeps the client's last
        known number (the current check-in's, itself possibly kept from an earlier one), so an
        escalation from it still has a number to call; a new number replaces it. Each record names
        when its number was given (`backup_phone_at`, the time of the check-in that gave it), so
        that of check-ins appended at once the current one reads the number of the latest that gave
        one (`store.with_latest_number`), not the older number its writer read. A late check-in
        whose number was given after the current one's passes it on (`_pass_on_number`): the
        number kept is the one given most recently by check-in time, whatever the order of arrival."""
        at = to_millis(at)  # as stored: compared with stored times
        session, (top, latest) = await asyncio.gather(
            self.store.session(session_id), self.store.current_checkin(client_id)
        )
        session = session or {}
        if latest is not None and latest.get("event_id") == event_id:
            return  # a redelivery: no change, no event
        late = latest is not None and latest["at"] > at
        # (a check-in of the same time as the current one may be in the log too: two sessions'
        # check-ins at one instant, the other picked as current)
        if latest is not None and latest["at"] >= at and await self.store.in_checkin_log(client_id, event_id, at, top):
            return  # a redelivery of a check-in that was current when it came, and is no longer
        resources: dict[str, Any] | None
        problem = ""
        try:
            resources = self.catalog.lookup(location.get("state", ""), location.get("county_fips", ""))
        except NoResourcesForLocation:
            resources, problem = None, "NO_RESOURCES_FOR_LOCATION"
        number_at: datetime | None
        if backup_phone.strip():
            number, number_at = backup_phone, at
        else:  # the last known number, and when it was given
            number, number_at = (latest or {}).get("backup_phone", ""), number_given_at(latest or {})
        doc = {
            "event_id": event_id,
            "client_id": client_id,
            "session_id": session_id,
            "program_id": session.get("program_id", ""),
            "clinician_id": session.get("clinician_id", ""),
            "location": location,
            "backup_phone": number,
            "backup_phone_at": number_at,
            "resources": resources,
            "resources_problem": problem,
            "at": at,
        }
        outgoing = []
        if resources is None:
            log.warning("verified location without crisis reference data (data %s)", self.catalog.version)
            missing = ev.LocalResourcesMissing(
                client_id=client_id,
                session_id=session_id,
                state=location.get("state", ""),
                county_fips=location.get("county_fips", ""),
                data_version=self.catalog.version,
                at=to_timestamp(at),
            )
            outgoing.append(OutgoingEvent(LOCATIONS_TOPIC.name, client_id, missing))
        if late:  # history only, one record per event: a redelivery of it finds it and changes nothing
            if latest is not None and backup_phone.strip():
                await self._pass_on_number(latest, top, backup_phone, at)
            saved = new_document_with_outbox({"_id": late_checkin_id(client_id, event_id), **doc}, SOURCE, outgoing)
            if not await self.store.insert_late_checkin(saved):
                return
        else:
            doc["based_on"] = top  # every check-in up to there is no later than this one
            saved = await self.store.append_after(
                CHECKINS, client_id, top, lambda rid, _: new_document_with_outbox({"_id": rid, **doc}, SOURCE, outgoing)
            )
        if outgoing:
            self.relay.notify(CLIENT_RECORDS, saved["_id"], saved)

    async def _pass_on_number(self, current: Document, top: int, number: str, at: datetime) -> None:
        """A late check-in's number (given at `at`) is the client's latest when the current check-in
        (`top` the log's top as read) holds none given later: the current check-in is appended
        again with it, as the latest by check-in time with the same `at` (so it is read as the
        current one, and every record up to `top` is no later than it, `store._current_checkin`).
        Called before the late check-in's own record is stored, so a redelivery after a crash
        between still passes it on; once passed on, the current check-in's number is given no
        earlier and nothing is appended again."""
        kept = number_given_at(current)
        if kept is not None and kept >= at:
            return
        again = {k: v for k, v in current.items() if k not in ("_id", "kind")}
        again.update(backup_phone=number, backup_phone_at=at, based_on=top)

        def make(record_id: str, _: int) -> Document:
            return new_document_with_outbox({**again, "_id": record_id}, SOURCE, [])

        await self.store.append_after(CHECKINS, current["client_id"], top, make)

    # ------------------------------------------------------------------ safety plans

    async def save_plan(self, plan: dict[str, Any], expected_version: int, by: str, now: datetime) -> Document:
        """A new version of the client's plan, with its FHIR CarePlan, in one insert; the unique
        `<client>:<version>` id makes concurrent saves of the same version conflict."""
        client_id = plan["client_id"]
        current = await self.store.plan(client_id)
        current_version = current["version"] if current else 0
        if current_version != expected_version:
            raise VersionConflict(current_version)
        for c in plan.get("emergency_contacts", []):
            c["contact_id"] = c.get("contact_id") or uuid.uuid4().hex[:12]
        return await self._insert_version(client_id, {**plan, "retired": False}, expected_version + 1, by, now)

    async def retire_plan(self, client_id: str, expected_version: int, by: str, now: datetime) -> Document:
        current = await self.store.plan(client_id)
        if current is None:
            raise LookupError(client_id)
        if current["version"] != expected_version:
            raise VersionConflict(current["version"])
        plan = {k: v for k, v in current.items() if k not in ("_id", "version", "updated_by", "updated_at")}
        return await self._insert_version(client_id, {**plan, "retired": True}, expected_version + 1, by, now)

    async def _insert_version(
        self, client_id: str, plan: dict[str, Any], version: int, by: str, now: datetime
    ) -> Document:
        doc = {
            **plan,
            "_id": seq_id(PLANS, client_id, version),
            "client_id": client_id,
            "version": version,
            "updated_by": by,
            "updated_at": now,
        }
        care_plan = fhir.safety_care_plan(doc)
        outgoing = [OutgoingEvent(FHIR_TOPIC.name, client_id, care_plan)]
        written = new_document_with_outbox(doc, SOURCE, outgoing)
        if not await self.store.insert_plan_version(written):
            latest = await self.store.plan(client_id)
            raise VersionConflict(latest["version"] if latest else 0)
        self.relay.notify(CLIENT_RECORDS, doc["_id"], written)
        return doc

    # ------------------------------------------------------------------ disconnections

    async def on_disconnect(
        self,
        *,
        trigger_id: str,
        client_id: str,
        session_id: str,
        clinician_id: str,
        program_id: str,
        reason: str,
        now: datetime,
        dropped_at: datetime | None = None,
        first_delivery: bool = False,
    ) -> DropOutcome:
        """Opens (or escalates) an alert for a client at moderate/high risk or with an active alert;
        a reconnect/reschedule task otherwise. `dropped_at` (default `now`) decides whether the drop
        was during the session; `now` times the response. `first_delivery`: no earlier attempt ran
        for this drop (the consumer's claim of its event is new), so the alert it would have opened
        is not read back."""
        alert_id = derived_id("alert", trigger_id, client_id)
        # Everything the response may need, in one round of reads (and the active alert's header
        # when there is one).
        records, session, own_alert = await asyncio.gather(
            self.store.client_records(client_id),
            self.store.session(session_id),
            _nothing() if first_delivery else self.store.alert(alert_id),
        )
        active = await self.store.alert(records.active_alert_id) if records.active_alert_id else None
        current, facts = records.risk, ClientFacts(session, records.checkin, records.plan)
        risk = Risk(current["level"]) if current else Risk.UNSPECIFIED
        session_doc = facts.session or {}
        decision = decide_on_drop(
            risk,
            active is not None,
            session_doc.get("status", ""),
            dropped_at or now,
            session_doc.get("ended_at") or session_doc.get("cancelled_at"),
        )
        span = trace.get_current_span()
        span.set_attribute("crisis.drop.decision", decision.action)
        if own_alert is not None:
            return DropOutcome(decision, alert_id=alert_id)  # a redelivery: this drop opened it
        if decision.action == "IGNORE":
            return DropOutcome(decision)
        if decision.action == "ESCALATE_ALERT" and active is not None:
            escalated = await self.alerts.escalate_now(active["_id"], trigger_id, "DISCONNECTED_AGAIN", now)
            if escalated is not None:
                await self._drop_names_care_team(session_doc, session_id, client_id, clinician_id)
                return DropOutcome(decision, alert_id=escalated["_id"])
            decision = DropDecision("OPEN_ALERT", "DISCONNECTED_AFTER_ALERT_RESOLVED")  # resolved meanwhile
        if decision.action == "OPEN_ALERT":
            for attempt in range(MAX_RETRIES):
                alert, _created = await self.alerts.open_alert(
                    alert_id=alert_id,
                    client_id=client_id,
                    session_id=session_id,
                    program_id=program_id,
                    clinician_id=clinician_id,
                    reason=reason,
                    risk=risk,
                    trigger_event_id=trigger_id,
                    extra_assignees=[],
                    now=now,
                    facts=facts,
                    known_absent=attempt == 0,  # own_alert was None (read, or known not to exist)
                )
                if alert is not None:
                    return DropOutcome(decision, alert_id=alert["_id"])
                # another alert became active concurrently: escalate that one instead
                other = await self.store.active_alert(client_id)
                if other is not None:
                    escalated = await self.alerts.escalate_now(other["_id"], trigger_id, "DISCONNECTED_AGAIN", now)
                    if escalated is not None:
                        await self._drop_names_care_team(session_doc, session_id, client_id, clinician_id)
                        return DropOutcome(
                            DropDecision("ESCALATE_ALERT", "DISCONNECTED_WITH_OPEN_ALERT"), escalated["_id"]
                        )
            raise RuntimeError("could not open or escalate an alert; retry")
        return DropOutcome(
            decision,
            task_id=await self.reconnect_task(
                trigger_id, client_id, session_id, clinician_id, program_id, decision.reason, now, facts
            ),
        )

    async def _drop_names_care_team(
        self, session: Document, session_id: str, client_id: str, clinician_id: str
    ) -> None:
        """A drop that escalated an alert already active, in a session whose booking this service
        has not applied yet (the sessions consumer's lag: a session booked seconds ago): the drop's
        clinician treats the client (engagement names the session's clinician, from the same
        SessionScheduled), so they reach the client's crisis card and plan now, as the clinician of a
        drop that opens an alert does as its assignee. The session's own events link the same
        (unique inserts) and its cancellation unlinks it. Not on the first drop's path (an alert it
        opens names them), so that path's commands stay as they are."""
        if clinician_id and not session.get("clinician_id"):
            await self.store.link_care_team(session_id, [client_id], [clinician_id])

    async def reconnect_task(
        self,
        trigger_id: str,
        client_id: str,
        session_id: str,
        clinician_id: str,
        program_id: str,
        reason: str,
        now: datetime,
        facts: ClientFacts | None = None,
    ) -> str:
        task_id = derived_id("reconnect", trigger_id, client_id)
        facts = facts or await self.alerts.client_facts(client_id, session_id)
        session, plan = facts.session or {}, facts.plan or {}
        program_id = program_id or session.get("program_id", "")
        clinician_id = clinician_id or session.get("clinician_id", "")
        policy = self.policies.for_program(program_id)
        windows, tz = plan.get("contact_windows") or [], plan.get("time_zone", "")
        routing = (
            route_contact(now, to_windows(windows), tz, clinician_id, policy.on_call_id)
            if windows
            else route_contact(now, list(policy.default_windows), policy.time_zone, clinician_id, policy.on_call_id)
        )
        task = {
            "task_id": task_id,
            "kind": "RECONNECT_RESCHEDULE",
            "route": int(routing.route),
            "assignee_id": routing.assignee_id,
            "reason": reason,
            "backup_line": session.get("backup_line", ""),
            "created_at": now,
            "status": "open",
            "problems": [],
        }
        owner = {"client_id": client_id, "session_id": session_id}
        doc = new_document_with_outbox(
            {"_id": task_id, **owner, **task},
            SOURCE,
            [OutgoingEvent(TASKS_TOPIC.name, client_id, events.task_event(task, owner))],
        )
        if await self.store.insert_new(RECONNECT_TASKS, doc):
            self.relay.notify(RECONNECT_TASKS, task_id, doc)
        return task_id

    async def on_crisis_signal(self, *, trigger_id: str, client_id: str, value: int, now: datetime) -> str:
        """A positive PHQ-9 item 9: risk at least MODERATE, and an alert so a clinician follows up now.
        With an alert already active, no second alert is opened: after its client was reached the
        ladder restarts from its first rung (a new risk); while it is still trying to reach them the
        signal is noted on it (a SIGNAL record and a CRISIS_SIGNAL task for whoever answers it)."""
        if value < 1:
            return ""
        doc = await self.set_risk(
            client_id,
            Risk.MODERATE,
            "phq9-item9",
            ["PHQ9_ITEM9_POSITIVE"],
            "engagement",
            now,
            only_raise=True,
        )
        alert_id = derived_id("alert", trigger_id, client_id)
        own, active = await asyncio.gather(self.store.alert(alert_id), self.store.active_alert(client_id))
        if own is not None:
            return alert_id  # a redelivery: this signal opened it
        for _ in range(MAX_RETRIES):
            if active is not None:
                noted = await self.alerts.note_signal(active["_id"], trigger_id, "PHQ9_ITEM9_POSITIVE", now)
                if noted is not None:
                    return str(noted["_id"])
            alert, _ = await self.alerts.open_alert(  # no alert, or the active one was resolved meanwhile
                alert_id=alert_id,
                client_id=client_id,
                session_id="",
                program_id="",
                clinician_id="",
                reason="PHQ9_ITEM9_POSITIVE",
                risk=Risk(doc["level"]),
                trigger_event_id=trigger_id,
                extra_assignees=[],
                now=now,
            )
            if alert is not None:
                return str(alert["_id"])
            active = await self.store.active_alert(client_id)  # another alert became active concurrently
        raise RuntimeError("could not open an alert or note the signal on the active one; retry")


async def _nothing() -> Document | None:
    return None


def routing_for(
    policies: PolicyBook, plan: Document | None, program_id: str, clinician_id: str, at: datetime
) -> tuple[Route, str, bool, str]:
    policy = policies.for_program(program_id or (plan or {}).get("program_id", ""))
    windows = (plan or {}).get("contact_windows") or []
    if windows:
        r = route_contact(at, to_windows(windows), (plan or {}).get("time_zone", ""), clinician_id, policy.on_call_id)
    else:
        r = route_contact(at, list(policy.default_windows), policy.time_zone, clinician_id, policy.on_call_id)
    return r.route, r.assignee_id, r.within_window, r.reason
