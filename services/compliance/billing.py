"""Closing a client's attended day: billing lines, authorization decrement, BillingReady (service layer)."""

from __future__ import annotations

import logging
from datetime import date, datetime

from services.compliance import events
from services.compliance.coverage import AttendedSession, DayBilling, bill_day, week_of, weekly_problems
from services.compliance.reference import Reference
from services.compliance.store import AUTHORIZATIONS, ComplianceStore, authorization_from_doc
from services.plumbing.storage import Document

log = logging.getLogger(__name__)


class BillingDays:
    def __init__(self, store: ComplianceStore, ref: Reference) -> None:
        self._store = store
        self._ref = ref

    async def close_due(self, now: datetime) -> int:
        """Close every day whose close time has passed and that has unreported sessions."""
        closed = 0
        for day in await self._store.due_billing_days(now):
            if await self.close(day):
                closed += 1
        return closed

    async def close(self, day: Document) -> bool:
        ref = self._ref
        client_id, service_date = day["client_id"], day["service_date"]
        policy = await self._store.policy(day["payer_plan_id"]) if day.get("payer_plan_id") else None
        sessions = [
            AttendedSession(e["session_id"], e["kind"], int(e["minutes"]), e["modality"]) for e in day["entries"]
        ]
        on = date.fromisoformat(service_date)
        level = day.get("level_of_care") or "IOP_PSYCH"
        pos = day.get("place_of_service") or "10"

        async def bill() -> DayBilling:
            auths = [authorization_from_doc(d) for d in await self._store.owned(AUTHORIZATIONS, client_id)]
            return bill_day(ref, policy, auths, level_of_care=level, sessions=sessions, day=on, place_of_service=pos)

        billing = await bill()
        if billing.covered and billing.authorization_id:
            # Count the day against the authorization (once per date, idempotent), then re-read it.
            await self._store.decrement_authorization(client_id, billing.authorization_id, service_date)
            billing = await bill()
        monday, sunday = week_of(on)
        minutes_by_day: dict[date, int] = {}
        for d in await self._store.billing_week(client_id, monday.isoformat(), sunday.isoformat()):
            d_day = date.fromisoformat(d["service_date"])
            if d_day <= on:
                minutes_by_day[d_day] = sum(int(e["minutes"]) for e in d.get("entries") or [])
        billing.problems += weekly_problems(policy, on, minutes_by_day, ref.last_program_weekday)
        event = events.billing_ready(
            client_id=client_id,
            service_date=service_date,
            payer_plan_id=day.get("payer_plan_id", ""),
            billing=billing,
            session_ids=sorted({s.session_id for s in sessions}),
            amended=int(day.get("reports", 0)) > 0,
            data_version=ref.version,
            week_minutes_to_date=sum(minutes_by_day.values()),
            week_days_to_date=sum(1 for m in minutes_by_day.values() if m > 0),
        )
        fields = {
            "covered": billing.covered,
            "problems": billing.problems,
            "authorization_id": billing.authorization_id,
        }
        return await self._store.close_billing_day(day, fields, [event])
