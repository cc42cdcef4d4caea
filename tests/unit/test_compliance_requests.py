"""Request validation of the compliance API: bad input is INVALID_ARGUMENT naming its fields, found
before the store is touched (the API is built without one: a test that reached it would fail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iop.compliance.v1 import compliance_pb2 as pb
from iop.events.v1 import common_pb2
from services.compliance.api import ComplianceApi
from services.compliance.reference import load_reference
from services.compliance.validation import validate_compact_credential, validate_license
from services.plumbing.errors import InvalidArgument
from services.plumbing.protos import to_timestamp

REF = load_reference()
NOW = datetime.now(UTC)


def api() -> ComplianceApi:
    return ComplianceApi(None, REF, None)  # type: ignore[arg-type]


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {f for f, _ in error.value.violations}


def evaluate_request(**kw: Any) -> pb.EvaluateSessionRequest:
    fields: dict[str, Any] = {
        "clinician_id": "clin-1",
        "client_id": "client-1",
        "client_location": common_pb2.ClientLocation(state="CA", verified=True),
        "starts_at": to_timestamp(NOW + timedelta(hours=1)),
        "ends_at": to_timestamp(NOW + timedelta(hours=4)),
        "stage": pb.EVALUATION_STAGE_BOOKING,
    }
    fields.update(kw)
    return pb.EvaluateSessionRequest(**fields)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": 99}, "kind"),
        ({"kind": -1}, "kind"),
        ({"modality": 99}, "modality"),
        ({"stage": 99}, "stage"),
    ],
)
async def test_evaluate_session_refuses_an_enum_value_out_of_range(change: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        await api().EvaluateSession(evaluate_request(**change), None)  # type: ignore[arg-type]
    assert fields_of(error) == {field}


async def test_check_coverage_refuses_an_enum_value_out_of_range() -> None:
    request = pb.CheckCoverageRequest(
        client_id="client-1",
        payer_plan_id="demo-commercial-ppo",
        service_code="S9480",
        modality=42,  # type: ignore[arg-type]
        starts_at=to_timestamp(NOW),
        ends_at=to_timestamp(NOW + timedelta(hours=3)),
    )
    with pytest.raises(InvalidArgument) as error:
        await api().CheckCoverage(request, None)  # type: ignore[arg-type]
    assert fields_of(error) == {"modality"}


def license_request(**kw: Any) -> pb.RecordLicenseRequest:
    fields: dict[str, Any] = {
        "clinician_id": "clin-1",
        "state": "CA",
        "license_type": "LPC",
        "license_number": "LPC-1234",
        "valid_from": to_timestamp(NOW - timedelta(days=100)),
        "valid_until": to_timestamp(NOW + timedelta(days=100)),
    }
    fields.update(kw)
    return pb.RecordLicenseRequest(**fields)


def credential_request(**kw: Any) -> pb.RecordCompactCredentialRequest:
    fields: dict[str, Any] = {
        "clinician_id": "clin-1",
        "compact": "COUNSELING",
        "kind": "PRIVILEGE",
        "home_state": "MN",
        "privilege_state": "AZ",
        "credential_number": "CC-1234",
        "valid_from": to_timestamp(NOW - timedelta(days=100)),
        "valid_until": to_timestamp(NOW + timedelta(days=100)),
    }
    fields.update(kw)
    return pb.RecordCompactCredentialRequest(**fields)


async def test_a_verification_in_the_future_is_refused() -> None:
    """A future verified_at would never go stale: it is refused beyond a few minutes of clock skew."""
    future = to_timestamp(NOW + timedelta(hours=1))
    with pytest.raises(InvalidArgument) as error:
        await api().RecordLicense(license_request(verified_at=future), None)  # type: ignore[arg-type]
    assert fields_of(error) == {"verified_at"}
    with pytest.raises(InvalidArgument) as error:
        await api().RecordCompactCredential(credential_request(verified_at=future), None)  # type: ignore[arg-type]
    assert fields_of(error) == {"verified_at"}


def test_a_verification_within_the_clock_skew_is_accepted() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    common: dict[str, Any] = {
        "clinician_id": "clin-1",
        "status": "",
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=1),
        "now": now,
    }
    license_fields: dict[str, Any] = {
        **common,
        "state": "CA",
        "license_type": "LPC",
        "number": "LPC-1",
        "profession": "",
        "issued_via": "",
        "multistate": False,
    }
    validate_license(REF, **license_fields, verified_at=now + timedelta(minutes=4))
    validate_license(REF, **license_fields, verified_at=None)
    with pytest.raises(InvalidArgument):
        validate_license(REF, **license_fields, verified_at=now + timedelta(minutes=6))
    credential_fields: dict[str, Any] = {
        **common,
        "compact": "PSYPACT",
        "kind": "APIT",
        "home_state": "AZ",
        "privilege_state": "",
        "number": "APIT-1",
        "profession": "",
    }
    validate_compact_credential(REF, **credential_fields, verified_at=now + timedelta(minutes=4))
    with pytest.raises(InvalidArgument):
        validate_compact_credential(REF, **credential_fields, verified_at=now + timedelta(minutes=6))


def registration_request(**kw: Any) -> pb.RecordCompactCredentialRequest:
    fields: dict[str, Any] = {"compact": "TELEHEALTH_REGISTRATION", "kind": "REGISTRATION", "home_state": "GA"}
    fields.update(kw)
    return credential_request(privilege_state="FL", **fields)


async def test_a_registration_names_its_profession_and_a_compact_credential_does_not() -> None:
    with pytest.raises(InvalidArgument) as error:
        await api().RecordCompactCredential(registration_request(), None)  # type: ignore[arg-type]
    assert fields_of(error) == {"profession"}
    with pytest.raises(InvalidArgument) as error:
        await api().RecordCompactCredential(registration_request(profession="WIZARD"), None)  # type: ignore[arg-type]
    assert fields_of(error) == {"profession"}
    with pytest.raises(InvalidArgument) as error:
        await api().RecordCompactCredential(credential_request(profession="COUNSELOR"), None)  # type: ignore[arg-type]
    assert fields_of(error) == {"profession"}


async def test_a_status_update_names_every_bad_field() -> None:
    bad_license = pb.UpdateLicenseStatusRequest(license_id="", status="on holiday")
    with pytest.raises(InvalidArgument) as error:
        await api().UpdateLicenseStatus(bad_license, None)  # type: ignore[arg-type]
    assert fields_of(error) == {"license_id", "status", "effective_at"}
    bad_credential = pb.UpdateCompactCredentialStatusRequest(credential_id="no spaces", status="")
    with pytest.raises(InvalidArgument) as error:
        await api().UpdateCompactCredentialStatus(bad_credential, None)  # type: ignore[arg-type]
    assert fields_of(error) == {"credential_id", "status", "effective_at"}
