"""gRPC API of the compliance service (iop.compliance.v1.ComplianceService)."""

from __future__ import annotations

import uuid

import grpc
from iop.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.compliance.domain import US_STATES, LicenseRecord, decide_licensure, validate_license
from services.plumbing.errors import AlreadyExists, FieldViolations
from services.plumbing.protos import to_datetime, to_timestamp
from services.plumbing.storage import Document, IndexSpec

SERVICE = "iop.compliance.v1.ComplianceService"
ACCESS = {
    f"/{SERVICE}/RecordLicense": frozenset({"platform", "supervisor"}),
    f"/{SERVICE}/CheckLicensure": frozenset({"platform", "clinician", "supervisor"}),
}
LICENSES = "licenses"
INDEXES = [
    IndexSpec(LICENSES, [("state", 1), ("license_type", 1), ("license_number", 1)], unique=True, name="license_unique"),
    IndexSpec(LICENSES, [("clinician_id", 1), ("state", 1)], name="clinician_state"),
]


class ComplianceApi(compliance_pb2_grpc.ComplianceServiceServicer):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._licenses = db[LICENSES]

    async def RecordLicense(
        self, request: compliance_pb2.RecordLicenseRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.License:
        valid_from, valid_until = to_datetime(request.valid_from), to_datetime(request.valid_until)
        validate_license(
            request.clinician_id, request.state, request.license_type, request.license_number, valid_from, valid_until
        )
        license_id = str(uuid.uuid4())
        doc = {
            "_id": license_id,
            "clinician_id": request.clinician_id,
            "state": request.state,
            "license_type": request.license_type,
            "license_number": request.license_number,
            "valid_from": valid_from,
            "valid_until": valid_until,
        }
        try:
            await self._licenses.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AlreadyExists("LICENSE_EXISTS", "this license number is already recorded for that state") from exc
        return compliance_pb2.License(
            license_id=license_id,
            clinician_id=request.clinician_id,
            state=request.state,
            license_type=request.license_type,
            license_number=request.license_number,
            valid_from=to_timestamp(valid_from),
            valid_until=to_timestamp(valid_until),
        )

    async def CheckLicensure(
        self, request: compliance_pb2.CheckLicensureRequest, context: grpc.aio.ServicerContext
    ) -> compliance_pb2.LicensureDecision:
        at = to_datetime(request.at)
        v = FieldViolations()
        v.require(bool(request.clinician_id), "clinician_id", "required")
        v.require(request.client_state in US_STATES, "client_state", "must be a USPS state or territory code")
        v.require(at is not None, "at", "required: the time of service")
        v.raise_if_any()
        assert at is not None
        docs = await self._licenses.find(
            {"clinician_id": request.clinician_id, "state": request.client_state}
        ).to_list()
        records = [
            LicenseRecord(d["_id"], d["state"], d["license_type"], d["valid_from"], d["valid_until"]) for d in docs
        ]
        decision, reasons, basis = decide_licensure(records, request.client_state, at)
        return compliance_pb2.LicensureDecision(decision=decision, reasons=reasons, basis=basis)  # type: ignore[arg-type]
