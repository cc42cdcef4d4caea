"""Verifies a record's CloudEvents envelope (Kafka binding, binary content mode) and decodes its payload.

The contract (docs/asyncapi.yaml, components/schemas/CloudEventsHeaders): headers ce_id, ce_type,
ce_source, ce_specversion (= "1.0"), ce_time (RFC 3339) and content-type are required; the
payload is the protobuf message named by ce_type (content-type application/protobuf,
ce_dataschema urn:iop:proto:<ce_type>) or a FHIR R4B resource as JSON (content-type
application/fhir+json, ce_type hl7.fhir.r4b.<resourceType>).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, symbol_database
from google.protobuf.message import DecodeError, Message

SPEC_VERSION = "1.0"
PROTOBUF = "application/protobuf"
FHIR_JSON = "application/fhir+json"
REQUIRED = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "content-type")
EVENTS_PACKAGE = "iop.events.v1"


class InvalidEnvelope(ValueError):
    """The record breaks the contract; `reason` says how (never contains payload data)."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    source: str
    subject: str
    time: datetime  # UTC
    content_type: str
    dataschema: str
    traceparent: str
    payload: dict[str, Any]  # the protobuf message as proto3 JSON, or the FHIR resource

    @property
    def time_text(self) -> str:
        """UTC, fixed width: sorts as text in the same order as in time."""
        return self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def load_event_types(package: str = EVENTS_PACKAGE) -> None:
    """Registers every generated message of the events package (import of iop/events/v1/*_pb2)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidEnvelope(f"ce_time is not RFC 3339: {text[:40]!r}") from exc
    if value.tzinfo is None:
        raise InvalidEnvelope("ce_time has no UTC offset")
    return value.astimezone(UTC)


def header_map(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, raw in headers:
        if raw is None:
            continue
        try:
            values[key] = raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidEnvelope(f"header {key} is not UTF-8") from exc
    return values


def decode(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> Event:
    """The verified event, or InvalidEnvelope with the reason."""
    h = header_map(headers)
    missing = [name for name in REQUIRED if not h.get(name)]
    if missing:
        raise InvalidEnvelope(f"missing CloudEvents headers: {', '.join(missing)}")
    if h["ce_specversion"] != SPEC_VERSION:
        raise InvalidEnvelope(f"unsupported ce_specversion {h['ce_specversion'][:20]!r}")
    time = parse_time(h["ce_time"])
    if value is None:
        raise InvalidEnvelope("record has no payload")
    content_type = h["content-type"]
    if content_type == PROTOBUF:
        payload = _protobuf_payload(h, value)
    elif content_type == FHIR_JSON:
        payload = _fhir_payload(h, value)
    else:
        raise InvalidEnvelope(f"unsupported content-type {content_type[:60]!r}")
    return Event(
        id=h["ce_id"],
        type=h["ce_type"],
        source=h["ce_source"],
        subject=h.get("ce_subject", ""),
        time=time,
        content_type=content_type,
        dataschema=h.get("ce_dataschema", ""),
        traceparent=h.get("traceparent", ""),
        payload=payload,
    )


def _protobuf_payload(h: dict[str, str], value: bytes) -> dict[str, Any]:
    ce_type = h["ce_type"]
    expected_schema = f"urn:iop:proto:{ce_type}"
    if h.get("ce_dataschema") and h["ce_dataschema"] != expected_schema:
        raise InvalidEnvelope(f"ce_dataschema does not name ce_type (expected {expected_schema})")
    try:
        cls = symbol_database.Default().GetSymbol(ce_type)
    except KeyError as exc:
        # A type newer than this partner's generated code: recorded, reprocess after upgrading.
        raise InvalidEnvelope(f"unknown ce_type {ce_type[:120]!r}") from exc
    message: Message = cls()
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise InvalidEnvelope(f"payload does not decode as {ce_type}") from exc
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _fhir_payload(h: dict[str, str], value: bytes) -> dict[str, Any]:
    try:
        resource = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEnvelope("FHIR payload is not JSON") from exc
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidEnvelope("FHIR payload has no resourceType")
    expected = f"hl7.fhir.r4b.{resource['resourceType']}"
    if h["ce_type"] != expected:
        raise InvalidEnvelope(f"ce_type does not match the FHIR resourceType (expected {expected})")
    return resource
