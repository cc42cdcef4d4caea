import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iop.events.v1 import common_pb2 as _common_pb2
from iop.events.v1 import crisis_pb2 as _crisis_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Answer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_UNSPECIFIED: _ClassVar[Answer]
    ANSWER_NO: _ClassVar[Answer]
    ANSWER_YES: _ClassVar[Answer]

class BehaviorRecency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BEHAVIOR_RECENCY_UNSPECIFIED: _ClassVar[BehaviorRecency]
    BEHAVIOR_RECENCY_WITHIN_3_MONTHS: _ClassVar[BehaviorRecency]
    BEHAVIOR_RECENCY_OVER_3_MONTHS_AGO: _ClassVar[BehaviorRecency]
ANSWER_UNSPECIFIED: Answer
ANSWER_NO: Answer
ANSWER_YES: Answer
BEHAVIOR_RECENCY_UNSPECIFIED: BehaviorRecency
BEHAVIOR_RECENCY_WITHIN_3_MONTHS: BehaviorRecency
BEHAVIOR_RECENCY_OVER_3_MONTHS_AGO: BehaviorRecency

class SetRiskLevelRequest(_message.Message):
    __slots__ = ("client_id", "level", "source")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    level: _crisis_pb2.RiskLevel
    source: str
    def __init__(self, client_id: _Optional[str] = ..., level: _Optional[_Union[_crisis_pb2.RiskLevel, str]] = ..., source: _Optional[str] = ...) -> None: ...

class GetRiskStateRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class RiskState(_message.Message):
    __slots__ = ("client_id", "level", "source", "updated_at", "reasons")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    level: _crisis_pb2.RiskLevel
    source: str
    updated_at: _timestamp_pb2.Timestamp
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., level: _Optional[_Union[_crisis_pb2.RiskLevel, str]] = ..., source: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class AssessCssrsRequest(_message.Message):
    __slots__ = ("client_id", "wish_to_be_dead", "suicidal_thoughts", "thoughts_with_method", "intent", "plan_with_intent", "suicidal_behavior", "behavior_recency", "session_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    WISH_TO_BE_DEAD_FIELD_NUMBER: _ClassVar[int]
    SUICIDAL_THOUGHTS_FIELD_NUMBER: _ClassVar[int]
    THOUGHTS_WITH_METHOD_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    PLAN_WITH_INTENT_FIELD_NUMBER: _ClassVar[int]
    SUICIDAL_BEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOR_RECENCY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    wish_to_be_dead: Answer
    suicidal_thoughts: Answer
    thoughts_with_method: Answer
    intent: Answer
    plan_with_intent: Answer
    suicidal_behavior: Answer
    behavior_recency: BehaviorRecency
    session_id: str
    def __init__(self, client_id: _Optional[str] = ..., wish_to_be_dead: _Optional[_Union[Answer, str]] = ..., suicidal_thoughts: _Optional[_Union[Answer, str]] = ..., thoughts_with_method: _Optional[_Union[Answer, str]] = ..., intent: _Optional[_Union[Answer, str]] = ..., plan_with_intent: _Optional[_Union[Answer, str]] = ..., suicidal_behavior: _Optional[_Union[Answer, str]] = ..., behavior_recency: _Optional[_Union[BehaviorRecency, str]] = ..., session_id: _Optional[str] = ...) -> None: ...

class CssrsAssessment(_message.Message):
    __slots__ = ("client_id", "level", "reasons", "state")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    level: _crisis_pb2.RiskLevel
    reasons: _containers.RepeatedScalarFieldContainer[str]
    state: RiskState
    def __init__(self, client_id: _Optional[str] = ..., level: _Optional[_Union[_crisis_pb2.RiskLevel, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[RiskState, _Mapping]] = ...) -> None: ...

class EmergencyContact(_message.Message):
    __slots__ = ("contact_id", "name", "relationship", "phone", "consent_to_contact", "consent_recorded_at")
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TO_CONTACT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    contact_id: str
    name: str
    relationship: str
    phone: str
    consent_to_contact: bool
    consent_recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, contact_id: _Optional[str] = ..., name: _Optional[str] = ..., relationship: _Optional[str] = ..., phone: _Optional[str] = ..., consent_to_contact: _Optional[bool] = ..., consent_recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ContactWindow(_message.Message):
    __slots__ = ("weekdays", "start", "end")
    WEEKDAYS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    weekdays: _containers.RepeatedScalarFieldContainer[int]
    start: str
    end: str
    def __init__(self, weekdays: _Optional[_Iterable[int]] = ..., start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class SafetyPlan(_message.Message):
    __slots__ = ("client_id", "version", "warning_signs", "internal_coping_strategies", "social_distractions", "people_to_ask_for_help", "professionals_and_agencies", "environment_safety", "emergency_contacts", "backup_phone", "contact_windows", "time_zone", "program_id", "updated_by", "updated_at", "retired")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WARNING_SIGNS_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_COPING_STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    SOCIAL_DISTRACTIONS_FIELD_NUMBER: _ClassVar[int]
    PEOPLE_TO_ASK_FOR_HELP_FIELD_NUMBER: _ClassVar[int]
    PROFESSIONALS_AND_AGENCIES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_SAFETY_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_CONTACTS_FIELD_NUMBER: _ClassVar[int]
    BACKUP_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    version: int
    warning_signs: _containers.RepeatedScalarFieldContainer[str]
    internal_coping_strategies: _containers.RepeatedScalarFieldContainer[str]
    social_distractions: _containers.RepeatedScalarFieldContainer[str]
    people_to_ask_for_help: _containers.RepeatedScalarFieldContainer[str]
    professionals_and_agencies: _containers.RepeatedScalarFieldContainer[str]
    environment_safety: _containers.RepeatedScalarFieldContainer[str]
    emergency_contacts: _containers.RepeatedCompositeFieldContainer[EmergencyContact]
    backup_phone: str
    contact_windows: _containers.RepeatedCompositeFieldContainer[ContactWindow]
    time_zone: str
    program_id: str
    updated_by: str
    updated_at: _timestamp_pb2.Timestamp
    retired: bool
    def __init__(self, client_id: _Optional[str] = ..., version: _Optional[int] = ..., warning_signs: _Optional[_Iterable[str]] = ..., internal_coping_strategies: _Optional[_Iterable[str]] = ..., social_distractions: _Optional[_Iterable[str]] = ..., people_to_ask_for_help: _Optional[_Iterable[str]] = ..., professionals_and_agencies: _Optional[_Iterable[str]] = ..., environment_safety: _Optional[_Iterable[str]] = ..., emergency_contacts: _Optional[_Iterable[_Union[EmergencyContact, _Mapping]]] = ..., backup_phone: _Optional[str] = ..., contact_windows: _Optional[_Iterable[_Union[ContactWindow, _Mapping]]] = ..., time_zone: _Optional[str] = ..., program_id: _Optional[str] = ..., updated_by: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retired: _Optional[bool] = ...) -> None: ...

class SaveSafetyPlanRequest(_message.Message):
    __slots__ = ("plan", "expected_version")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    plan: SafetyPlan
    expected_version: int
    def __init__(self, plan: _Optional[_Union[SafetyPlan, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class GetSafetyPlanRequest(_message.Message):
    __slots__ = ("client_id", "version")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    version: int
    def __init__(self, client_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListSafetyPlanVersionsRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class ListSafetyPlanVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[SafetyPlan]
    def __init__(self, versions: _Optional[_Iterable[_Union[SafetyPlan, _Mapping]]] = ...) -> None: ...

class DeleteSafetyPlanRequest(_message.Message):
    __slots__ = ("client_id", "expected_version")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    expected_version: int
    def __init__(self, client_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class GetLocalResourcesRequest(_message.Message):
    __slots__ = ("location",)
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    location: _common_pb2.ClientLocation
    def __init__(self, location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ...) -> None: ...

class RouteContactRequest(_message.Message):
    __slots__ = ("client_id", "clinician_id", "at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    clinician_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ContactRouting(_message.Message):
    __slots__ = ("route", "assignee_id", "within_window", "reason")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    WITHIN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    route: _crisis_pb2.ContactRoute
    assignee_id: str
    within_window: bool
    reason: str
    def __init__(self, route: _Optional[_Union[_crisis_pb2.ContactRoute, str]] = ..., assignee_id: _Optional[str] = ..., within_window: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RaiseAlertRequest(_message.Message):
    __slots__ = ("client_id", "session_id", "program_id", "reason", "request_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    session_id: str
    program_id: str
    reason: str
    request_id: str
    def __init__(self, client_id: _Optional[str] = ..., session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("alert_id",)
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    def __init__(self, alert_id: _Optional[str] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("alert_id",)
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    def __init__(self, alert_id: _Optional[str] = ...) -> None: ...

class RecordContactAttemptRequest(_message.Message):
    __slots__ = ("alert_id", "target", "outcome", "contact_id", "request_id", "attempted_at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    target: str
    outcome: str
    contact_id: str
    request_id: str
    attempted_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., contact_id: _Optional[str] = ..., request_id: _Optional[str] = ..., attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResolveAlertRequest(_message.Message):
    __slots__ = ("alert_id", "resolution")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    resolution: str
    def __init__(self, alert_id: _Optional[str] = ..., resolution: _Optional[str] = ...) -> None: ...

class LadderStepState(_message.Message):
    __slots__ = ("index", "step", "delay_s", "fired_at", "trigger", "delivery_status", "location", "callback_phone", "location_session_id", "location_verified_at")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    DELAY_S_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_PHONE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    index: int
    step: _crisis_pb2.LadderStep
    delay_s: int
    fired_at: _timestamp_pb2.Timestamp
    trigger: str
    delivery_status: str
    location: _common_pb2.ClientLocation
    callback_phone: str
    location_session_id: str
    location_verified_at: _timestamp_pb2.Timestamp
    def __init__(self, index: _Optional[int] = ..., step: _Optional[_Union[_crisis_pb2.LadderStep, str]] = ..., delay_s: _Optional[int] = ..., fired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger: _Optional[str] = ..., delivery_status: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., callback_phone: _Optional[str] = ..., location_session_id: _Optional[str] = ..., location_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ContactAttempt(_message.Message):
    __slots__ = ("attempt_id", "target", "outcome", "recorded_by", "attempted_at", "contact_id", "stopped_ladder")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    STOPPED_LADDER_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    target: str
    outcome: str
    recorded_by: str
    attempted_at: _timestamp_pb2.Timestamp
    contact_id: str
    stopped_ladder: bool
    def __init__(self, attempt_id: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., recorded_by: _Optional[str] = ..., attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contact_id: _Optional[str] = ..., stopped_ladder: _Optional[bool] = ...) -> None: ...

class AlertSignal(_message.Message):
    __slots__ = ("reason", "noted_at", "trigger_event_id", "restarted_ladder")
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_LADDER_FIELD_NUMBER: _ClassVar[int]
    reason: str
    noted_at: _timestamp_pb2.Timestamp
    trigger_event_id: str
    restarted_ladder: bool
    def __init__(self, reason: _Optional[str] = ..., noted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger_event_id: _Optional[str] = ..., restarted_ladder: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "client_id", "session_id", "program_id", "status", "reason", "risk_level", "assignees", "next_step_index", "next_step_due_at", "steps", "contact_attempts", "opened_at", "acknowledged_by", "resolution", "problems", "signals", "ladder_round")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEES_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    LADDER_ROUND_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    client_id: str
    session_id: str
    program_id: str
    status: _crisis_pb2.AlertStatus
    reason: str
    risk_level: _crisis_pb2.RiskLevel
    assignees: _containers.RepeatedScalarFieldContainer[str]
    next_step_index: int
    next_step_due_at: _timestamp_pb2.Timestamp
    steps: _containers.RepeatedCompositeFieldContainer[LadderStepState]
    contact_attempts: _containers.RepeatedCompositeFieldContainer[ContactAttempt]
    opened_at: _timestamp_pb2.Timestamp
    acknowledged_by: str
    resolution: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    signals: _containers.RepeatedCompositeFieldContainer[AlertSignal]
    ladder_round: int
    def __init__(self, alert_id: _Optional[str] = ..., client_id: _Optional[str] = ..., session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., status: _Optional[_Union[_crisis_pb2.AlertStatus, str]] = ..., reason: _Optional[str] = ..., risk_level: _Optional[_Union[_crisis_pb2.RiskLevel, str]] = ..., assignees: _Optional[_Iterable[str]] = ..., next_step_index: _Optional[int] = ..., next_step_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[LadderStepState, _Mapping]]] = ..., contact_attempts: _Optional[_Iterable[_Union[ContactAttempt, _Mapping]]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledged_by: _Optional[str] = ..., resolution: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., signals: _Optional[_Iterable[_Union[AlertSignal, _Mapping]]] = ..., ladder_round: _Optional[int] = ...) -> None: ...

class GetCrisisCardRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class CrisisCard(_message.Message):
    __slots__ = ("client_id", "plan", "location", "location_session_id", "location_verified_at", "resources", "emergency_contacts", "backup_phone", "risk", "active_alert", "problems")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_CONTACTS_FIELD_NUMBER: _ClassVar[int]
    BACKUP_PHONE_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ALERT_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    plan: SafetyPlan
    location: _common_pb2.ClientLocation
    location_session_id: str
    location_verified_at: _timestamp_pb2.Timestamp
    resources: _crisis_pb2.CrisisResources
    emergency_contacts: _containers.RepeatedCompositeFieldContainer[EmergencyContact]
    backup_phone: str
    risk: RiskState
    active_alert: Alert
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., plan: _Optional[_Union[SafetyPlan, _Mapping]] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., location_session_id: _Optional[str] = ..., location_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resources: _Optional[_Union[_crisis_pb2.CrisisResources, _Mapping]] = ..., emergency_contacts: _Optional[_Iterable[_Union[EmergencyContact, _Mapping]]] = ..., backup_phone: _Optional[str] = ..., risk: _Optional[_Union[RiskState, _Mapping]] = ..., active_alert: _Optional[_Union[Alert, _Mapping]] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...
