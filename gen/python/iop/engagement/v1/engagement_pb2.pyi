import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttendanceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTENDANCE_STATUS_UNSPECIFIED: _ClassVar[AttendanceStatus]
    ATTENDANCE_STATUS_EXPECTED: _ClassVar[AttendanceStatus]
    ATTENDANCE_STATUS_ON_TIME: _ClassVar[AttendanceStatus]
    ATTENDANCE_STATUS_LATE: _ClassVar[AttendanceStatus]
    ATTENDANCE_STATUS_LEFT_EARLY: _ClassVar[AttendanceStatus]
    ATTENDANCE_STATUS_ABSENT: _ClassVar[AttendanceStatus]

class Instrument(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTRUMENT_UNSPECIFIED: _ClassVar[Instrument]
    INSTRUMENT_PHQ9: _ClassVar[Instrument]
    INSTRUMENT_GAD7: _ClassVar[Instrument]
ATTENDANCE_STATUS_UNSPECIFIED: AttendanceStatus
ATTENDANCE_STATUS_EXPECTED: AttendanceStatus
ATTENDANCE_STATUS_ON_TIME: AttendanceStatus
ATTENDANCE_STATUS_LATE: AttendanceStatus
ATTENDANCE_STATUS_LEFT_EARLY: AttendanceStatus
ATTENDANCE_STATUS_ABSENT: AttendanceStatus
INSTRUMENT_UNSPECIFIED: Instrument
INSTRUMENT_PHQ9: Instrument
INSTRUMENT_GAD7: Instrument

class GetSessionAttendanceRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AttendanceEntry(_message.Message):
    __slots__ = ("client_id", "status", "minutes_attended", "disconnections", "reconnections", "modality", "present")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    RECONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: AttendanceStatus
    minutes_attended: int
    disconnections: int
    reconnections: int
    modality: str
    present: bool
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[_Union[AttendanceStatus, str]] = ..., minutes_attended: _Optional[int] = ..., disconnections: _Optional[int] = ..., reconnections: _Optional[int] = ..., modality: _Optional[str] = ..., present: _Optional[bool] = ...) -> None: ...

class SessionAttendance(_message.Message):
    __slots__ = ("session_id", "clinician_id", "starts_at", "ends_at", "entries", "ended", "started_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    entries: _containers.RepeatedCompositeFieldContainer[AttendanceEntry]
    ended: bool
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[AttendanceEntry, _Mapping]]] = ..., ended: _Optional[bool] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitOutcomeRequest(_message.Message):
    __slots__ = ("submission_id", "client_id", "instrument", "item_scores", "completed_at", "session_id")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    ITEM_SCORES_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    client_id: str
    instrument: Instrument
    item_scores: _containers.RepeatedScalarFieldContainer[int]
    completed_at: _timestamp_pb2.Timestamp
    session_id: str
    def __init__(self, submission_id: _Optional[str] = ..., client_id: _Optional[str] = ..., instrument: _Optional[_Union[Instrument, str]] = ..., item_scores: _Optional[_Iterable[int]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class OutcomeRecord(_message.Message):
    __slots__ = ("submission_id", "client_id", "instrument", "item_scores", "total_score", "severity", "completed_at", "crisis_signal")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    ITEM_SCORES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    CRISIS_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    client_id: str
    instrument: Instrument
    item_scores: _containers.RepeatedScalarFieldContainer[int]
    total_score: int
    severity: str
    completed_at: _timestamp_pb2.Timestamp
    crisis_signal: bool
    def __init__(self, submission_id: _Optional[str] = ..., client_id: _Optional[str] = ..., instrument: _Optional[_Union[Instrument, str]] = ..., item_scores: _Optional[_Iterable[int]] = ..., total_score: _Optional[int] = ..., severity: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., crisis_signal: _Optional[bool] = ...) -> None: ...

class GetOutcomeHistoryRequest(_message.Message):
    __slots__ = ("client_id", "instrument")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    instrument: Instrument
    def __init__(self, client_id: _Optional[str] = ..., instrument: _Optional[_Union[Instrument, str]] = ...) -> None: ...

class OutcomeTrend(_message.Message):
    __slots__ = ("instrument", "first_total", "latest_total", "change", "direction", "slope_per_week")
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LATEST_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SLOPE_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    instrument: Instrument
    first_total: int
    latest_total: int
    change: int
    direction: str
    slope_per_week: float
    def __init__(self, instrument: _Optional[_Union[Instrument, str]] = ..., first_total: _Optional[int] = ..., latest_total: _Optional[int] = ..., change: _Optional[int] = ..., direction: _Optional[str] = ..., slope_per_week: _Optional[float] = ...) -> None: ...

class OutcomeHistory(_message.Message):
    __slots__ = ("client_id", "records", "trends")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TRENDS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    records: _containers.RepeatedCompositeFieldContainer[OutcomeRecord]
    trends: _containers.RepeatedCompositeFieldContainer[OutcomeTrend]
    def __init__(self, client_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[OutcomeRecord, _Mapping]]] = ..., trends: _Optional[_Iterable[_Union[OutcomeTrend, _Mapping]]] = ...) -> None: ...

class SubmitCheckInRequest(_message.Message):
    __slots__ = ("client_id", "day", "mood", "practice_done", "practice_minutes")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_DONE_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    day: str
    mood: int
    practice_done: bool
    practice_minutes: int
    def __init__(self, client_id: _Optional[str] = ..., day: _Optional[str] = ..., mood: _Optional[int] = ..., practice_done: _Optional[bool] = ..., practice_minutes: _Optional[int] = ...) -> None: ...

class CheckIn(_message.Message):
    __slots__ = ("check_in_id", "client_id", "day", "mood", "practice_done", "practice_minutes")
    CHECK_IN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_DONE_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    check_in_id: str
    client_id: str
    day: str
    mood: int
    practice_done: bool
    practice_minutes: int
    def __init__(self, check_in_id: _Optional[str] = ..., client_id: _Optional[str] = ..., day: _Optional[str] = ..., mood: _Optional[int] = ..., practice_done: _Optional[bool] = ..., practice_minutes: _Optional[int] = ...) -> None: ...

class GetClientEngagementRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class Factor(_message.Message):
    __slots__ = ("name", "value", "weight", "contribution", "explanation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    weight: float
    contribution: float
    explanation: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., weight: _Optional[float] = ..., contribution: _Optional[float] = ..., explanation: _Optional[str] = ...) -> None: ...

class RiskScore(_message.Message):
    __slots__ = ("score", "value", "elevated", "factors", "as_of")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ELEVATED_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    score: str
    value: float
    elevated: bool
    factors: _containers.RepeatedCompositeFieldContainer[Factor]
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, score: _Optional[str] = ..., value: _Optional[float] = ..., elevated: _Optional[bool] = ..., factors: _Optional[_Iterable[_Union[Factor, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WindowStats(_message.Message):
    __slots__ = ("days", "sessions_expected", "sessions_attended", "late", "left_early", "absent", "attendance_rate", "minutes_attended", "disconnections", "speaking_minutes", "chat_messages", "camera_on_ratio", "check_ins", "mean_mood", "practice_days", "practice_rate")
    DAYS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    LEFT_EARLY_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_MINUTES_FIELD_NUMBER: _ClassVar[int]
    CHAT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ON_RATIO_FIELD_NUMBER: _ClassVar[int]
    CHECK_INS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MOOD_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_DAYS_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_RATE_FIELD_NUMBER: _ClassVar[int]
    days: int
    sessions_expected: int
    sessions_attended: int
    late: int
    left_early: int
    absent: int
    attendance_rate: float
    minutes_attended: int
    disconnections: int
    speaking_minutes: float
    chat_messages: int
    camera_on_ratio: float
    check_ins: int
    mean_mood: float
    practice_days: int
    practice_rate: float
    def __init__(self, days: _Optional[int] = ..., sessions_expected: _Optional[int] = ..., sessions_attended: _Optional[int] = ..., late: _Optional[int] = ..., left_early: _Optional[int] = ..., absent: _Optional[int] = ..., attendance_rate: _Optional[float] = ..., minutes_attended: _Optional[int] = ..., disconnections: _Optional[int] = ..., speaking_minutes: _Optional[float] = ..., chat_messages: _Optional[int] = ..., camera_on_ratio: _Optional[float] = ..., check_ins: _Optional[int] = ..., mean_mood: _Optional[float] = ..., practice_days: _Optional[int] = ..., practice_rate: _Optional[float] = ...) -> None: ...

class ClientEngagement(_message.Message):
    __slots__ = ("client_id", "last_7_days", "last_28_days", "engagement_risk")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_7_DAYS_FIELD_NUMBER: _ClassVar[int]
    LAST_28_DAYS_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_RISK_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    last_7_days: WindowStats
    last_28_days: WindowStats
    engagement_risk: RiskScore
    def __init__(self, client_id: _Optional[str] = ..., last_7_days: _Optional[_Union[WindowStats, _Mapping]] = ..., last_28_days: _Optional[_Union[WindowStats, _Mapping]] = ..., engagement_risk: _Optional[_Union[RiskScore, _Mapping]] = ...) -> None: ...

class GetClinicianEngagementRequest(_message.Message):
    __slots__ = ("clinician_id",)
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    def __init__(self, clinician_id: _Optional[str] = ...) -> None: ...

class ClinicianEngagement(_message.Message):
    __slots__ = ("clinician_id", "on_screen_hours_today", "on_screen_hours_7_days", "back_to_back_today", "max_back_to_back_7_days", "caseload", "sessions_7_days", "burnout_risk")
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ON_SCREEN_HOURS_TODAY_FIELD_NUMBER: _ClassVar[int]
    ON_SCREEN_HOURS_7_DAYS_FIELD_NUMBER: _ClassVar[int]
    BACK_TO_BACK_TODAY_FIELD_NUMBER: _ClassVar[int]
    MAX_BACK_TO_BACK_7_DAYS_FIELD_NUMBER: _ClassVar[int]
    CASELOAD_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_7_DAYS_FIELD_NUMBER: _ClassVar[int]
    BURNOUT_RISK_FIELD_NUMBER: _ClassVar[int]
    clinician_id: str
    on_screen_hours_today: float
    on_screen_hours_7_days: float
    back_to_back_today: int
    max_back_to_back_7_days: int
    caseload: int
    sessions_7_days: int
    burnout_risk: RiskScore
    def __init__(self, clinician_id: _Optional[str] = ..., on_screen_hours_today: _Optional[float] = ..., on_screen_hours_7_days: _Optional[float] = ..., back_to_back_today: _Optional[int] = ..., max_back_to_back_7_days: _Optional[int] = ..., caseload: _Optional[int] = ..., sessions_7_days: _Optional[int] = ..., burnout_risk: _Optional[_Union[RiskScore, _Mapping]] = ...) -> None: ...

class GetRiskFactorsRequest(_message.Message):
    __slots__ = ("client_id", "clinician_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    clinician_id: str
    def __init__(self, client_id: _Optional[str] = ..., clinician_id: _Optional[str] = ...) -> None: ...

class RiskFactors(_message.Message):
    __slots__ = ("subject_id", "score")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    score: RiskScore
    def __init__(self, subject_id: _Optional[str] = ..., score: _Optional[_Union[RiskScore, _Mapping]] = ...) -> None: ...
