import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iop.events.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PrivacyCompromised(_message.Message):
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

class BillingLine(_message.Message):
    __slots__ = ("code", "modifiers", "place_of_service", "revenue_code", "units")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MODIFIERS_FIELD_NUMBER: _ClassVar[int]
    PLACE_OF_SERVICE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_CODE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    code: str
    modifiers: _containers.RepeatedScalarFieldContainer[str]
    place_of_service: str
    revenue_code: str
    units: int
    def __init__(self, code: _Optional[str] = ..., modifiers: _Optional[_Iterable[str]] = ..., place_of_service: _Optional[str] = ..., revenue_code: _Optional[str] = ..., units: _Optional[int] = ...) -> None: ...

class BillingReady(_message.Message):
    __slots__ = ("client_id", "service_date", "payer_plan_id", "lines", "modality", "minutes_attended", "covered", "problems", "authorization_id", "authorization_units_remaining", "session_ids", "condition_codes", "amended", "data_version", "week_minutes_to_date", "week_days_to_date")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_UNITS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    CONDITION_CODES_FIELD_NUMBER: _ClassVar[int]
    AMENDED_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEEK_MINUTES_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    WEEK_DAYS_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    service_date: str
    payer_plan_id: str
    lines: _containers.RepeatedCompositeFieldContainer[BillingLine]
    modality: _common_pb2.Modality
    minutes_attended: int
    covered: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    authorization_id: str
    authorization_units_remaining: int
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    condition_codes: _containers.RepeatedScalarFieldContainer[str]
    amended: bool
    data_version: str
    week_minutes_to_date: int
    week_days_to_date: int
    def __init__(self, client_id: _Optional[str] = ..., service_date: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[BillingLine, _Mapping]]] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., minutes_attended: _Optional[int] = ..., covered: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., authorization_id: _Optional[str] = ..., authorization_units_remaining: _Optional[int] = ..., session_ids: _Optional[_Iterable[str]] = ..., condition_codes: _Optional[_Iterable[str]] = ..., amended: _Optional[bool] = ..., data_version: _Optional[str] = ..., week_minutes_to_date: _Optional[int] = ..., week_days_to_date: _Optional[int] = ...) -> None: ...

class LicensureChecked(_message.Message):
    __slots__ = ("session_id", "clinician_id", "client_state", "decision", "reasons", "data_version", "client_id", "stage", "checked_at", "clinician_role")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STATE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ROLE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    client_state: str
    decision: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    data_version: str
    client_id: str
    stage: str
    checked_at: _timestamp_pb2.Timestamp
    clinician_role: str
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_state: _Optional[str] = ..., decision: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., data_version: _Optional[str] = ..., client_id: _Optional[str] = ..., stage: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_role: _Optional[str] = ...) -> None: ...

class CredentialExpiring(_message.Message):
    __slots__ = ("item_id", "item_type", "owner_id", "expires_at", "horizon_days", "affected_session_ids")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_TYPE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_type: str
    owner_id: str
    expires_at: _timestamp_pb2.Timestamp
    horizon_days: int
    affected_session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., item_type: _Optional[str] = ..., owner_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon_days: _Optional[int] = ..., affected_session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CredentialStatusChanged(_message.Message):
    __slots__ = ("item_id", "item_type", "clinician_id", "status", "effective_at", "recorded_at", "affected_session_ids", "cleared_session_ids")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    CLEARED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_type: str
    clinician_id: str
    status: str
    effective_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    affected_session_ids: _containers.RepeatedScalarFieldContainer[str]
    cleared_session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., item_type: _Optional[str] = ..., clinician_id: _Optional[str] = ..., status: _Optional[str] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., affected_session_ids: _Optional[_Iterable[str]] = ..., cleared_session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsentChanged(_message.Message):
    __slots__ = ("consent_id", "client_id", "consent_type", "form_version", "status", "valid_from", "valid_until", "changed_at")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    client_id: str
    consent_type: str
    form_version: str
    status: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, consent_id: _Optional[str] = ..., client_id: _Optional[str] = ..., consent_type: _Optional[str] = ..., form_version: _Optional[str] = ..., status: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
