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

class SessionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_KIND_UNSPECIFIED: _ClassVar[SessionKind]
    SESSION_KIND_GROUP: _ClassVar[SessionKind]
    SESSION_KIND_INDIVIDUAL: _ClassVar[SessionKind]
    SESSION_KIND_EVALUATION: _ClassVar[SessionKind]
    SESSION_KIND_PEER_SUPERVISION: _ClassVar[SessionKind]
SESSION_KIND_UNSPECIFIED: SessionKind
SESSION_KIND_GROUP: SessionKind
SESSION_KIND_INDIVIDUAL: SessionKind
SESSION_KIND_EVALUATION: SessionKind
SESSION_KIND_PEER_SUPERVISION: SessionKind

class SessionFacilitator(_message.Message):
    __slots__ = ("clinician_id", "role")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    role: str
    def __init__(self, clinician_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class SessionScheduled(_message.Message):
    __slots__ = ("session_id", "program_id", "clinician_id", "client_ids", "starts_at", "ends_at", "kind", "backup_line", "payer_plan_id", "level_of_care", "treating_facilitators")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    TREATING_FACILITATORS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    program_id: str
    clinician_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    kind: SessionKind
    backup_line: str
    payer_plan_id: str
    level_of_care: str
    treating_facilitators: _containers.RepeatedCompositeFieldContainer[SessionFacilitator]
    def __init__(self, session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[SessionKind, str]] = ..., backup_line: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., level_of_care: _Optional[str] = ..., treating_facilitators: _Optional[_Iterable[_Union[SessionFacilitator, _Mapping]]] = ...) -> None: ...

class SessionCheckedIn(_message.Message):
    __slots__ = ("session_id", "client_id", "location", "privacy_attestation", "checked_in_at", "backup_phone")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    CHECKED_IN_AT_FIELD_NUMBER: _ClassVar[int]
    BACKUP_PHONE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    location: _common_pb2.ClientLocation
    privacy_attestation: str
    checked_in_at: _timestamp_pb2.Timestamp
    backup_phone: str
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., privacy_attestation: _Optional[str] = ..., checked_in_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backup_phone: _Optional[str] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("session_id", "clinician_id", "client_ids", "started_at", "clinician_state", "backup_line", "program_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_STATE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    started_at: _timestamp_pb2.Timestamp
    clinician_state: str
    backup_line: str
    program_id: str
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_state: _Optional[str] = ..., backup_line: _Optional[str] = ..., program_id: _Optional[str] = ...) -> None: ...

class ClientAttendance(_message.Message):
    __slots__ = ("client_id", "minutes_attended", "modality")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    minutes_attended: int
    modality: _common_pb2.Modality
    def __init__(self, client_id: _Optional[str] = ..., minutes_attended: _Optional[int] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ...) -> None: ...

class SessionEnded(_message.Message):
    __slots__ = ("session_id", "clinician_id", "ended_at", "modality", "attendance", "program_id", "payer_plan_id", "level_of_care", "kind", "started_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    ended_at: _timestamp_pb2.Timestamp
    modality: _common_pb2.Modality
    attendance: _containers.RepeatedCompositeFieldContainer[ClientAttendance]
    program_id: str
    payer_plan_id: str
    level_of_care: str
    kind: SessionKind
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., attendance: _Optional[_Iterable[_Union[ClientAttendance, _Mapping]]] = ..., program_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., level_of_care: _Optional[str] = ..., kind: _Optional[_Union[SessionKind, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionInterrupted(_message.Message):
    __slots__ = ("session_id", "reason", "interrupted_at", "clinician_id", "modality", "attendance", "program_id", "payer_plan_id", "level_of_care", "kind", "started_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    interrupted_at: _timestamp_pb2.Timestamp
    clinician_id: str
    modality: _common_pb2.Modality
    attendance: _containers.RepeatedCompositeFieldContainer[ClientAttendance]
    program_id: str
    payer_plan_id: str
    level_of_care: str
    kind: SessionKind
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., interrupted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_id: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., attendance: _Optional[_Iterable[_Union[ClientAttendance, _Mapping]]] = ..., program_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., level_of_care: _Optional[str] = ..., kind: _Optional[_Union[SessionKind, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionAttendanceRecorded(_message.Message):
    __slots__ = ("session_id", "interruption_reason", "interrupted_at", "recorded_at", "clinician_id", "modality", "attendance", "program_id", "payer_plan_id", "level_of_care", "kind", "started_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTION_REASON_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    interruption_reason: str
    interrupted_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    clinician_id: str
    modality: _common_pb2.Modality
    attendance: _containers.RepeatedCompositeFieldContainer[ClientAttendance]
    program_id: str
    payer_plan_id: str
    level_of_care: str
    kind: SessionKind
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., interruption_reason: _Optional[str] = ..., interrupted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_id: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., attendance: _Optional[_Iterable[_Union[ClientAttendance, _Mapping]]] = ..., program_id: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., level_of_care: _Optional[str] = ..., kind: _Optional[_Union[SessionKind, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionCancelled(_message.Message):
    __slots__ = ("session_id", "reason", "cancelled_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    cancelled_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionRescheduled(_message.Message):
    __slots__ = ("session_id", "new_session_id", "reason", "new_starts_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NEW_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    new_session_id: str
    reason: str
    new_starts_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., new_session_id: _Optional[str] = ..., reason: _Optional[str] = ..., new_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionRosterChanged(_message.Message):
    __slots__ = ("session_id", "client_ids", "added", "removed", "capacity")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    def __init__(self, session_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ...) -> None: ...

class ProposedSlot(_message.Message):
    __slots__ = ("starts_at", "ends_at", "in_alone_window")
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    IN_ALONE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    in_alone_window: bool
    def __init__(self, starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_alone_window: _Optional[bool] = ...) -> None: ...

class RescheduleProposed(_message.Message):
    __slots__ = ("session_id", "client_id", "reason", "slots")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    reason: str
    slots: _containers.RepeatedCompositeFieldContainer[ProposedSlot]
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., reason: _Optional[str] = ..., slots: _Optional[_Iterable[_Union[ProposedSlot, _Mapping]]] = ...) -> None: ...

class FatigueOverrideApplied(_message.Message):
    __slots__ = ("session_id", "clinician_id", "rules", "supervisor_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    rules: _containers.RepeatedScalarFieldContainer[str]
    supervisor_id: str
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., rules: _Optional[_Iterable[str]] = ..., supervisor_id: _Optional[str] = ...) -> None: ...

class CareSessionScheduled(_message.Message):
    __slots__ = ("care_session_id", "series_id", "kind", "clinician_ids", "starts_at", "ends_at")
    CARE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    care_session_id: str
    series_id: str
    kind: str
    clinician_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    def __init__(self, care_session_id: _Optional[str] = ..., series_id: _Optional[str] = ..., kind: _Optional[str] = ..., clinician_ids: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CareSessionAttended(_message.Message):
    __slots__ = ("care_session_id", "clinician_id", "attended", "kind")
    CARE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    care_session_id: str
    clinician_id: str
    attended: bool
    kind: str
    def __init__(self, care_session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., attended: _Optional[bool] = ..., kind: _Optional[str] = ...) -> None: ...

class FhirResourcePublished(_message.Message):
    __slots__ = ("resource_type", "resource_id", "fhir_version", "json")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_VERSION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    resource_id: str
    fhir_version: str
    json: str
    def __init__(self, resource_type: _Optional[str] = ..., resource_id: _Optional[str] = ..., fhir_version: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...
