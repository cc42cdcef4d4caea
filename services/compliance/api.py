"""gRPC API of the compliance service (iop.compliance.v1.ComplianceService)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
from pymongo.errors import DuplicateKeyError, PyMongoError

from iop.compliance.v1 import compliance_pb2 as pb
from iop.compliance.v1 import compliance_pb2_grpc
from iop.events.v1 import common_pb2, scheduling_pb2
from services.compliance import events
from services.compliance.audit_log import BatchedAudit
from services.compliance.board_actions import BoardActions, in_force_at_expiry
from services.compliance.consent import CONSENT_TYPES, consent_problems, place_of_service, privacy_problems
from services.compliance.coverage import (
    AUDIO_ONLY,
    MIXED,
    VIDEO,
    Authorization,
    CoverageResult,
    PayerPolicy,
    evaluate_coverage,
)
from services.compliance.evaluation import BOOKING, START, combine
from services.compliance.licensure import (
    ALLOW,
    DENY,
    LICENSE_PROFESSIONS,
    NEEDS_REVIEW,
    LicensureQuery,
    LicensureResult,
    decide_licensure,
    status_at,
)
from services.compliance.reference import Reference, local_date, local_day_bounds
from services.compliance.store import (
    AUTHORIZATIONS,
    COMPACT_CREDENTIALS,
    CONSENTS,
    EXPIRING,
    LICENSES,
    ComplianceStore,
    authorization_from_doc,
    credential_from_doc,
    license_from_doc,
    owner_sessions,
)
from services.compliance.validation import (
    AUTH_NUMBER,
    FORM_VERSION,
    check_enum,
    check_id,
    check_not_future,
    check_range,
    check_state,
    parse_day,
    validate_compact_credential,
    validate_license,
    validate_policy,
    validate_status_change,
)
from services.plumbing.audit import record_phi_access
from services.plumbing.auth import current_principal
from services.plumbing.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolations,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.plumbing.protos import request_time, to_timestamp
from services.plumbing.storage import Document

SERVICE = "iop.compliance.v1.ComplianceService"
_READERS = frozenset({"platform", "clinician", "supervisor"})
_ADMINS = frozenset({"platform", "supervisor"})
ACCESS = {
    f"/{SERVICE}/EvaluateSession": _READERS,
    f"/{SERVICE}/CheckLicensure": _READERS,
    f"/{SERVICE}/CheckCoverage": _READERS,
    f"/{SERVICE}/RecordLicense": _ADMINS,
    f"/{SERVICE}/RecordCompactCredential": _ADMINS,
    f"/{SERVICE}/ListClinicianCredentials": _READERS,
    f"/{SERVICE}/UpdateLicenseStatus": _ADMINS,  # as RecordLicense
    f"/{SERVICE}/UpdateCompactCredentialStatus": _ADMINS,
    f"/{SERVICE}/UpsertPayerPolicy": frozenset({"platform"}),
    f"/{SERVICE}/GetPayerPolicy": frozenset({"platform", "clinician", "supervisor", "partner"}),
    f"/{SERVICE}/RecordAuthorization": _ADMINS,
    f"/{SERVICE}/ListAuthorizations": _READERS,
    f"/{SERVICE}/RecordConsent": _READERS,
    f"/{SERVICE}/RevokeConsent": _ADMINS,
    f"/{SERVICE}/ListConsents": _READERS,
    f"/{SERVICE}/RecordPrivacyAttestation": frozenset({"platform", "clinician", "client"}),
    f"/{SERVICE}/ListExpiring": _ADMINS,
}

DECISION_PB = {ALLOW: pb.DECISION_ALLOW, DENY: pb.DECISION_DENY, NEEDS_REVIEW: pb.DECISION_NEEDS_REVIEW}
STAGES = {pb.EVALUATION_STAGE_BOOKING: BOOKING, pb.EVALUATION_STAGE_START: START}
MODALITIES = {
    common_pb2.MODALITY_UNSPECIFIED: VIDEO,  # planned sessions are video unless said otherwise
    common_pb2.MODALITY_VIDEO: VIDEO,
    common_pb2.MODALITY_AUDIO_ONLY: AUDIO_ONLY,
    common_pb2.MODALITY_MIXED: MIXED,
}


def expiring_record(
    owner_field: str, owner_id: str, expires_at: datetime | None, recorded_at: datetime, **fields: Any
) -> Document:
    """A new record the expiry monitor watches: its owner (also as the directory's `owner_id`),
    `fields`, and when it expires (None: never). The warnings sent are not kept in it (see
    ComplianceStore.mark_horizons); one stored before keeps `notified_horizons`."""
    return {
        "_id": str(uuid.uuid4()),
        owner_field: owner_id,
        "owner_id": owner_id,
        **fields,
        "expires_at": expires_at,
        "recorded_at": recorded_at,
    }


def licensure_pb(result: LicensureResult) -> pb.LicensureDecision:
    return pb.LicensureDecision(
        decision=DECISION_PB[result.decision],
        reasons=result.reasons,
        basis=result.basis,
        data_version=result.data_version,
    )


def coverage_pb(result: CoverageResult, data_version: str) -> pb.CoverageDecision:
    return pb.CoverageDecision(
        covered=result.covered,
        codes=result.codes,
        modifiers=result.modifiers,
        place_of_service=result.place_of_service,
        problems=result.problems,
        authorization_id=result.authorization_id,
        authorization_units_remaining=result.units_remaining,
        revenue_code=result.revenue_code,
        data_version=data_version,
    )


def status_changes_pb(d: Document) -> list[pb.StatusChange]:
    return [
        pb.StatusChange(
            status=c["status"],
            effective_at=to_timestamp(c["effective_at"]),
            recorded_at=to_timestamp(c["recorded_at"]),
            recorded_by=c["recorded_by"],
        )
        for c in d.get("status_changes") or []
    ]


def license_pb(d: Document) -> pb.License:
    lic = license_from_doc(d)
    return pb.License(
        license_id=lic.license_id,
        clinician_id=d["clinician_id"],
        state=lic.state,
        license_type=lic.license_type,
        license_number=d["license_number"],
        valid_from=to_timestamp(lic.valid_from),
        valid_until=to_timestamp(lic.valid_until),
        profession=lic.profession,
        status=status_at(lic, datetime.now(UTC)),
        multistate=lic.multistate,
        issued_via=lic.issued_via,
        verified_at=to_timestamp(lic.verified_at),
        status_changes=status_changes_pb(d),
    )


def credential_pb(d: Document) -> pb.CompactCredential:
    c = credential_from_doc(d)
    return pb.CompactCredential(
        credential_id=c.credential_id,
        clinician_id=d["clinician_id"],
        compact=c.compact,
        kind=c.kind,
        home_state=c.home_state,
        privilege_state=c.privilege_state,
        credential_number=d["credential_number"],
        valid_from=to_timestamp(c.valid_from),
        valid_until=to_timestamp(c.valid_until),
        status=status_at(c, datetime.now(UTC)),
        verified_at=to_timestamp(c.verified_at),
        profession=c.profession,
        status_changes=status_changes_pb(d),
    )


def consent_pb(d: Document) -> pb.Consent:
    return pb.Consent(
        consent_id=d["_id"],
        client_id=d["client_id"],
        consent_type=d["consent_type"],
        form_version=d["form_version"],
        signed_at=to_timestamp(d["signed_at"]),
        valid_from=to_timestamp(d["valid_from"]),
        valid_until=to_timestamp(d["valid_until"]),
        revoked_at=to_timestamp(d.get("revoked_at")),
        contact_id=d.get("contact_id", ""),
    )


def authorization_pb(d: Document) -> pb.Authorization:
    return pb.Authorization(
        authorization_id=d["_id"],
        client_id=d["client_id"],
        payer_plan_id=d["payer_plan_id"],
        auth_number=d["auth_number"],
        codes=d["codes"],
        start_date=d["start_date"],
        end_date=d["end_date"],
        units=d["units"],
        units_used=d.get("units_used", 0),
        concurrent_review_due=d.get("concurrent_review_due", ""),
        billed_dates=d.get("billed_dates") or [],
    )


def policy_pb(p: PayerPolicy) -> pb.PayerPolicy:
    return pb.PayerPolicy(
        plan_id=p.plan_id,
        payer_name=p.payer_name,
        line_of_business=p.line_of_business,
        billing_mode=p.billing_mode,
        per_diem_codes=p.per_diem_codes,
        covered_codes=sorted(p.covered_codes),
        video_modifier=p.video_modifier,
        audio_only=pb.AudioOnlyRule(covered=p.audio_only_covered, modifier=p.audio_only_modifier),
        min_hours_per_day=p.min_hours_per_day,
        min_hours_per_week=p.min_hours_per_week,
        prior_auth_required=p.prior_auth_required,
        auth_warn_units=p.auth_warn_units,
        concurrent_review_warn_days=p.concurrent_review_warn_days,
        revenue_code=p.revenue_code,
        condition_codes=list(p.condition_codes),
        version=p.version,
        min_days_per_week=p.min_days_per_week,
    )


class ComplianceApi(compliance_pb2_grpc.ComplianceServiceServicer):
    def __init__(self, store: ComplianceStore, ref: Reference, audit: BatchedAudit) -> None:
        self._store = store
        self._ref = ref
        self._batched_audit = audit
        self._board_actions = BoardActions(store)

    async def _audit(self, action: str, resource_type: str, resource_id: str) -> None:
        await record_phi_access(self._store.db, current_principal(), action, resource_type, resource_id)

    async def _client_records(self, collection: str, client_id: str, action: str) -> list[Document]:
        """A client's records of `collection`; the read is audited as PHI access (`action`)."""
        v = FieldViolations()
        check_id(v, client_id, "client_id")
        v.raise_if_any()
        docs, _ = await asyncio.gather(
            self._store.owned(collection, client_id), self._audit(action, "client", client_id)
        )
        return docs

    async def _insert_unique(self, collection: str, doc: Document, reason: str, message: str) -> None:
        """Insert a new record; ALREADY_EXISTS (`reason`) when its unique number is recorded."""
        try:
            await self._store.insert(collection, doc)
        except DuplicateKeyError as exc:
            raise AlreadyExists(reason, message) from exc

    # --- decisions ---------------------------------------------------------------------------------

    async def _licensure(
        self,
        clinician_id: str,
        client_state: str,
        at: datetime,
        until: datetime | None,
        clinician_state: str,
        location_verified: bool,
        stage: str,
    ) -> LicensureResult:
        licenses, credentials = await self._store.credentials_snapshot(clinician_id)
        query = LicensureQuery(
            client_state=client_state,
            at=at,
            now=datetime.now(UTC),
            clinician_state=clinician_state,
            client_location_verified=location_verified,
            require_verified_location=stage == START,
            until=until,
        )
        return decide_licensure(self._ref, licenses, credentials, query)

    async def EvaluateSession(
        self, request: pb.EvaluateSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.SessionEvaluation:
        ref = self._ref
        starts_at, ends_at = request_time(request, "starts_at"), request_time(request, "ends_at")
        v = FieldViolations()
        check_id(v, request.session_id, "session_id", required=False)
        check_id(v, request.clinician_id, "clinician_id")
        check_id(v, request.client_id, "client_id")
        if not request.HasField("client_location") or not request.client_location.state:
            v.add("client_location.state", "required: where the client physically is at the time of service")
        else:
            check_state(v, ref, request.client_location.state, "client_location.state")
        check_state(v, ref, request.clinician_state, "clinician_state", required=False)
        if starts_at is None:
            v.add("starts_at", "required: the time of service")
        if ends_at is not None and starts_at is not None and ends_at <= starts_at:
            v.add("ends_at", "must be after starts_at")
        stage = STAGES.get(request.stage)
        v.require(stage is not None, "stage", "required: BOOKING or START")
        check_id(v, request.payer_plan_id, "payer_plan_id", required=False)
        if request.service_code:
            v.require(request.service_code in ref.codes, "service_code", f"unknown code: one of {sorted(ref.codes)}")
        if request.level_of_care:
            v.require(
                request.level_of_care in ref.levels_of_care, "level_of_care", f"one of {sorted(ref.levels_of_care)}"
            )
        check_enum(v, common_pb2.Modality, request.modality, "modality")
        check_enum(v, scheduling_pb2.SessionKind, request.kind, "kind")
        if request.privacy_attestation:
            v.require(
                request.privacy_attestation in ref.privacy_attestations,
                "privacy_attestation",
                f"one of {', '.join(sorted(ref.privacy_attestations))}",
            )
        v.raise_if_any()
        assert starts_at is not None and stage is not None

        client_state = request.client_location.state
        self._batched_audit.record(current_principal(), "EvaluateSession", "client", request.client_id)
        try:
            # Cached snapshots (see cache.py): sequential awaits, no task per part on the hot path.
            licensure = await self._licensure(
                request.clinician_id,
                client_state,
                starts_at,
                ends_at,
                request.clinician_state,
                request.client_location.verified,
                stage,
            )
            consents, authorizations = await self._store.client_snapshot(request.client_id)
            policy = await self._policy(request.payer_plan_id)
        except PyMongoError as exc:  # fail closed: no answer rather than an answer without the data
            raise Unavailable("STORE_UNAVAILABLE", "compliance data cannot be read now; retry") from exc
        coverage = self._coverage(
            request.payer_plan_id,
            policy,
            authorizations,
            service_code=request.service_code,
            level_of_care=request.level_of_care or "IOP_PSYCH",
            kind=request.kind,
            modality=MODALITIES[request.modality],
            pos=place_of_service(request.privacy_attestation),
            day=local_date(starts_at, ref.zone(client_state)),
        )
        evaluation = combine(
            ref,
            stage,
            licensure,
            coverage,
            consent_problems(ref, consents, starts_at, ends_at),
            privacy_problems(stage, request.privacy_attestation),
        )
        return pb.SessionEvaluation(
            decision=DECISION_PB[evaluation.decision],
            licensure=licensure_pb(licensure),
            coverage=coverage_pb(coverage, ref.version),
            consent_problems=evaluation.consent_problems,
            privacy_problems=evaluation.privacy_problems,
            reasons=evaluation.reasons,
            data_version=evaluation.data_version,
        )

    async def _policy(self, plan_id: str) -> PayerPolicy | None:
        return await self._store.policy(plan_id) if plan_id else None

    def _coverage(
        self,
        plan_id: str,
        policy: PayerPolicy | None,
        authorizations: Sequence[Authorization],
        *,
        service_code: str,
        level_of_care: str,
        kind: int,
        modality: str,
        pos: str,
        day: date,
    ) -> CoverageResult:
        if not plan_id:
            return CoverageResult(False, [], [], pos, ["NO_PAYER_PLAN"])
        if not service_code and policy is not None:
            if policy.billing_mode == "per_diem" and level_of_care in policy.per_diem_codes:
                service_code = policy.per_diem_codes[level_of_care]
            else:
                kind_name = scheduling_pb2.SessionKind.Name(kind) if kind else "SESSION_KIND_GROUP"
                service_code = self._ref.session_kind_codes.get(kind_name, "90853")
        return evaluate_coverage(
            self._ref,
            policy,
            authorizations,
            service_code=service_code,
            level_of_care=level_of_care,
            modality=modality,
            place_of_service=pos,
            day=day,
        )

    async def CheckLicensure(
        self, request: pb.CheckLicensureRequest, context: grpc.aio.ServicerContext
    ) -> pb.LicensureDecision:
        at, ends_at = request_time(request, "at"), request_time(request, "ends_at")
        v = FieldViolations()
        check_id(v, request.clinician_id, "clinician_id")
        check_state(v, self._ref, request.client_state, "client_state")
        check_state(v, self._ref, request.clinician_state, "clinician_state", required=False)
        v.require(at is not None, "at", "required: the time of service")
        if at is not None and ends_at is not None and ends_at <= at:
            v.add("ends_at", "must be after at")
        v.raise_if_any()
        assert at is not None
        try:
            result = await self._licensure(
                request.clinician_id,
                request.client_state,
                at,
                ends_at,
                request.clinician_state,
                request.client_location_verified,
                BOOKING,
            )
        except PyMongoError as exc:
            raise Unavailable("STORE_UNAVAILABLE", "licensure data cannot be read now; retry") from exc
        return licensure_pb(result)

    async def CheckCoverage(
        self, request: pb.CheckCoverageRequest, context: grpc.aio.ServicerContext
    ) -> pb.CoverageDecision:
        ref = self._ref
        starts_at, ends_at = request_time(request, "starts_at"), request_time(request, "ends_at")
        v = FieldViolations()
        check_id(v, request.client_id, "client_id")
        check_id(v, request.payer_plan_id, "payer_plan_id")
        v.require(request.service_code in ref.codes, "service_code", f"unknown code: one of {sorted(ref.codes)}")
        check_range(v, starts_at, ends_at, "starts_at", "ends_at")
        check_enum(v, common_pb2.Modality, request.modality, "modality")
        if request.place_of_service:
            v.require(
                request.place_of_service in ref.places_of_service,
                "place_of_service",
                f"one of {sorted(ref.places_of_service)}",
            )
        v.raise_if_any()
        assert starts_at is not None
        self._batched_audit.record(current_principal(), "CheckCoverage", "client", request.client_id)
        (_, authorizations), policy = await asyncio.gather(
            self._store.client_snapshot(request.client_id),
            self._store.policy(request.payer_plan_id),
        )
        if policy is None:
            raise NotFound("payer_policy", request.payer_plan_id)
        result = self._coverage(
            request.payer_plan_id,
            policy,
            authorizations,
            service_code=request.service_code,
            level_of_care="",
            kind=0,
            modality=MODALITIES[request.modality],
            pos=request.place_of_service or "10",
            day=local_date(starts_at, ref.default_timezone),
        )
        return coverage_pb(result, ref.version)

    # --- credentials -------------------------------------------------------------------------------

    async def RecordLicense(self, request: pb.RecordLicenseRequest, context: grpc.aio.ServicerContext) -> pb.License:
        ref = self._ref
        v = FieldViolations()
        valid_from, valid_until = request_time(request, "valid_from"), request_time(request, "valid_until")
        verified_at, now = request_time(request, "verified_at"), datetime.now(UTC)
        if request.issued_on or request.expires_on:
            issued = parse_day(v, request.issued_on, "issued_on")
            expires = parse_day(v, request.expires_on, "expires_on")
            if issued and expires and request.state in ref.states:
                zone = ref.zone(request.state)
                valid_from = local_day_bounds(issued, zone)[0]
                valid_until = local_day_bounds(expires, zone)[1]
            v.raise_if_any()
        validate_license(
            ref,
            clinician_id=request.clinician_id,
            state=request.state,
            license_type=request.license_type,
            number=request.license_number,
            profession=request.profession,
            status=request.status,
            issued_via=request.issued_via,
            multistate=request.multistate,
            valid_from=valid_from,
            valid_until=valid_until,
            verified_at=verified_at,
            now=now,
        )
        assert valid_from is not None and valid_until is not None
        doc = expiring_record(
            "clinician_id",
            request.clinician_id,
            valid_until,
            now,
            state=request.state,
            license_type=request.license_type,
            profession=request.profession or LICENSE_PROFESSIONS[request.license_type],
            license_number=request.license_number,
            status=request.status or "active",
            multistate=request.multistate,
            issued_via=request.issued_via,
            valid_from=valid_from,
            valid_until=valid_until,
            verified_at=verified_at or now,
        )
        await self._insert_unique(
            LICENSES, doc, "LICENSE_EXISTS", "this license number is already recorded for that state"
        )
        return license_pb(doc)

    async def RecordCompactCredential(
        self, request: pb.RecordCompactCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompactCredential:
        valid_from, valid_until = request_time(request, "valid_from"), request_time(request, "valid_until")
        verified_at, now = request_time(request, "verified_at"), datetime.now(UTC)
        validate_compact_credential(
            self._ref,
            clinician_id=request.clinician_id,
            compact=request.compact,
            kind=request.kind,
            home_state=request.home_state,
            privilege_state=request.privilege_state,
            number=request.credential_number,
            profession=request.profession,
            status=request.status,
            valid_from=valid_from,
            valid_until=valid_until,
            verified_at=verified_at,
            now=now,
        )
        doc = expiring_record(
            "clinician_id",
            request.clinician_id,
            valid_until,
            now,
            compact=request.compact,
            kind=request.kind,
            home_state=request.home_state,
            privilege_state=request.privilege_state,
            credential_number=request.credential_number,
            profession=request.profession,
            status=request.status or "active",
            valid_from=valid_from,
            valid_until=valid_until,
            verified_at=verified_at or now,
        )
        await self._insert_unique(
            COMPACT_CREDENTIALS, doc, "CREDENTIAL_EXISTS", "this compact credential is already recorded"
        )
        return credential_pb(doc)

    async def UpdateLicenseStatus(
        self, request: pb.UpdateLicenseStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.License:
        doc = await self._change_status(LICENSES, request.license_id, "license_id", request)
        return license_pb(doc)

    async def UpdateCompactCredentialStatus(
        self, request: pb.UpdateCompactCredentialStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompactCredential:
        doc = await self._change_status(COMPACT_CREDENTIALS, request.credential_id, "credential_id", request)
        return credential_pb(doc)

    async def _change_status(
        self,
        collection: str,
        record_id: str,
        id_field: str,
        request: pb.UpdateLicenseStatusRequest | pb.UpdateCompactCredentialStatusRequest,
    ) -> Document:
        """A board action on a license or compact credential, audited in the action (who, when),
        published (CredentialStatusChanged) and flagging the booked and running sessions it affects."""
        effective_at = request_time(request, "effective_at")
        validate_status_change(record_id=record_id, id_field=id_field, status=request.status, effective_at=effective_at)
        assert effective_at is not None
        now = datetime.now(UTC)
        change = {
            "status": request.status,
            "effective_at": effective_at,
            "recorded_at": now,
            "recorded_by": current_principal().subject,
        }
        doc = await self._board_actions.record(collection, record_id, change, now)
        if doc is None:
            raise NotFound(EXPIRING[collection], record_id)
        return doc

    async def ListClinicianCredentials(
        self, request: pb.ListClinicianCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClinicianCredentials:
        v = FieldViolations()
        check_id(v, request.clinician_id, "clinician_id")
        v.raise_if_any()
        licenses, credentials = await self._store.clinician_credentials(request.clinician_id)
        return pb.ClinicianCredentials(
            licenses=[license_pb(d) for d in licenses],
            compact_credentials=[credential_pb(d) for d in credentials],
        )

    # --- payer policies ------------------------------------------------------------------------------

    async def UpsertPayerPolicy(self, request: pb.PayerPolicy, context: grpc.aio.ServicerContext) -> pb.PayerPolicy:
        policy = PayerPolicy(
            plan_id=request.plan_id,
            payer_name=request.payer_name,
            line_of_business=request.line_of_business,
            billing_mode=request.billing_mode,
            per_diem_codes=dict(request.per_diem_codes),
            covered_codes=frozenset(request.covered_codes),
            video_modifier=request.video_modifier,
            audio_only_covered=request.audio_only.covered,
            audio_only_modifier=request.audio_only.modifier,
            min_hours_per_day=request.min_hours_per_day,
            min_hours_per_week=request.min_hours_per_week,
            prior_auth_required=request.prior_auth_required,
            auth_warn_units=request.auth_warn_units,
            concurrent_review_warn_days=request.concurrent_review_warn_days,
            revenue_code=request.revenue_code,
            condition_codes=tuple(request.condition_codes),
            min_days_per_week=request.min_days_per_week,
        )
        validate_policy(self._ref, policy)
        return policy_pb(await self._store.upsert_policy(policy))

    async def GetPayerPolicy(
        self, request: pb.GetPayerPolicyRequest, context: grpc.aio.ServicerContext
    ) -> pb.PayerPolicy:
        v = FieldViolations()
        check_id(v, request.plan_id, "plan_id")
        v.raise_if_any()
        policy = await self._store.policy(request.plan_id)
        if policy is None:
            raise NotFound("payer_policy", request.plan_id)
        return policy_pb(policy)

    # --- authorizations ------------------------------------------------------------------------------

    async def RecordAuthorization(
        self, request: pb.RecordAuthorizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Authorization:
        ref = self._ref
        v = FieldViolations()
        check_id(v, request.client_id, "client_id")
        check_id(v, request.payer_plan_id, "payer_plan_id")
        v.require(bool(AUTH_NUMBER.match(request.auth_number)), "auth_number", "4-40 characters: letters, digits, '-'")
        v.require(bool(request.codes), "codes", "required: the billing codes authorized")
        for code in request.codes:
            v.require(code in ref.codes, "codes", f"unknown billing code {code}")
        v.require(len(set(request.codes)) == len(request.codes), "codes", "duplicate codes")
        start = parse_day(v, request.start_date, "start_date")
        end = parse_day(v, request.end_date, "end_date")
        if start and end and end < start:
            v.add("end_date", "must not be before start_date")
        v.require(0 < request.units <= 366, "units", "must be 1-366")
        review = parse_day(v, request.concurrent_review_due, "concurrent_review_due", required=False)
        if review and start and end and not (start <= review <= end):
            v.add("concurrent_review_due", "must fall within the authorization's dates")
        v.raise_if_any()
        assert start is not None and end is not None
        policy = await self._store.policy(request.payer_plan_id)
        if policy is None:
            raise NotFound("payer_policy", request.payer_plan_id)
        existing = [authorization_from_doc(d) for d in await self._store.owned(AUTHORIZATIONS, request.client_id)]
        codes = set(request.codes)
        for other in existing:
            same = other.payer_plan_id == request.payer_plan_id and other.codes & codes
            if same and other.start_date <= end and start <= other.end_date:
                raise InvalidArgument(
                    [("start_date", f"overlaps authorization {other.authorization_id} for the same plan and codes")]
                )
        zone = ref.default_timezone
        doc = expiring_record(
            "client_id",
            request.client_id,
            local_day_bounds(end, zone)[1],
            datetime.now(UTC),
            payer_plan_id=request.payer_plan_id,
            auth_number=request.auth_number,
            codes=list(request.codes),
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            units=request.units,
            units_used=0,
            billed_dates=[],
            concurrent_review_due=review.isoformat() if review else "",
        )
        await self._insert_unique(
            AUTHORIZATIONS, doc, "AUTHORIZATION_EXISTS", "this authorization number is already recorded"
        )
        return authorization_pb(doc)

    async def ListAuthorizations(
        self, request: pb.ListAuthorizationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuthorizationsResponse:
        docs = await self._client_records(AUTHORIZATIONS, request.client_id, "ListAuthorizations")
        return pb.ListAuthorizationsResponse(authorizations=[authorization_pb(d) for d in docs])

    # --- consents and privacy ------------------------------------------------------------------------

    async def RecordConsent(self, request: pb.RecordConsentRequest, context: grpc.aio.ServicerContext) -> pb.Consent:
        ref = self._ref
        signed_at = request_time(request, "signed_at")
        v = FieldViolations()
        check_id(v, request.client_id, "client_id")
        v.require(request.consent_type in CONSENT_TYPES, "consent_type", f"one of {', '.join(sorted(CONSENT_TYPES))}")
        form = ref.consent_forms.get(request.consent_type)
        if not FORM_VERSION.match(request.form_version):
            v.add("form_version", "required: the consent form's version, e.g. telehealth-2025-01")
        elif form is not None and request.form_version not in form.accepted:
            v.add("form_version", f"not an accepted version of {request.consent_type}: {sorted(form.accepted)}")
        v.require(signed_at is not None, "signed_at", "required")
        now = datetime.now(UTC)
        check_not_future(v, signed_at, now, "signed_at")
        valid_from = request_time(request, "valid_from") or signed_at
        valid_until = request_time(request, "valid_until")
        if valid_until is None and valid_from is not None and form is not None:
            valid_until = valid_from + timedelta(days=form.validity_days)
        if valid_from is not None and valid_until is not None and valid_until <= valid_from:
            v.add("valid_until", "must be after valid_from")
        if request.consent_type == "ROI_EMERGENCY_CONTACT":
            check_id(v, request.contact_id, "contact_id")
        elif request.contact_id:
            v.add("contact_id", "only a release of information names a contact")
        v.raise_if_any()
        assert signed_at is not None and valid_from is not None and valid_until is not None
        doc = expiring_record(
            "client_id",
            request.client_id,
            valid_until,
            now,
            consent_type=request.consent_type,
            form_version=request.form_version,
            signed_at=signed_at,
            valid_from=valid_from,
            valid_until=valid_until,
            revoked_at=None,
            contact_id=request.contact_id,
        )
        await self._store.insert(CONSENTS, doc, events.consent_events(doc, "active", now))
        return consent_pb(doc)

    async def RevokeConsent(self, request: pb.RevokeConsentRequest, context: grpc.aio.ServicerContext) -> pb.Consent:
        v = FieldViolations()
        check_id(v, request.consent_id, "consent_id")
        v.raise_if_any()
        now = datetime.now(UTC)
        doc = await self._store.revoke_consent(
            request.consent_id, now, lambda current: events.consent_events(current, "revoked", now)
        )
        if doc is None:
            if await self._store.get(CONSENTS, request.consent_id) is None:
                raise NotFound("consent", request.consent_id)
            raise FailedPrecondition("CONSENT_ALREADY_REVOKED", "this consent was revoked already")
        return consent_pb(doc)

    async def ListConsents(
        self, request: pb.ListConsentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConsentsResponse:
        docs = await self._client_records(CONSENTS, request.client_id, "ListConsents")
        return pb.ListConsentsResponse(consents=[consent_pb(d) for d in docs])

    async def RecordPrivacyAttestation(
        self, request: pb.RecordPrivacyAttestationRequest, context: grpc.aio.ServicerContext
    ) -> pb.PrivacyAttestation:
        principal = current_principal()
        v = FieldViolations()
        check_id(v, request.session_id, "session_id")
        check_id(v, request.client_id, "client_id")
        check_id(v, request.clinician_id, "clinician_id", required=False)
        v.require(
            request.attestation in self._ref.privacy_attestations,
            "attestation",
            f"one of {', '.join(sorted(self._ref.privacy_attestations))}",
        )
        v.raise_if_any()
        if principal.roles == frozenset({"client"}) and principal.subject != request.client_id:
            raise PermissionDenied("NOT_YOUR_ATTESTATION", "a client attests only their own privacy")
        at = request_time(request, "at") or datetime.now(UTC)
        marker = str(uuid.uuid4())
        await self._store.record_attestation(
            request.session_id,
            request.client_id,
            marker,
            {"attestation": request.attestation, "at": at, "by": principal.subject, "marker": marker},
            events.privacy_events(request.session_id, request.client_id, request.clinician_id, request.attestation, at),
        )
        return pb.PrivacyAttestation(
            session_id=request.session_id,
            client_id=request.client_id,
            attestation=request.attestation,
            at=to_timestamp(at),
        )

    # --- expiry --------------------------------------------------------------------------------------

    async def ListExpiring(
        self, request: pb.ListExpiringRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExpiringResponse:
        v = FieldViolations()
        v.require(1 <= request.horizon_days <= 365, "horizon_days", "must be 1-365")
        check_id(v, request.owner_id, "owner_id", required=False)
        v.raise_if_any()
        now = datetime.now(UTC)
        until = now + timedelta(days=request.horizon_days)
        items: list[pb.ExpiringItem] = []
        for collection, item_type in EXPIRING.items():
            # as the expiry monitor: a license or compact credential suspended or revoked when it
            # expires is not listed (until 2026-12-07 it was, naming sessions it could never cover)
            expiring = await self._store.expiring(collection, now, until, request.owner_id)
            for d in await in_force_at_expiry(self._store, collection, expiring):
                owner = owner_sessions(collection, d["owner_id"])
                affected = await self._store.booked_sessions_after(owner, d["expires_at"])
                items.append(
                    pb.ExpiringItem(
                        item_id=d["_id"],
                        item_type=item_type,
                        owner_id=d["owner_id"],
                        expires_at=to_timestamp(d["expires_at"]),
                        affected_session_ids=[s["_id"] for s in affected],
                    )
                )
        await self._audit("ListExpiring", "expiring_items", request.owner_id or "*")
        items.sort(key=lambda i: (i.expires_at.seconds, i.item_id))
        return pb.ListExpiringResponse(items=items)
