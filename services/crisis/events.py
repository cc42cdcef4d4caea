"""Builds the crisis service's event messages (iop.events.v1) from stored documents. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iop.events.v1 import common_pb2
from iop.events.v1 import crisis_pb2 as ev
from services.crisis.domain import Task
from services.plumbing.protos import to_timestamp

LOCATION_FIELDS = ("state", "county_fips", "postal_code", "address_line", "city", "verified")


def location_dict(location: common_pb2.ClientLocation) -> dict[str, Any]:
    return {name: getattr(location, name) for name in LOCATION_FIELDS}


def location_message(location: dict[str, Any] | None) -> common_pb2.ClientLocation:
    if not location:
        return common_pb2.ClientLocation()
    return common_pb2.ClientLocation(**{k: location[k] for k in LOCATION_FIELDS if k in location})


def resources_message(resources: dict[str, Any] | None) -> ev.CrisisResources:
    if not resources:
        return ev.CrisisResources()
    return ev.CrisisResources(
        region_id=resources["region_id"],
        lifeline=resources["lifeline"],
        emergency_number=resources["emergency_number"],
        emergency_routing=resources["emergency_routing"],
        psap_name=resources["psap_name"],
        psap_phone=resources["psap_phone"],
        mobile_crisis=ev.MobileCrisisTeam(**resources["mobile_crisis"]),
        emergency_departments=[ev.EmergencyDepartment(**e) for e in resources["emergency_departments"]],
        data_version=resources["data_version"],
        illustrative=resources["illustrative"],
    )


# What a fired rung records it dispatched to (its tasks' location and callback phone, and the
# check-in they are from), shown on the Alert's step and on its AlertEscalated.
DISPATCHED_FIELDS = ("callback_phone", "location", "location_session_id", "location_verified_at")


def dispatched(context: dict[str, Any]) -> dict[str, Any]:
    """What tasks made with this alert context dispatch to."""
    return {k: context.get(k) for k in DISPATCHED_FIELDS}


def dispatched_message_fields(rung: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    """The dispatch fields of AlertEscalated / LadderStepState for a fired rung: what it recorded,
    or (the rung fired at open, or before rungs recorded it) the alert's own context."""
    d = rung.get("dispatched") or dispatched(alert.get("context") or {})
    verified_at = d.get("location_verified_at")
    return {
        "location": location_message(d["location"]) if d.get("location") else None,
        "callback_phone": d.get("callback_phone") or "",
        "location_session_id": d.get("location_session_id") or "",
        "location_verified_at": to_timestamp(verified_at) if verified_at is not None else None,
    }


def task_document(task: Task, alert: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A task as stored on its alert (and published as CrisisTaskCreated)."""
    ctx = alert["context"]
    return {
        "task_id": task.task_id,
        "kind": task.kind,
        "route": int(task.route),
        "assignee_id": task.assignee_id,
        "callback_phone": ctx.get("callback_phone", ""),
        "backup_line": ctx.get("backup_line", ""),
        "contact_name": task.contact_name,
        "contact_phone": task.contact_phone,
        "problems": list(task.problems),
        "created_at": at,
        "status": "open",
    }


def task_event(task: dict[str, Any], alert: dict[str, Any]) -> ev.CrisisTaskCreated:
    ctx = alert.get("context") or {}
    return ev.CrisisTaskCreated(
        task_id=task["task_id"],
        client_id=alert["client_id"],
        alert_id=alert.get("_id", "") if "context" in alert else "",
        session_id=alert.get("session_id", ""),
        kind=task["kind"],
        route=task["route"],
        assignee_id=task["assignee_id"],
        callback_phone=task.get("callback_phone", ""),
        backup_line=task.get("backup_line", ""),
        resources=resources_message(ctx.get("resources") if task["kind"] != "RECONNECT_RESCHEDULE" else None),
        location=location_message(ctx.get("location")),
        contact_name=task.get("contact_name", ""),
        contact_phone=task.get("contact_phone", ""),
        created_at=to_timestamp(task["created_at"]),
        problems=task.get("problems", []),
    )


def opened_event(alert: dict[str, Any]) -> ev.AlertOpened:
    return ev.AlertOpened(
        alert_id=alert["_id"],
        client_id=alert["client_id"],
        session_id=alert["session_id"],
        program_id=alert["program_id"],
        clinician_id=alert["clinician_id"],
        reason=alert["reason"],
        risk_level=alert["risk_level"],
        opened_at=to_timestamp(alert["opened_at"]),
        trigger_event_id=alert.get("trigger_event_id", ""),
        on_call_id=alert["policy"]["on_call_id"],
        problems=alert["problems"],
        next_step_due_at=to_timestamp(alert.get("due_at")),
        policy_id=alert["policy"]["policy_id"],
    )


def escalated_event(alert: dict[str, Any], fired: dict[str, Any], next_due: datetime | None) -> ev.AlertEscalated:
    return ev.AlertEscalated(
        alert_id=alert["_id"],
        client_id=alert["client_id"],
        step_index=fired["index"],
        step=fired["step"],
        trigger=fired["trigger"],
        due_at=to_timestamp(fired.get("due_at")),
        escalated_at=to_timestamp(fired["at"]),
        route=fired["route"],
        assignee_id=fired["assignee_id"],
        delivery_status=fired["delivery_status"],
        delivery_error=fired.get("delivery_error", ""),
        problems=fired.get("problems", []),
        next_step_due_at=to_timestamp(next_due),
        fired_by=fired.get("fired_by", ""),
        ladder_round=fired.get("round", 0),
        **dispatched_message_fields(fired, alert),
    )
