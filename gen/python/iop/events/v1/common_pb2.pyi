from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Modality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODALITY_UNSPECIFIED: _ClassVar[Modality]
    MODALITY_VIDEO: _ClassVar[Modality]
    MODALITY_AUDIO_ONLY: _ClassVar[Modality]
    MODALITY_MIXED: _ClassVar[Modality]
MODALITY_UNSPECIFIED: Modality
MODALITY_VIDEO: Modality
MODALITY_AUDIO_ONLY: Modality
MODALITY_MIXED: Modality

class ClientLocation(_message.Message):
    __slots__ = ("state", "county_fips", "postal_code", "address_line", "city", "verified")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTY_FIPS_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_LINE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    state: str
    county_fips: str
    postal_code: str
    address_line: str
    city: str
    verified: bool
    def __init__(self, state: _Optional[str] = ..., county_fips: _Optional[str] = ..., postal_code: _Optional[str] = ..., address_line: _Optional[str] = ..., city: _Optional[str] = ..., verified: _Optional[bool] = ...) -> None: ...
