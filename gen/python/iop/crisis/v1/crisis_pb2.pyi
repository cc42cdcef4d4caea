import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iop.events.v1 import crisis_pb2 as _crisis_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("client_id", "level", "source", "updated_at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    level: _crisis_pb2.RiskLevel
    source: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., level: _Optional[_Union[_crisis_pb2.RiskLevel, str]] = ..., source: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
