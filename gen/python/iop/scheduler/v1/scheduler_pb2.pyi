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

class CareKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARE_KIND_UNSPECIFIED: _ClassVar[CareKind]
    CARE_KIND_PEER_SUPERVISION: _ClassVar[CareKind]
    CARE_KIND_TEAM_CHECK_IN: _ClassVar[CareKind]
CARE_KIND_UNSPECIFIED: CareKind
CARE_KIND_PEER_SUPERVISION: CareKind
CARE_KIND_TEAM_CHECK_IN: CareKind

class FatigueRules(_message.Message):
    __slots__ = ("max_continuous_video_minutes", "min_break_minutes", "long_session_minutes", "break_every_minutes", "break_minutes", "min_gap_minutes", "back_to_back_gap_minutes", "max_back_to_back_sessions", "max_clinician_screen_minutes_per_day", "max_client_screen_minutes_per_day")
    MAX_CONTINUOUS_VIDEO_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MIN_BREAK_MINUTES_FIELD_NUMBER: _ClassVar[int]
    LONG_SESSION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    BREAK_EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    BREAK_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MIN_GAP_MINUTES_FIELD_NUMBER: _ClassVar[int]
    BACK_TO_BACK_GAP_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BACK_TO_BACK_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLINICIAN_SCREEN_MINUTES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIENT_SCREEN_MINUTES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    max_continuous_video_minutes: int
    min_break_minutes: int
    long_session_minutes: int
    break_every_minutes: int
    break_minutes: int
    min_gap_minutes: int
    back_to_back_gap_minutes: int
    max_back_to_back_sessions: int
    max_clinician_screen_minutes_per_day: int
    max_client_screen_minutes_per_day: int
    def __init__(self, max_continuous_video_minutes: _Optional[int] = ..., min_break_minutes: _Optional[int] = ..., long_session_minutes: _Optional[int] = ..., break_every_minutes: _Optional[int] = ..., break_minutes: _Optional[int] = ..., min_gap_minutes: _Optional[int] = ..., back_to_back_gap_minutes: _Optional[int] = ..., max_back_to_back_sessions: _Optional[int] = ..., max_clinician_screen_minutes_per_day: _Optional[int] = ..., max_client_screen_minutes_per_day: _Optional[int] = ...) -> None: ...

class SupervisorOverride(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("track_id", "name", "hours_per_day", "min_days_per_week", "max_days_per_week")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOURS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MIN_DAYS_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    MAX_DAYS_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    name: str
    hours_per_day: float
    min_days_per_week: int
    max_days_per_week: int
    def __init__(self, track_id: _Optional[str] = ..., name: _Optional[str] = ..., hours_per_day: _Optional[float] = ..., min_days_per_week: _Optional[int] = ..., max_days_per_week: _Optional[int] = ...) -> None: ...

class Program(_message.Message):
    __slots__ = ("program_id", "name", "time_zone", "level_of_care", "backup_line", "tracks", "fatigue_rules", "payer_plan_id")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    FATIGUE_RULES_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    name: str
    time_zone: str
    level_of_care: str
    backup_line: str
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    fatigue_rules: FatigueRules
    payer_plan_id: str
    def __init__(self, program_id: _Optional[str] = ..., name: _Optional[str] = ..., time_zone: _Optional[str] = ..., level_of_care: _Optional[str] = ..., backup_line: _Optional[str] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., fatigue_rules: _Optional[_Union[FatigueRules, _Mapping]] = ..., payer_plan_id: _Optional[str] = ...) -> None: ...

class CreateProgramRequest(_message.Message):
    __slots__ = ("request_id", "name", "time_zone", "level_of_care", "backup_line", "tracks", "fatigue_rules", "payer_plan_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_OF_CARE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    FATIGUE_RULES_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    time_zone: str
    level_of_care: str
    backup_line: str
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    fatigue_rules: FatigueRules
    payer_plan_id: str
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ..., time_zone: _Optional[str] = ..., level_of_care: _Optional[str] = ..., backup_line: _Optional[str] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., fatigue_rules: _Optional[_Union[FatigueRules, _Mapping]] = ..., payer_plan_id: _Optional[str] = ...) -> None: ...

class GetProgramRequest(_message.Message):
    __slots__ = ("program_id",)
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    def __init__(self, program_id: _Optional[str] = ...) -> None: ...

class Cohort(_message.Message):
    __slots__ = ("cohort_id", "program_id", "track_id", "client_ids", "starts_on")
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_ON_FIELD_NUMBER: _ClassVar[int]
    cohort_id: str
    program_id: str
    track_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_on: _timestamp_pb2.Timestamp
    def __init__(self, cohort_id: _Optional[str] = ..., program_id: _Optional[str] = ..., track_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., starts_on: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCohortRequest(_message.Message):
    __slots__ = ("request_id", "program_id", "track_id", "client_ids", "starts_on")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_ON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    program_id: str
    track_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_on: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., program_id: _Optional[str] = ..., track_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., starts_on: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddCohortClientRequest(_message.Message):
    __slots__ = ("cohort_id", "client_id")
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    cohort_id: str
    client_id: str
    def __init__(self, cohort_id: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class RemoveCohortClientRequest(_message.Message):
    __slots__ = ("cohort_id", "client_id")
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    cohort_id: str
    client_id: str
    def __init__(self, cohort_id: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class WeeklyWindow(_message.Message):
    __slots__ = ("weekday", "start", "end")
    WEEKDAY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    weekday: int
    start: str
    end: str
    def __init__(self, weekday: _Optional[int] = ..., start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class SetClinicianAvailabilityRequest(_message.Message):
    __slots__ = ("clinician_id", "time_zone", "state", "windows", "fatigue_rules")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    FATIGUE_RULES_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    time_zone: str
    state: str
    windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    fatigue_rules: FatigueRules
    def __init__(self, clinician_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., state: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., fatigue_rules: _Optional[_Union[FatigueRules, _Mapping]] = ...) -> None: ...

class ClinicianProfile(_message.Message):
    __slots__ = ("clinician_id", "time_zone", "state", "windows", "fatigue_rules")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    FATIGUE_RULES_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    time_zone: str
    state: str
    windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    fatigue_rules: FatigueRules
    def __init__(self, clinician_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., state: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., fatigue_rules: _Optional[_Union[FatigueRules, _Mapping]] = ...) -> None: ...

class SetClientAvailabilityRequest(_message.Message):
    __slots__ = ("client_id", "time_zone", "windows", "alone_windows", "home_state", "payer_plan_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    ALONE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    HOME_STATE_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    time_zone: str
    windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    alone_windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    home_state: str
    payer_plan_id: str
    def __init__(self, client_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., alone_windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., home_state: _Optional[str] = ..., payer_plan_id: _Optional[str] = ...) -> None: ...

class ClientProfile(_message.Message):
    __slots__ = ("client_id", "time_zone", "windows", "alone_windows", "home_state", "payer_plan_id", "tech_check_required", "privacy_sensitive")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    ALONE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    HOME_STATE_FIELD_NUMBER: _ClassVar[int]
    PAYER_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    TECH_CHECK_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    time_zone: str
    windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    alone_windows: _containers.RepeatedCompositeFieldContainer[WeeklyWindow]
    home_state: str
    payer_plan_id: str
    tech_check_required: bool
    privacy_sensitive: bool
    def __init__(self, client_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., alone_windows: _Optional[_Iterable[_Union[WeeklyWindow, _Mapping]]] = ..., home_state: _Optional[str] = ..., payer_plan_id: _Optional[str] = ..., tech_check_required: _Optional[bool] = ..., privacy_sensitive: _Optional[bool] = ...) -> None: ...

class SearchSlotsRequest(_message.Message):
    __slots__ = ("program_id", "clinician_id", "client_ids", "to", "duration_minutes", "kind", "require_alone_window", "limit")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ALONE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    clinician_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    to: _timestamp_pb2.Timestamp
    duration_minutes: int
    kind: _scheduling_pb2.SessionKind
    require_alone_window: bool
    limit: int
    def __init__(self, program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_minutes: _Optional[int] = ..., kind: _Optional[_Union[_scheduling_pb2.SessionKind, str]] = ..., require_alone_window: _Optional[bool] = ..., limit: _Optional[int] = ..., **kwargs) -> None: ...

class Slot(_message.Message):
    __slots__ = ("starts_at", "ends_at", "in_alone_window")
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    IN_ALONE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    in_alone_window: bool
    def __init__(self, starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_alone_window: _Optional[bool] = ...) -> None: ...

class SearchSlotsResponse(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[Slot]
    def __init__(self, slots: _Optional[_Iterable[_Union[Slot, _Mapping]]] = ...) -> None: ...

class ScheduleSessionRequest(_message.Message):
    __slots__ = ("request_id", "program_id", "clinician_id", "client_ids", "starts_at", "ends_at", "kind", "capacity", "facilitators", "turn_taking", "cohort_id", "planned_modality", "require_alone_window", "override")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FACILITATORS_FIELD_NUMBER: _ClassVar[int]
    TURN_TAKING_FIELD_NUMBER: _ClassVar[int]
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    PLANNED_MODALITY_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ALONE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    program_id: str
    clinician_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    kind: _scheduling_pb2.SessionKind
    capacity: int
    facilitators: _containers.RepeatedCompositeFieldContainer[Facilitator]
    turn_taking: TurnTaking
    cohort_id: str
    planned_modality: _common_pb2.Modality
    require_alone_window: bool
    override: SupervisorOverride
    def __init__(self, request_id: _Optional[str] = ..., program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[_scheduling_pb2.SessionKind, str]] = ..., capacity: _Optional[int] = ..., facilitators: _Optional[_Iterable[_Union[Facilitator, _Mapping]]] = ..., turn_taking: _Optional[_Union[TurnTaking, _Mapping]] = ..., cohort_id: _Optional[str] = ..., planned_modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., require_alone_window: _Optional[bool] = ..., override: _Optional[_Union[SupervisorOverride, _Mapping]] = ...) -> None: ...

class Facilitator(_message.Message):
    __slots__ = ("clinician_id", "role")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    role: str
    def __init__(self, clinician_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class TurnTaking(_message.Message):
    __slots__ = ("mode", "speaking_time_limit_s", "mute_on_entry")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_TIME_LIMIT_S_FIELD_NUMBER: _ClassVar[int]
    MUTE_ON_ENTRY_FIELD_NUMBER: _ClassVar[int]
    mode: str
    speaking_time_limit_s: int
    mute_on_entry: bool
    def __init__(self, mode: _Optional[str] = ..., speaking_time_limit_s: _Optional[int] = ..., mute_on_entry: _Optional[bool] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class Break(_message.Message):
    __slots__ = ("starts_at", "ends_at")
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    def __init__(self, starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckInRecord(_message.Message):
    __slots__ = ("client_id", "location", "privacy_attestation", "checked_in_at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    CHECKED_IN_AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    location: _common_pb2.ClientLocation
    privacy_attestation: str
    checked_in_at: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., privacy_attestation: _Optional[str] = ..., checked_in_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "program_id", "clinician_id", "client_ids", "starts_at", "ends_at", "kind", "status", "backup_line", "capacity", "facilitators", "turn_taking", "breaks", "check_ins", "tech_check_task_ids", "privacy_flagged", "proposed_slots", "interruption_reason", "rescheduled_to", "rescheduled_from", "modality", "overridden", "overridden_rules", "cohort_id", "client_proposals")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BACKUP_LINE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FACILITATORS_FIELD_NUMBER: _ClassVar[int]
    TURN_TAKING_FIELD_NUMBER: _ClassVar[int]
    BREAKS_FIELD_NUMBER: _ClassVar[int]
    CHECK_INS_FIELD_NUMBER: _ClassVar[int]
    TECH_CHECK_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FLAGGED_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTION_REASON_FIELD_NUMBER: _ClassVar[int]
    RESCHEDULED_TO_FIELD_NUMBER: _ClassVar[int]
    RESCHEDULED_FROM_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_RULES_FIELD_NUMBER: _ClassVar[int]
    COHORT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    program_id: str
    clinician_id: str
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    kind: _scheduling_pb2.SessionKind
    status: str
    backup_line: str
    capacity: int
    facilitators: _containers.RepeatedCompositeFieldContainer[Facilitator]
    turn_taking: TurnTaking
    breaks: _containers.RepeatedCompositeFieldContainer[Break]
    check_ins: _containers.RepeatedCompositeFieldContainer[CheckInRecord]
    tech_check_task_ids: _containers.RepeatedScalarFieldContainer[str]
    privacy_flagged: bool
    proposed_slots: _containers.RepeatedCompositeFieldContainer[Slot]
    interruption_reason: str
    rescheduled_to: str
    rescheduled_from: str
    modality: _common_pb2.Modality
    overridden: bool
    overridden_rules: _containers.RepeatedScalarFieldContainer[str]
    cohort_id: str
    client_proposals: _containers.RepeatedCompositeFieldContainer[ClientProposal]
    def __init__(self, session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., client_ids: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[_scheduling_pb2.SessionKind, str]] = ..., status: _Optional[str] = ..., backup_line: _Optional[str] = ..., capacity: _Optional[int] = ..., facilitators: _Optional[_Iterable[_Union[Facilitator, _Mapping]]] = ..., turn_taking: _Optional[_Union[TurnTaking, _Mapping]] = ..., breaks: _Optional[_Iterable[_Union[Break, _Mapping]]] = ..., check_ins: _Optional[_Iterable[_Union[CheckInRecord, _Mapping]]] = ..., tech_check_task_ids: _Optional[_Iterable[str]] = ..., privacy_flagged: _Optional[bool] = ..., proposed_slots: _Optional[_Iterable[_Union[Slot, _Mapping]]] = ..., interruption_reason: _Optional[str] = ..., rescheduled_to: _Optional[str] = ..., rescheduled_from: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., overridden: _Optional[bool] = ..., overridden_rules: _Optional[_Iterable[str]] = ..., cohort_id: _Optional[str] = ..., client_proposals: _Optional[_Iterable[_Union[ClientProposal, _Mapping]]] = ...) -> None: ...

class ClientProposal(_message.Message):
    __slots__ = ("client_id", "slots", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    slots: _containers.RepeatedCompositeFieldContainer[Slot]
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., slots: _Optional[_Iterable[_Union[Slot, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class BookGroupSeatRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "client_id", "require_alone_window", "override")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ALONE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    client_id: str
    require_alone_window: bool
    override: SupervisorOverride
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., require_alone_window: _Optional[bool] = ..., override: _Optional[_Union[SupervisorOverride, _Mapping]] = ...) -> None: ...

class UpdateGroupCapacityRequest(_message.Message):
    __slots__ = ("session_id", "capacity")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    capacity: int
    def __init__(self, session_id: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class CancelSessionRequest(_message.Message):
    __slots__ = ("session_id", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CheckInRequest(_message.Message):
    __slots__ = ("session_id", "client_id", "location", "privacy_attestation", "backup_phone")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    BACKUP_PHONE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    location: _common_pb2.ClientLocation
    privacy_attestation: str
    backup_phone: str
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.ClientLocation, _Mapping]] = ..., privacy_attestation: _Optional[str] = ..., backup_phone: _Optional[str] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("session_id", "clinician_state")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_STATE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_state: str
    def __init__(self, session_id: _Optional[str] = ..., clinician_state: _Optional[str] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id", "modality", "attendance")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    modality: _common_pb2.Modality
    attendance: _containers.RepeatedCompositeFieldContainer[_scheduling_pb2.ClientAttendance]
    def __init__(self, session_id: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., attendance: _Optional[_Iterable[_Union[_scheduling_pb2.ClientAttendance, _Mapping]]] = ...) -> None: ...

class InterruptSessionRequest(_message.Message):
    __slots__ = ("session_id", "reason", "modality", "attendance")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    modality: _common_pb2.Modality
    attendance: _containers.RepeatedCompositeFieldContainer[_scheduling_pb2.ClientAttendance]
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., modality: _Optional[_Union[_common_pb2.Modality, str]] = ..., attendance: _Optional[_Iterable[_Union[_scheduling_pb2.ClientAttendance, _Mapping]]] = ...) -> None: ...

class RescheduleSessionRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "new_starts_at", "reason", "override")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    new_starts_at: _timestamp_pb2.Timestamp
    reason: str
    override: SupervisorOverride
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., new_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., override: _Optional[_Union[SupervisorOverride, _Mapping]] = ...) -> None: ...

class TechCheckTask(_message.Message):
    __slots__ = ("task_id", "client_id", "session_id", "due_by", "status", "trigger")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DUE_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    client_id: str
    session_id: str
    due_by: _timestamp_pb2.Timestamp
    status: str
    trigger: str
    def __init__(self, task_id: _Optional[str] = ..., client_id: _Optional[str] = ..., session_id: _Optional[str] = ..., due_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., trigger: _Optional[str] = ...) -> None: ...

class ListTechChecksRequest(_message.Message):
    __slots__ = ("client_id", "page_size", "page_token")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    page_size: int
    page_token: str
    def __init__(self, client_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTechChecksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TechCheckTask]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TechCheckTask, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CompleteTechCheckRequest(_message.Message):
    __slots__ = ("task_id", "passed")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    passed: bool
    def __init__(self, task_id: _Optional[str] = ..., passed: _Optional[bool] = ...) -> None: ...

class ScheduleViewRequest(_message.Message):
    __slots__ = ("owner_id", "to")
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    owner_id: str
    to: _timestamp_pb2.Timestamp
    def __init__(self, owner_id: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., **kwargs) -> None: ...

class DayLoad(_message.Message):
    __slots__ = ("date", "screen_minutes", "sessions", "longest_back_to_back")
    DATE_FIELD_NUMBER: _ClassVar[int]
    SCREEN_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LONGEST_BACK_TO_BACK_FIELD_NUMBER: _ClassVar[int]
    date: str
    screen_minutes: int
    sessions: int
    longest_back_to_back: int
    def __init__(self, date: _Optional[str] = ..., screen_minutes: _Optional[int] = ..., sessions: _Optional[int] = ..., longest_back_to_back: _Optional[int] = ...) -> None: ...

class ClinicianSchedule(_message.Message):
    __slots__ = ("clinician_id", "time_zone", "sessions", "days", "care_sessions")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    CARE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    time_zone: str
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    days: _containers.RepeatedCompositeFieldContainer[DayLoad]
    care_sessions: _containers.RepeatedCompositeFieldContainer[CareSession]
    def __init__(self, clinician_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., days: _Optional[_Iterable[_Union[DayLoad, _Mapping]]] = ..., care_sessions: _Optional[_Iterable[_Union[CareSession, _Mapping]]] = ...) -> None: ...

class ClientSchedule(_message.Message):
    __slots__ = ("client_id", "time_zone", "sessions", "days", "tech_checks")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TECH_CHECKS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    time_zone: str
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    days: _containers.RepeatedCompositeFieldContainer[DayLoad]
    tech_checks: _containers.RepeatedCompositeFieldContainer[TechCheckTask]
    def __init__(self, client_id: _Optional[str] = ..., time_zone: _Optional[str] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., days: _Optional[_Iterable[_Union[DayLoad, _Mapping]]] = ..., tech_checks: _Optional[_Iterable[_Union[TechCheckTask, _Mapping]]] = ...) -> None: ...

class CreateCareSeriesRequest(_message.Message):
    __slots__ = ("request_id", "kind", "clinician_ids", "facilitator_id", "first_starts_at", "duration_minutes", "interval_days", "occurrences", "time_zone")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_IDS_FIELD_NUMBER: _ClassVar[int]
    FACILITATOR_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_DAYS_FIELD_NUMBER: _ClassVar[int]
    OCCURRENCES_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    kind: CareKind
    clinician_ids: _containers.RepeatedScalarFieldContainer[str]
    facilitator_id: str
    first_starts_at: _timestamp_pb2.Timestamp
    duration_minutes: int
    interval_days: int
    occurrences: int
    time_zone: str
    def __init__(self, request_id: _Optional[str] = ..., kind: _Optional[_Union[CareKind, str]] = ..., clinician_ids: _Optional[_Iterable[str]] = ..., facilitator_id: _Optional[str] = ..., first_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_minutes: _Optional[int] = ..., interval_days: _Optional[int] = ..., occurrences: _Optional[int] = ..., time_zone: _Optional[str] = ...) -> None: ...

class CareSession(_message.Message):
    __slots__ = ("care_session_id", "series_id", "kind", "clinician_ids", "starts_at", "ends_at", "attended", "missed")
    CARE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    care_session_id: str
    series_id: str
    kind: CareKind
    clinician_ids: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    attended: _containers.RepeatedScalarFieldContainer[str]
    missed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, care_session_id: _Optional[str] = ..., series_id: _Optional[str] = ..., kind: _Optional[_Union[CareKind, str]] = ..., clinician_ids: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attended: _Optional[_Iterable[str]] = ..., missed: _Optional[_Iterable[str]] = ...) -> None: ...

class CareSeries(_message.Message):
    __slots__ = ("series_id", "kind", "sessions")
    SERIES_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    series_id: str
    kind: CareKind
    sessions: _containers.RepeatedCompositeFieldContainer[CareSession]
    def __init__(self, series_id: _Optional[str] = ..., kind: _Optional[_Union[CareKind, str]] = ..., sessions: _Optional[_Iterable[_Union[CareSession, _Mapping]]] = ...) -> None: ...

class RecordCareAttendanceRequest(_message.Message):
    __slots__ = ("care_session_id", "clinician_id", "attended")
    CARE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_FIELD_NUMBER: _ClassVar[int]
    care_session_id: str
    clinician_id: str
    attended: bool
    def __init__(self, care_session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., attended: _Optional[bool] = ...) -> None: ...

class GetCareSummaryRequest(_message.Message):
    __slots__ = ("clinician_id",)
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    def __init__(self, clinician_id: _Optional[str] = ...) -> None: ...

class CareSummary(_message.Message):
    __slots__ = ("clinician_id", "attended", "missed", "last_attended_at", "next_at", "overdue")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTENDED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_AT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    attended: int
    missed: int
    last_attended_at: _timestamp_pb2.Timestamp
    next_at: _timestamp_pb2.Timestamp
    overdue: bool
    def __init__(self, clinician_id: _Optional[str] = ..., attended: _Optional[int] = ..., missed: _Optional[int] = ..., last_attended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ...) -> None: ...
