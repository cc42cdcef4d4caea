"""CloudEvents 1.0, Kafka protocol binding, binary content mode.

Attributes travel as `ce_*` headers, the payload is a protobuf message from
proto/ (content-type application/protobuf, `ce_dataschema` names the message),
and trace context travels as `traceparent`/`tracestate` headers.
The record key is the aggregate id: opaque, never PHI.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf import symbol_database
from google.protobuf.message import DecodeError, Message

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
REQUIRED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_specversion")

KafkaHeaders = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A record that is not a valid CloudEvent of a known type: a poison event."""


def dataschema_for(message_type: str) -> str:
    return f"urn:iop:proto:{message_type}"


@dataclass(frozen=True)
class CloudEvent:
    """One event: CloudEvents attributes plus the protobuf payload."""

    id: str
    type: str  # the protobuf full name of the payload, e.g. iop.events.v1.SessionScheduled
    source: str  # the producing service, e.g. /iop/scheduler
    subject: str  # the aggregate id (also the record key)
    time: datetime
    data: bytes
    extensions: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def new(source: str, subject: str, message: Message, event_id: str | None = None) -> CloudEvent:
        return CloudEvent(
            id=event_id or str(uuid.uuid4()),
            type=message.DESCRIPTOR.full_name,
            source=source,
            subject=subject,
            time=datetime.now(UTC),
            data=message.SerializeToString(),
        )

    @property
    def dataschema(self) -> str:
        return dataschema_for(self.type)

    def headers(self) -> KafkaHeaders:
        out: KafkaHeaders = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_dataschema", self.dataschema.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        out.extend((f"ce_{k}", v.encode()) for k, v in self.extensions.items())
        return out

    def payload(self) -> Message:
        """Decode the payload with the message class registered for `type`."""
        try:
            cls = symbol_database.Default().GetSymbol(self.type)
        except KeyError as exc:
            raise EnvelopeError(f"unknown event type {self.type!r}") from exc
        message: Message = cls()
        try:
            message.ParseFromString(self.data)
        except DecodeError as exc:
            raise EnvelopeError(f"payload does not decode as {self.type}: {exc}") from exc
        return message

    @staticmethod
    def from_kafka(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> CloudEvent:
        values: dict[str, str] = {}
        for key, raw in headers:
            if raw is None:
                continue
            try:
                values[key] = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key} is not UTF-8") from exc
        missing = [h for h in REQUIRED_HEADERS if not values.get(h)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if values["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {values['ce_specversion']!r}")
        content_type = values.get("content-type", CONTENT_TYPE)
        if content_type != CONTENT_TYPE:
            raise EnvelopeError(f"unsupported content-type {content_type!r}")
        if value is None:
            raise EnvelopeError("event has no payload")
        try:
            time = datetime.fromisoformat(values["ce_time"]) if "ce_time" in values else datetime.now(UTC)
        except ValueError as exc:
            raise EnvelopeError(f"ce_time is not RFC 3339: {values['ce_time']!r}") from exc
        known = {*REQUIRED_HEADERS, "ce_subject", "ce_time", "ce_dataschema"}
        extensions = {k[3:]: v for k, v in values.items() if k.startswith("ce_") and k not in known}
        return CloudEvent(
            id=values["ce_id"],
            type=values["ce_type"],
            source=values["ce_source"],
            subject=values.get("ce_subject", ""),
            time=time,
            data=value,
            extensions=extensions,
        )
