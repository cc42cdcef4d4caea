"""Events the compliance service publishes (pure builders)."""

from __future__ import annotations

from datetime import datetime

from iop.events.v1 import compliance_pb2 as ev
from iop.events.v1.scheduling_pb2 import FhirResourcePublished
from services.compliance import fhir
from services.compliance.consent import COMPROMISED
from services.compliance.coverage import DayBilling
from services.compliance.licensure import LicensureResult
from services.compliance.topics import BILLING, DECISIONS, FHIR, PRIVACY
from services.plumbing.outbox import OutgoingEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document

MODALITY_PB = {"VIDEO": 1, "AUDIO_ONLY": 2, "MIXED": 3}


def privacy_events(
    session_id: str, client_id: str, clinician_id: str, attestation: str, at: datetime
) -> list[OutgoingEvent]:
    if attestation != COMPROMISED:
        return []
    message = ev.PrivacyCompromised(
        session_id=session_id,
        client_id=client_id,
        attestation=attestation,
        at=to_timestamp(at),
        clinician_id=clinician_id,
    )
    return [OutgoingEvent(PRIVACY.name, session_id, message)]


def licensure_checked(
    session_id: str,
    clinician_id: str,
    client_id: str,
    client_state: str,
    result: LicensureResult,
    at: datetime,
    clinician_role: str,
) -> OutgoingEvent:
    """`clinician_id` is whose licensure was checked, in `clinician_role` (clinician: the session's;
    lead, co_facilitator: a treating facilitator)."""
    message = ev.LicensureChecked(
        session_id=session_id,
        clinician_id=clinician_id,
        clinician_role=clinician_role,
        client_state=client_state,
        decision=result.decision,
        reasons=result.reasons,
        data_version=result.data_version,
        client_id=client_id,
        stage="start",
        checked_at=to_timestamp(at),
    )
    return OutgoingEvent(DECISIONS.name, session_id, message)


def billing_ready(
    client_id: str,
    service_date: str,
    payer_plan_id: str,
    billing: DayBilling,
    session_ids: list[str],
    amended: bool,
    data_version: str,
    week_minutes_to_date: int = 0,
    week_days_to_date: int = 0,
) -> OutgoingEvent:
    message = ev.BillingReady(
        client_id=client_id,
        service_date=service_date,
        payer_plan_id=payer_plan_id,
        lines=[
            ev.BillingLine(
                code=line.code,
                modifiers=list(line.modifiers),
                place_of_service=line.place_of_service,
                revenue_code=line.revenue_code,
                units=line.units,
            )
            for line in billing.lines
        ],
        modality=MODALITY_PB.get(billing.modality, 0),  # type: ignore[arg-type]
        minutes_attended=billing.minutes,
        covered=billing.covered,
        problems=billing.problems,
        authorization_id=billing.authorization_id,
        authorization_units_remaining=billing.units_remaining,
        session_ids=session_ids,
        condition_codes=billing.condition_codes,
        amended=amended,
        data_version=data_version,
        week_minutes_to_date=week_minutes_to_date,
        week_days_to_date=week_days_to_date,
    )
    return OutgoingEvent(BILLING.name, client_id, message)


def credential_expiring(
    item_id: str,
    item_type: str,
    owner_id: str,
    expires_at: datetime,
    horizon_days: int,
    affected_session_ids: list[str],
) -> OutgoingEvent:
    message = ev.CredentialExpiring(
        item_id=item_id,
        item_type=item_type,
        owner_id=owner_id,
        expires_at=to_timestamp(expires_at),
        horizon_days=horizon_days,
        affected_session_ids=affected_session_ids,
    )
    return OutgoingEvent(DECISIONS.name, owner_id, message)


def consent_events(doc: Document, status: str, at: datetime) -> list[OutgoingEvent]:
    """ConsentChanged on the decisions topic and the FHIR Consent of the new state."""
    resource = fhir.consent(doc)
    published = FhirResourcePublished(
        resource_type="Consent", resource_id=doc["_id"], fhir_version=fhir.FHIR_VERSION, json=fhir.to_json(resource)
    )
    return [consent_changed(doc, status, at), OutgoingEvent(FHIR.name, doc["client_id"], published)]


def consent_changed(doc: Document, status: str, at: datetime) -> OutgoingEvent:
    message = ev.ConsentChanged(
        consent_id=doc["_id"],
        client_id=doc["client_id"],
        consent_type=doc["consent_type"],
        form_version=doc["form_version"],
        status=status,
        valid_from=to_timestamp(doc["valid_from"]),
        valid_until=to_timestamp(doc["valid_until"]),
        changed_at=to_timestamp(at),
    )
    return OutgoingEvent(DECISIONS.name, doc["client_id"], message)


def credential_status_changed(
    item_id: str,
    item_type: str,
    clinician_id: str,
    status: str,
    effective_at: datetime,
    recorded_at: datetime,
    affected_session_ids: list[str],
    cleared_session_ids: list[str],
) -> OutgoingEvent:
    message = ev.CredentialStatusChanged(
        item_id=item_id,
        item_type=item_type,
        clinician_id=clinician_id,
        status=status,
        effective_at=to_timestamp(effective_at),
        recorded_at=to_timestamp(recorded_at),
        affected_session_ids=affected_session_ids,
        cleared_session_ids=cleared_session_ids,
    )
    return OutgoingEvent(DECISIONS.name, clinician_id, message)
