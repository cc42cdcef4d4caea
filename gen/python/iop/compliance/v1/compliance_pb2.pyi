import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iop.events.v1 import common_pb2 as _common_pb2
from iop.events.v1 import scheduling_pb2 as _scheduling_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluationStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_STAGE_UNSPECIFIED: _ClassVar[EvaluationStage]
    EVALUATION_STAGE_BOOKING: _ClassVar[EvaluationStage]
    EVALUATION_STAGE_START: _ClassVar[EvaluationStage]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOW: _ClassVar[Decision]
    DECISION_DENY: _ClassVar[Decision]
    DECISION_NEEDS_REVIEW: _ClassVar[Decision]
EVALUATION_STAGE_UNSPECIFIED: EvaluationStage
EVALUATION_STAGE_BOOKING: EvaluationStage
EVALUATION_STAGE_START: EvaluationStage
DECISION_UNSPECIFIED: Decision
DECISION_ALLOW: Decision
DECISION_DENY: Decision
DECISION_NEEDS_REVIEW: Decision

class EvaluateSessionRequest(_message.Message):
    __slots__ = ("session_id", "clinician_id", "client_id", "client_location", "clinician_state", "starts_at", "ends_at", "payer_plan_id", "service_code", "modality", "stage", "privacy_attestation", "level_of_care", "kind")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_LOCATION_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_STATE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    client_id: str
    client_location: _common_pb2.ClientLocation
    clinician_state: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    payer_plan_id: str
    service_code: str
    modality: _common_pb2.Modality
    stage: EvaluationStage
    privacy_attestation: str
    level_of_care: str
    kind: _scheduling_pb2.SessionKind
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., clinician_state: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payer_plan_id: _Optional[str] = ..., service_code: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., stage: _Optional[_Union[EvaluationStage, str]] = ..., privacy_attestation: _Optional[str] = ..., level_of_care: _Optional[str] = ..., kind: _Optional[_Union[_scheduling_pb2.SessionKind, str]] = ...) -> None: ...

class SessionEvaluation(_message.Message):
    __slots__ = ("decision", "licensure", "coverage", "consent_problems", "privacy_problems", "reasons", "data_version")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    LICENSURE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    licensure: LicensureDecision
    coverage: CoverageDecision
    consent_problems: _containers.RepeatedScalarFieldContainer[str]
    privacy_problems: _containers.RepeatedScalarFieldContainer[str]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    data_version: str
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., licensure: _Optional[_Union[LicensureDecision, _Mapping]] = ..., coverage: _Optional[_Union[CoverageDecision, _Mapping]] = ..., consent_problems: _Optional[_Iterable[str]] = ..., privacy_problems: _Optional[_Iterable[str]] = ..., reasons: _Optional[_Iterable[str]] = ..., data_version: _Optional[str] = ...) -> None: ...

class CoverageDecision(_message.Message):
    __slots__ = ("covered", "codes", "modifiers", "place_of_service", "problems", "authorization_id", "authorization_units_remaining", "revenue_code", "data_version")
    COVERED_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    MODIFIERS_FIELD_NUMBER: _ClassVar[int]
    PLACE_OF_SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_UNITS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    REVENUE_CODE_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    covered: bool
    codes: _containers.RepeatedScalarFieldContainer[str]
    modifiers: _containers.RepeatedScalarFieldContainer[str]
    place_of_service: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    authorization_id: str
    authorization_units_remaining: int
    revenue_code: str
    data_version: str
    def __init__(self, covered: _Optional[bool] = ..., codes: _Optional[_Iterable[str]] = ..., modifiers: _Optional[_Iterable[str]] = ..., place_of_service: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., authorization_id: _Optional[str] = ..., authorization_units_remaining: _Optional[int] = ..., revenue_code: _Optional[str] = ..., data_version: _Optional[str] = ...) -> None: ...

class RecordLicenseRequest(_message.Message):
    __slots__ = ("clinician_id", "state", "license_type", "license_number", "valid_from", "valid_until", "profession", "status", "multistate", "issued_via", "issued_on", "expires_on", "verified_at")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PROFESSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MULTISTATE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_VIA_FIELD_NUMBER: _ClassVar[int]
    ISSUED_ON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_ON_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    state: str
    license_type: str
    license_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    profession: str
    status: str
    multistate: bool
    issued_via: str
    issued_on: str
    expires_on: str
    verified_at: _timestamp_pb2.Timestamp
    def __init__(self, clinician_id: _Optional[str] = ..., state: _Optional[str] = ..., license_type: _Optional[str] = ..., license_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profession: _Optional[str] = ..., status: _Optional[str] = ..., multistate: _Optional[bool] = ..., issued_via: _Optional[str] = ..., issued_on: _Optional[str] = ..., expires_on: _Optional[str] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class License(_message.Message):
    __slots__ = ("license_id", "clinician_id", "state", "license_type", "license_number", "valid_from", "valid_until", "profession", "status", "multistate", "issued_via", "verified_at", "status_changes")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PROFESSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MULTISTATE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_VIA_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGES_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    clinician_id: str
    state: str
    license_type: str
    license_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    profession: str
    status: str
    multistate: bool
    issued_via: str
    verified_at: _timestamp_pb2.Timestamp
    status_changes: _containers.RepeatedCompositeFieldContainer[StatusChange]
    def __init__(self, license_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., state: _Optional[str] = ..., license_type: _Optional[str] = ..., license_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profession: _Optional[str] = ..., status: _Optional[str] = ..., multistate: _Optional[bool] = ..., issued_via: _Optional[str] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_changes: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "effective_at", "recorded_at", "recorded_by")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    status: str
    effective_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    recorded_by: str
    def __init__(self, status: _Optional[str] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class UpdateLicenseStatusRequest(_message.Message):
    __slots__ = ("license_id", "status", "effective_at")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    status: str
    effective_at: _timestamp_pb2.Timestamp
    def __init__(self, license_id: _Optional[str] = ..., status: _Optional[str] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateCompactCredentialStatusRequest(_message.Message):
    __slots__ = ("credential_id", "status", "effective_at")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    status: str
    effective_at: _timestamp_pb2.Timestamp
    def __init__(self, credential_id: _Optional[str] = ..., status: _Optional[str] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckLicensureRequest(_message.Message):
    __slots__ = ("clinician_id", "client_state", "at", "clinician_state", "client_location_verified", "ends_at")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_STATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_LOCATION_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    client_state: str
    at: _timestamp_pb2.Timestamp
    clinician_state: str
    client_location_verified: bool
    ends_at: _timestamp_pb2.Timestamp
    def __init__(self, clinician_id: _Optional[str] = ..., client_state: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_state: _Optional[str] = ..., client_location_verified: _Optional[bool] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordCompactCredentialRequest(_message.Message):
    __slots__ = ("clinician_id", "compact", "kind", "home_state", "privilege_state", "credential_number", "valid_from", "valid_until", "status", "verified_at", "profession")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOME_STATE_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGE_STATE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    PROFESSION_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    compact: str
    kind: str
    home_state: str
    privilege_state: str
    credential_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    status: str
    verified_at: _timestamp_pb2.Timestamp
    profession: str
    def __init__(self, clinician_id: _Optional[str] = ..., compact: _Optional[str] = ..., kind: _Optional[str] = ..., home_state: _Optional[str] = ..., privilege_state: _Optional[str] = ..., credential_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profession: _Optional[str] = ...) -> None: ...

class CompactCredential(_message.Message):
    __slots__ = ("credential_id", "clinician_id", "compact", "kind", "home_state", "privilege_state", "credential_number", "valid_from", "valid_until", "status", "verified_at", "profession", "status_changes")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOME_STATE_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGE_STATE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    PROFESSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGES_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    clinician_id: str
    compact: str
    kind: str
    home_state: str
    privilege_state: str
    credential_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    status: str
    verified_at: _timestamp_pb2.Timestamp
    profession: str
    status_changes: _containers.RepeatedCompositeFieldContainer[StatusChange]
    def __init__(self, credential_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., compact: _Optional[str] = ..., kind: _Optional[str] = ..., home_state: _Optional[str] = ..., privilege_state: _Optional[str] = ..., credential_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profession: _Optional[str] = ..., status_changes: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ...) -> None: ...

class ListClinicianCredentialsRequest(_message.Message):
    __slots__ = ("clinician_id",)
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    def __init__(self, clinician_id: _Optional[str] = ...) -> None: ...

class ClinicianCredentials(_message.Message):
    __slots__ = ("licenses", "compact_credentials")
    LICENSES_FIELD_NUMBER: _ClassVar[int]
    COMPACT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    licenses: _containers.RepeatedCompositeFieldContainer[License]
    compact_credentials: _containers.RepeatedCompositeFieldContainer[CompactCredential]
    def __init__(self, licenses: _Optional[_Iterable[_Union[License, _Mapping]]] = ..., compact_credentials: _Optional[_Iterable[_Union[CompactCredential, _Mapping]]] = ...) -> None: ...

class CheckCoverageRequest(_message.Message):
    __slots__ = ("client_id", "payer_plan_id", "service_code", "modality", "starts_at", "ends_at", "place_of_service")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    PLACE_OF_SERVICE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    payer_plan_id: str
    service_code: str
    modality: _common_pb2.Modality
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    place_of_service: str
    def __init__(self, client_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., service_code: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., place_of_service: _Optional[str] = ...) -> None: ...

class AudioOnlyRule(_message.Message):
    __slots__ = ("covered", "modifier")
    COVERED_FIELD_NUMBER: _ClassVar[int]
    MODIFIER_FIELD_NUMBER: _ClassVar[int]
    covered: bool
    modifier: str
    def __init__(self, covered: _Optional[bool] = ..., modifier: _Optional[str] = ...) -> None: ...

class PayerPolicy(_message.Message):
    __slots__ = ("plan_id", "payer_name", "line_of_business", "billing_mode", "per_diem_codes", "covered_codes", "video_modifier", "audio_only", "min_hours_per_day", "min_hours_per_week", "prior_auth_required", "auth_warn_units", "concurrent_review_warn_days", "revenue_code", "condition_codes", "version", "min_days_per_week")
    class PerDiemCodesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_NAME_FIELD_NUMBER: _ClassVar[int]
    LINE_OF_BUSINESS_FIELD_NUMBER: _ClassVar[int]
    BILLING_MODE_FIELD_NUMBER: _ClassVar[int]
    PER_DIEM_CODES_FIELD_NUMBER: _ClassVar[int]
    COVERED_CODES_FIELD_NUMBER: _ClassVar[int]
    VIDEO_MODIFIER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_ONLY_FIELD_NUMBER: _ClassVar[int]
    MIN_HOURS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MIN_HOURS_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    PRIOR_AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    AUTH_WARN_UNITS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_REVIEW_WARN_DAYS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_CODE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_CODES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_DAYS_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    payer_name: str
    line_of_business: str
    billing_mode: str
    per_diem_codes: _containers.ScalarMap[str, str]
    covered_codes: _containers.RepeatedScalarFieldContainer[str]
    video_modifier: str
    audio_only: AudioOnlyRule
    min_hours_per_day: float
    min_hours_per_week: float
    prior_auth_required: bool
    auth_warn_units: int
    concurrent_review_warn_days: int
    revenue_code: str
    condition_codes: _containers.RepeatedScalarFieldContainer[str]
    version: int
    min_days_per_week: int
    def __init__(self, plan_id: _Optional[str] = ..., payer_name: _Optional[str] = ..., line_of_business: _Optional[str] = ..., billing_mode: _Optional[str] = ..., per_diem_codes: _Optional[_Mapping[str, str]] = ..., covered_codes: _Optional[_Iterable[str]] = ..., video_modifier: _Optional[str] = ..., audio_only: _Optional[_Union[AudioOnlyRule, _Mapping]] = ..., min_hours_per_day: _Optional[float] = ..., min_hours_per_week: _Optional[float] = ..., prior_auth_required: _Optional[bool] = ..., auth_warn_units: _Optional[int] = ..., concurrent_review_warn_days: _Optional[int] = ..., revenue_code: _Optional[str] = ..., condition_codes: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ..., min_days_per_week: _Optional[int] = ...) -> None: ...

class GetPayerPolicyRequest(_message.Message):
    __slots__ = ("plan_id",)
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    def __init__(self, plan_id: _Optional[str] = ...) -> None: ...

class RecordAuthorizationRequest(_message.Message):
    __slots__ = ("client_id", "payer_plan_id", "auth_number", "codes", "start_date", "end_date", "units", "concurrent_review_due")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_REVIEW_DUE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    payer_plan_id: str
    auth_number: str
    codes: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    units: int
    concurrent_review_due: str
    def __init__(self, client_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., auth_number: _Optional[str] = ..., codes: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., units: _Optional[int] = ..., concurrent_review_due: _Optional[str] = ...) -> None: ...

class Authorization(_message.Message):
    __slots__ = ("authorization_id", "client_id", "payer_plan_id", "auth_number", "codes", "start_date", "end_date", "units", "units_used", "concurrent_review_due", "billed_dates")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    UNITS_USED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_REVIEW_DUE_FIELD_NUMBER: _ClassVar[int]
    BILLED_DATES_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    client_id: str
    payer_plan_id: str
    auth_number: str
    codes: _containers.RepeatedScalarFieldContainer[str]
    start_date: str
    end_date: str
    units: int
    units_used: int
    concurrent_review_due: str
    billed_dates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, authorization_id: _Optional[str] = ..., client_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., auth_number: _Optional[str] = ..., codes: _Optional[_Iterable[str]] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., units: _Optional[int] = ..., units_used: _Optional[int] = ..., concurrent_review_due: _Optional[str] = ..., billed_dates: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAuthorizationsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListAuthorizationsResponse(_message.Message):
    __slots__ = ("authorizations",)
    AUTHORIZATIONS_FIELD_NUMBER: _ClassVar[int]
    authorizations: _containers.RepeatedCompositeFieldContainer[Authorization]
    def __init__(self, authorizations: _Optional[_Iterable[_Union[Authorization, _Mapping]]] = ...) -> None: ...

class RecordConsentRequest(_message.Message):
    __slots__ = ("client_id", "consent_type", "form_version", "signed_at", "valid_from", "valid_until", "contact_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    consent_type: str
    form_version: str
    signed_at: _timestamp_pb2.Timestamp
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    contact_id: str
    def __init__(self, client_id: _Optional[str] = ..., consent_type: _Optional[str] = ..., form_version: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contact_id: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("consent_id", "client_id", "consent_type", "form_version", "signed_at", "valid_from", "valid_until", "revoked_at", "contact_id")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    client_id: str
    consent_type: str
    form_version: str
    signed_at: _timestamp_pb2.Timestamp
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    contact_id: str
    def __init__(self, consent_id: _Optional[str] = ..., client_id: _Optional[str] = ..., consent_type: _Optional[str] = ..., form_version: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contact_id: _Optional[str] = ...) -> None: ...

class RevokeConsentRequest(_message.Message):
    __slots__ = ("consent_id",)
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    def __init__(self, consent_id: _Optional[str] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents",)
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ...) -> None: ...

class RecordPrivacyAttestationRequest(_message.Message):
    __slots__ = ("session_id", "client_id", "attestation", "at", "clinician_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    attestation: str
    at: _timestamp_pb2.Timestamp
    clinician_id: str
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., attestation: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_id: _Optional[str] = ...) -> None: ...

class PrivacyAttestation(_message.Message):
    __slots__ = ("session_id", "client_id", "attestation", "at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    attestation: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., attestation: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListExpiringRequest(_message.Message):
    __slots__ = ("horizon_days", "owner_id")
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    horizon_days: int
    owner_id: str
    def __init__(self, horizon_days: _Optional[int] = ..., owner_id: _Optional[str] = ...) -> None: ...

class ExpiringItem(_message.Message):
    __slots__ = ("item_id", "item_type", "owner_id", "expires_at", "affected_session_ids")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_TYPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_type: str
    owner_id: str
    expires_at: _timestamp_pb2.Timestamp
    affected_session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., item_type: _Optional[str] = ..., owner_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., affected_session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListExpiringResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ExpiringItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ExpiringItem, _Mapping]]] = ...) -> None: ...

class LicensureDecision(_message.Message):
    __slots__ = ("decision", "reasons", "basis", "data_version")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    reasons: _containers.RepeatedScalarFieldContainer[str]
    basis: str
    data_version: str
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., basis: _Optional[str] = ..., data_version: _Optional[str] = ...) -> None: ...
