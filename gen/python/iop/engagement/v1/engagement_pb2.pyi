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
ATTENDANCE_STATUS_UNSPECIFIED: AttendanceStatus
ATTENDANCE_STATUS_EXPECTED: AttendanceStatus
ATTENDANCE_STATUS_ON_TIME: AttendanceStatus
ATTENDANCE_STATUS_LATE: AttendanceStatus
ATTENDANCE_STATUS_LEFT_EARLY: AttendanceStatus
ATTENDANCE_STATUS_ABSENT: AttendanceStatus

class GetSessionAttendanceRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AttendanceEntry(_message.Message):
    __slots__ = ("client_id", "status", "minutes_attended")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_ATTENDED_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: AttendanceStatus
    minutes_attended: int
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[_Union[AttendanceStatus, str]] = ..., minutes_attended: _Optional[int] = ...) -> None: ...

class SessionAttendance(_message.Message):
    __slots__ = ("session_id", "clinician_id", "starts_at", "ends_at", "entries")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLINICIAN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clinician_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    entries: _containers.RepeatedCompositeFieldContainer[AttendanceEntry]
    def __init__(self, session_id: _Optional[str] = ..., clinician_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[AttendanceEntry, _Mapping]]] = ...) -> None: ...
