import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iop.events.v1 import common_pb2 as _common_pb2
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
    __slots__ = ("session_id", "clinician_id", "client_id", "client_location", "clinician_state", "starts_at", "ends_at", "payer_plan_id", "service_code", "modality", "stage", "privacy_attestation")
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
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., clinician_state: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payer_plan_id: _Optional[str] = ..., service_code: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., stage: _Optional[_Union[EvaluationStage, str]] = ..., privacy_attestation: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("covered", "codes", "modifiers", "place_of_service", "problems", "authorization_id", "authorization_units_remaining")
    COVERED_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    MODIFIERS_FIELD_NUMBER: _ClassVar[int]
    PLACE_OF_SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_UNITS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    covered: bool
    codes: _containers.RepeatedScalarFieldContainer[str]
    modifiers: _containers.RepeatedScalarFieldContainer[str]
    place_of_service: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    authorization_id: str
    authorization_units_remaining: int
    def __init__(self, covered: _Optional[bool] = ..., codes: _Optional[_Iterable[str]] = ..., modifiers: _Optional[_Iterable[str]] = ..., place_of_service: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., authorization_id: _Optional[str] = ..., authorization_units_remaining: _Optional[int] = ...) -> None: ...

class RecordLicenseRequest(_message.Message):
    __slots__ = ("clinician_id", "state", "license_type", "license_number", "valid_from", "valid_until")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    state: str
    license_type: str
    license_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, clinician_id: _Optional[str] = ..., state: _Optional[str] = ..., license_type: _Optional[str] = ..., license_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class License(_message.Message):
    __slots__ = ("license_id", "clinician_id", "state", "license_type", "license_number", "valid_from", "valid_until")
    LICENSE_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    license_id: str
    clinician_id: str
    state: str
    license_type: str
    license_number: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, license_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., state: _Optional[str] = ..., license_type: _Optional[str] = ..., license_number: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckLicensureRequest(_message.Message):
    __slots__ = ("clinician_id", "client_state", "at")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    client_state: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, clinician_id: _Optional[str] = ..., client_state: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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
