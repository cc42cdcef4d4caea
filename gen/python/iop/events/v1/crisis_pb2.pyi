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

class RiskLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_LEVEL_UNSPECIFIED: _ClassVar[RiskLevel]
    RISK_LEVEL_LOW: _ClassVar[RiskLevel]
    RISK_LEVEL_MODERATE: _ClassVar[RiskLevel]
    RISK_LEVEL_HIGH: _ClassVar[RiskLevel]

class AlertStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATUS_UNSPECIFIED: _ClassVar[AlertStatus]
    ALERT_STATUS_OPEN: _ClassVar[AlertStatus]
    ALERT_STATUS_ACKNOWLEDGED: _ClassVar[AlertStatus]
    ALERT_STATUS_CONTACT_MADE: _ClassVar[AlertStatus]
    ALERT_STATUS_RESOLVED: _ClassVar[AlertStatus]
    ALERT_STATUS_ESCALATED: _ClassVar[AlertStatus]

class LadderStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LADDER_STEP_UNSPECIFIED: _ClassVar[LadderStep]
    LADDER_STEP_CLINICIAN_CALLBACK: _ClassVar[LadderStep]
    LADDER_STEP_ON_CALL_CLINICIAN: _ClassVar[LadderStep]
    LADDER_STEP_EMERGENCY_CONTACT: _ClassVar[LadderStep]
    LADDER_STEP_LOCAL_EMERGENCY_SERVICES: _ClassVar[LadderStep]

class ContactRoute(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_ROUTE_UNSPECIFIED: _ClassVar[ContactRoute]
    CONTACT_ROUTE_CLINICIAN_WORK_QUEUE: _ClassVar[ContactRoute]
    CONTACT_ROUTE_ON_CALL: _ClassVar[ContactRoute]
RISK_LEVEL_UNSPECIFIED: RiskLevel
RISK_LEVEL_LOW: RiskLevel
RISK_LEVEL_MODERATE: RiskLevel
RISK_LEVEL_HIGH: RiskLevel
ALERT_STATUS_UNSPECIFIED: AlertStatus
ALERT_STATUS_OPEN: AlertStatus
ALERT_STATUS_ACKNOWLEDGED: AlertStatus
ALERT_STATUS_CONTACT_MADE: AlertStatus
ALERT_STATUS_RESOLVED: AlertStatus
ALERT_STATUS_ESCALATED: AlertStatus
LADDER_STEP_UNSPECIFIED: LadderStep
LADDER_STEP_CLINICIAN_CALLBACK: LadderStep
LADDER_STEP_ON_CALL_CLINICIAN: LadderStep
LADDER_STEP_EMERGENCY_CONTACT: LadderStep
LADDER_STEP_LOCAL_EMERGENCY_SERVICES: LadderStep
CONTACT_ROUTE_UNSPECIFIED: ContactRoute
CONTACT_ROUTE_CLINICIAN_WORK_QUEUE: ContactRoute
CONTACT_ROUTE_ON_CALL: ContactRoute

class RiskLevelChanged(_message.Message):
    __slots__ = ("client_id", "previous_level", "level", "source", "recorded_by", "changed_at", "reasons")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    previous_level: RiskLevel
    level: RiskLevel
    source: str
    recorded_by: str
    changed_at: _timestamp_pb2.Timestamp
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., previous_level: _Optional[_Union[RiskLevel, str]] = ..., level: _Optional[_Union[RiskLevel, str]] = ..., source: _Optional[str] = ..., recorded_by: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class MobileCrisisTeam(_message.Message):
    __slots__ = ("name", "phone", "hours")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    name: str
    phone: str
    hours: str
    def __init__(self, name: _Optional[str] = ..., phone: _Optional[str] = ..., hours: _Optional[str] = ...) -> None: ...

class EmergencyDepartment(_message.Message):
    __slots__ = ("name", "address", "phone")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    phone: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class CrisisResources(_message.Message):
    __slots__ = ("region_id", "lifeline", "emergency_number", "emergency_routing", "psap_name", "psap_phone", "mobile_crisis", "emergency_departments", "data_version", "illustrative")
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    LIFELINE_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_ROUTING_FIELD_NUMBER: _ClassVar[int]
    PSAP_NAME_FIELD_NUMBER: _ClassVar[int]
    PSAP_PHONE_FIELD_NUMBER: _ClassVar[int]
    MOBILE_CRISIS_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ILLUSTRATIVE_FIELD_NUMBER: _ClassVar[int]
    region_id: str
    lifeline: str
    emergency_number: str
    emergency_routing: str
    psap_name: str
    psap_phone: str
    mobile_crisis: MobileCrisisTeam
    emergency_departments: _containers.RepeatedCompositeFieldContainer[EmergencyDepartment]
    data_version: str
    illustrative: bool
    def __init__(self, region_id: _Optional[str] = ..., lifeline: _Optional[str] = ..., emergency_number: _Optional[str] = ..., emergency_routing: _Optional[str] = ..., psap_name: _Optional[str] = ..., psap_phone: _Optional[str] = ..., mobile_crisis: _Optional[_Union[MobileCrisisTeam, _Mapping]] = ..., emergency_departments: _Optional[_Iterable[_Union[EmergencyDepartment, _Mapping]]] = ..., data_version: _Optional[str] = ..., illustrative: _Optional[bool] = ...) -> None: ...

class AlertOpened(_message.Message):
    __slots__ = ("alert_id", "client_id", "session_id", "program_id", "clinician_id", "reason", "risk_level", "opened_at", "trigger_event_id", "on_call_id", "problems", "next_step_due_at", "policy_id")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    session_id: str
    program_id: str
    clinician_id: str
    reason: str
    risk_level: RiskLevel
    opened_at: _timestamp_pb2.Timestamp
    trigger_event_id: str
    on_call_id: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    next_step_due_at: _timestamp_pb2.Timestamp
    policy_id: str
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., reason: _Optional[str] = ..., risk_level: _Optional[_Union[RiskLevel, str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger_event_id: _Optional[str] = ..., on_call_id: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., next_step_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_id: _Optional[str] = ...) -> None: ...

class AlertEscalated(_message.Message):
    __slots__ = ("alert_id", "client_id", "step_index", "step", "trigger", "due_at", "escalated_at", "route", "assignee_id", "delivery_status", "delivery_error", "problems", "next_step_due_at", "fired_by", "location", "callback_phone", "location_session_id", "location_verified_at", "ladder_round")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ERROR_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    FIRED_BY_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_PHONE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    LADDER_ROUND_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    step_index: int
    step: LadderStep
    trigger: str
    due_at: _timestamp_pb2.Timestamp
    escalated_at: _timestamp_pb2.Timestamp
    route: ContactRoute
    assignee_id: str
    delivery_status: str
    delivery_error: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    next_step_due_at: _timestamp_pb2.Timestamp
    fired_by: str
    location: _common_pb2.ClientLocation
    callback_phone: str
    location_session_id: str
    location_verified_at: _timestamp_pb2.Timestamp
    ladder_round: int
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., step_index: _Optional[int] = ..., step: _Optional[_Union[LadderStep, str]] = ..., trigger: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., escalated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., route: _Optional[_Union[ContactRoute, str]] = ..., assignee_id: _Optional[str] = ..., delivery_status: _Optional[str] = ..., delivery_error: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., next_step_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fired_by: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., callback_phone: _Optional[str] = ..., location_session_id: _Optional[str] = ..., location_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ladder_round: _Optional[int] = ...) -> None: ...

class AlertAcknowledged(_message.Message):
    __slots__ = ("alert_id", "client_id", "acknowledged_by", "acknowledged_at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    acknowledged_by: str
    acknowledged_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., acknowledged_by: _Optional[str] = ..., acknowledged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertContactAttempted(_message.Message):
    __slots__ = ("alert_id", "client_id", "attempt_id", "target", "outcome", "recorded_by", "attempted_at", "stopped_ladder")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    STOPPED_LADDER_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    attempt_id: str
    target: str
    outcome: str
    recorded_by: str
    attempted_at: _timestamp_pb2.Timestamp
    stopped_ladder: bool
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., recorded_by: _Optional[str] = ..., attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stopped_ladder: _Optional[bool] = ...) -> None: ...

class AlertContactMade(_message.Message):
    __slots__ = ("alert_id", "client_id", "recorded_by", "target", "at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    recorded_by: str
    target: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., recorded_by: _Optional[str] = ..., target: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertResolved(_message.Message):
    __slots__ = ("alert_id", "client_id", "resolved_by", "resolution", "resolved_at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    resolved_by: str
    resolution: str
    resolved_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., resolved_by: _Optional[str] = ..., resolution: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CrisisTaskCreated(_message.Message):
    __slots__ = ("task_id", "client_id", "alert_id", "session_id", "kind", "route", "assignee_id", "callback_phone", "backup_line", "resources", "location", "contact_name", "contact_phone", "created_at", "problems")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_PHONE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    client_id: str
    alert_id: str
    session_id: str
    kind: str
    route: ContactRoute
    assignee_id: str
    callback_phone: str
    backup_line: str
    resources: CrisisResources
    location: _common_pb2.ClientLocation
    contact_name: str
    contact_phone: str
    created_at: _timestamp_pb2.Timestamp
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_id: _Optional[str] = ..., client_id: _Optional[str] = ..., alert_id: _Optional[str] = ..., session_id: _Optional[str] = ..., kind: _Optional[str] = ..., route: _Optional[_Union[ContactRoute, str]] = ..., assignee_id: _Optional[str] = ..., callback_phone: _Optional[str] = ..., backup_line: _Optional[str] = ..., resources: _Optional[_Union[CrisisResources, _Mapping]] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., contact_name: _Optional[str] = ..., contact_phone: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalResourcesMissing(_message.Message):
    __slots__ = ("client_id", "session_id", "state", "county_fips", "data_version", "at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTY_FIPS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    session_id: str
    state: str
    county_fips: str
    data_version: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., session_id: _Optional[str] = ..., state: _Optional[str] = ..., county_fips: _Optional[str] = ..., data_version: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CrisisFhirResource(_message.Message):
    __slots__ = ("resource_type", "resource_id", "fhir_version", "json", "client_id")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    FHIR_VERSION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    resource_id: str
    fhir_version: str
    json: str
    client_id: str
    def __init__(self, resource_type: _Optional[str] = ..., resource_id: _Optional[str] = ..., fhir_version: _Optional[str] = ..., json: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...
