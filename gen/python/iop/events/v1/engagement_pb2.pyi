import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoSignal(_message.Message):
    __slots__ = ("signal_id", "session_id", "participant_id", "kind", "occurred_at", "value", "leave_reason", "modality", "received_at", "connection_dropped_event_id")
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEAVE_REASON_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_DROPPED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    session_id: str
    participant_id: str
    kind: str
    occurred_at: _timestamp_pb2.Timestamp
    value: float
    leave_reason: str
    modality: str
    received_at: _timestamp_pb2.Timestamp
    connection_dropped_event_id: str
    def __init__(self, signal_id: _Optional[str] = ..., session_id: _Optional[str] = ..., participant_id: _Optional[str] = ..., kind: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., leave_reason: _Optional[str] = ..., modality: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connection_dropped_event_id: _Optional[str] = ...) -> None: ...

class ConnectionDropped(_message.Message):
    __slots__ = ("session_id", "client_id", "dropped_at", "clinician_id", "reason", "program_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_AT_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    dropped_at: _timestamp_pb2.Timestamp
    clinician_id: str
    reason: str
    program_id: str
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., dropped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clinician_id: _Optional[str] = ..., reason: _Optional[str] = ..., program_id: _Optional[str] = ...) -> None: ...

class AttendanceRecorded(_message.Message):
    __slots__ = ("session_id", "client_id", "status", "minutes_attended", "disconnections", "reconnections", "modality", "session_starts_at", "program_id", "clinician_id", "attendance_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    RECONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SESSION_STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_id: str
    status: str
    minutes_attended: int
    disconnections: int
    reconnections: int
    modality: str
    session_starts_at: _timestamp_pb2.Timestamp
    program_id: str
    clinician_id: str
    attendance_id: str
    def __init__(self, session_id: _Optional[str] = ..., client_id: _Optional[str] = ..., status: _Optional[str] = ..., minutes_attended: _Optional[int] = ..., disconnections: _Optional[int] = ..., reconnections: _Optional[int] = ..., modality: _Optional[str] = ..., session_starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., program_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., attendance_id: _Optional[str] = ...) -> None: ...

class OutcomeRecorded(_message.Message):
    __slots__ = ("client_id", "instrument", "total_score", "item_scores", "recorded_at", "submission_id", "session_id", "severity")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    ITEM_SCORES_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    instrument: str
    total_score: int
    item_scores: _containers.RepeatedScalarFieldContainer[int]
    recorded_at: _timestamp_pb2.Timestamp
    submission_id: str
    session_id: str
    severity: str
    def __init__(self, client_id: _Optional[str] = ..., instrument: _Optional[str] = ..., total_score: _Optional[int] = ..., item_scores: _Optional[_Iterable[int]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submission_id: _Optional[str] = ..., session_id: _Optional[str] = ..., severity: _Optional[str] = ...) -> None: ...

class CrisisSignal(_message.Message):
    __slots__ = ("client_id", "source", "value", "observed_at", "submission_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    source: str
    value: int
    observed_at: _timestamp_pb2.Timestamp
    submission_id: str
    def __init__(self, client_id: _Optional[str] = ..., source: _Optional[str] = ..., value: _Optional[int] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submission_id: _Optional[str] = ...) -> None: ...

class ScoreFactor(_message.Message):
    __slots__ = ("name", "value", "weight", "explanation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    weight: float
    explanation: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., weight: _Optional[float] = ..., explanation: _Optional[str] = ...) -> None: ...

class ScoreThresholdCrossed(_message.Message):
    __slots__ = ("subject_id", "score", "value", "direction", "factors", "at")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    score: str
    value: float
    direction: str
    factors: _containers.RepeatedCompositeFieldContainer[ScoreFactor]
    at: _timestamp_pb2.Timestamp
    def __init__(self, subject_id: _Optional[str] = ..., score: _Optional[str] = ..., value: _Optional[float] = ..., direction: _Optional[str] = ..., factors: _Optional[_Iterable[_Union[ScoreFactor, _Mapping]]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OutreachTaskCreated(_message.Message):
    __slots__ = ("task_id", "client_id", "reason", "at", "factors", "channel")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    client_id: str
    reason: str
    at: _timestamp_pb2.Timestamp
    factors: _containers.RepeatedCompositeFieldContainer[ScoreFactor]
    channel: str
    def __init__(self, task_id: _Optional[str] = ..., client_id: _Optional[str] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., factors: _Optional[_Iterable[_Union[ScoreFactor, _Mapping]]] = ..., channel: _Optional[str] = ...) -> None: ...

class CheckInRecorded(_message.Message):
    __slots__ = ("check_in_id", "client_id", "day", "mood", "practice_done", "practice_minutes", "recorded_at")
    CHECK_IN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_DONE_FIELD_NUMBER: _ClassVar[int]
    PRACTICE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    check_in_id: str
    client_id: str
    day: str
    mood: int
    practice_done: bool
    practice_minutes: int
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, check_in_id: _Optional[str] = ..., client_id: _Optional[str] = ..., day: _Optional[str] = ..., mood: _Optional[int] = ..., practice_done: _Optional[bool] = ..., practice_minutes: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
