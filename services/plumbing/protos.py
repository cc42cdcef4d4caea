"""Conversions between protobuf well-known types and Python values."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.plumbing.errors import InvalidArgument


def to_datetime(ts: Timestamp) -> datetime | None:
    """None for an unset timestamp (seconds and nanos both zero)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def request_time(message: Message, field: str, path: str = "") -> datetime | None:
    """A request's timestamp field as a datetime (None when unset); one outside what a Timestamp
    may hold (years 1-9999, nanos 0-999,999,999) is INVALID_ARGUMENT naming the field (`path`:
    its path in the request, for a field of a nested message)."""
    try:
        return to_datetime(getattr(message, field))
    except (ValueError, OverflowError):
        raise InvalidArgument([(path or field, "not a valid timestamp (years 0001-9999, nanos 0-999999999)")]) from None


def to_timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        ts.FromDatetime(value)
    return ts
