"""Generates docs/asyncapi.yaml (AsyncAPI 3.0) from the topic declarations and the event protos.

    python -m services.plumbing.ops.asyncapi            # (re)write docs/asyncapi.yaml
    python -m services.plumbing.ops.asyncapi --check    # exit 1 when docs/asyncapi.yaml is stale (CI)

One channel per partner-facing topic (key, retention, guarantees, the messages it
carries), one component message per payload type (protobuf full name, every field
with its type and its comment from the .proto source) and the CloudEvents headers
every record carries. See services/plumbing/ops/catalogue.py for how topics and
their message types are discovered.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from services.plumbing.envelope import CONTENT_TYPE, SPEC_VERSION, dataschema_for
from services.plumbing.ops.catalogue import ROOT, DeclaredTopic, EventCatalogue, load_catalogue, referenced_types

OUTPUT = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DOC_VERSION = "1.0.0"
PROTOBUF_FORMAT = "application/vnd.google.protobuf;version=3"

GUARANTEES = {
    "ordering": "per key: records with the same key are on one partition, in the order they were published",
    "delivery": "at-least-once: a record may be delivered more than once (producer retries, replays)",
    "idempotencyKey": "ce_id: the same event always has the same ce_id; de-duplicate on it",
    "payload": "the ce_type header names the payload message; unknown ce_type values must be skipped, not failed",
    "compatibility": "within a topic version (.vN) fields are only added, never renumbered, renamed or removed",
}

HEADERS: dict[str, dict[str, Any]] = {
    "ce_id": {
        "type": "string",
        "description": "Event id, unique per event and stable across redeliveries: the idempotency key.",
    },
    "ce_type": {
        "type": "string",
        "description": "Protobuf full name of the payload message (or hl7.fhir.r4b.<Resource> for FHIR JSON payloads).",
    },
    "ce_source": {"type": "string", "description": "Producing service, e.g. /iop/scheduler."},
    "ce_specversion": {"type": "string", "const": SPEC_VERSION, "description": "CloudEvents spec version."},
    "ce_time": {"type": "string", "format": "date-time", "description": "When the fact happened (RFC 3339)."},
    "ce_subject": {"type": "string", "description": "The aggregate id; equals the record key (opaque, never PHI)."},
    "ce_dataschema": {
        "type": "string",
        "description": f"Schema of the payload: {dataschema_for('<ce_type>')} for protobuf payloads.",
    },
    "content-type": {
        "type": "string",
        "enum": [CONTENT_TYPE, "application/fhir+json"],
        "description": "Payload encoding (CloudEvents Kafka binding, binary content mode).",
    },
    "traceparent": {"type": "string", "description": "W3C trace context of the producing operation."},
    "tracestate": {"type": "string", "description": "W3C trace state (optional)."},
}
REQUIRED_HEADERS = ["ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "content-type"]

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_PROTO_TYPE_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "sint64",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.Int32Value": {"type": "integer"},
    "google.protobuf.DoubleValue": {"type": "number"},
}


def channel_id(topic_name: str) -> str:
    return topic_name.replace(".", "_")


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _field_type_name(f: FieldDescriptor) -> str:
    if f.message_type is not None:
        return f.message_type.full_name
    if f.enum_type is not None:
        return f.enum_type.full_name
    return _PROTO_TYPE_NAMES[f.type]


def _value_schema(f: FieldDescriptor) -> dict[str, Any]:
    if f.message_type is not None:
        return dict(_WELL_KNOWN.get(f.message_type.full_name) or _ref("schemas", f.message_type.full_name))
    if f.enum_type is not None:
        return _ref("schemas", f.enum_type.full_name)
    return dict(_SCALARS[f.type])


def _field_schema(f: FieldDescriptor, comments: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any]
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        value = f.message_type.fields_by_name["value"]
        schema = {"type": "object", "additionalProperties": _value_schema(value)}
        type_name = f"map<{_field_type_name(f.message_type.fields_by_name['key'])}, {_field_type_name(value)}>"
    elif f.is_repeated:
        schema = {"type": "array", "items": _value_schema(f)}
        type_name = f"repeated {_field_type_name(f)}"
    else:
        schema = _value_schema(f)
        type_name = _field_type_name(f)
    if "$ref" in schema:  # siblings of $ref are ignored by JSON Schema tools: wrap it
        schema = {"allOf": [schema]}
    comment = comments.get(f.full_name)
    if comment:
        schema["description"] = comment
    schema["x-protobuf-type"] = type_name
    schema["x-protobuf-field-number"] = f.number
    return schema


def message_schema(desc: Descriptor, comments: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "title": desc.full_name}
    if comments.get(desc.full_name):
        schema["description"] = comments[desc.full_name]
    schema["x-protobuf-message"] = desc.full_name
    schema["x-proto-file"] = f"proto/{desc.file.name}"
    schema["properties"] = {
        f.json_name: _field_schema(f, comments) for f in sorted(desc.fields, key=lambda f: f.number)
    }
    return schema


def enum_schema(desc: EnumDescriptor, comments: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "title": desc.full_name}
    if comments.get(desc.full_name):
        schema["description"] = comments[desc.full_name]
    schema["enum"] = [v.name for v in desc.values]
    values = {
        v.name: comments[f"{desc.full_name}.{v.name}"] for v in desc.values if f"{desc.full_name}.{v.name}" in comments
    }
    if values:
        schema["x-enum-descriptions"] = values
    schema["x-protobuf-enum"] = desc.full_name
    return schema


def _headers_for(ce_type: str, content_type: str, dataschema: str | None) -> dict[str, Any]:
    fixed: dict[str, Any] = {"ce_type": {"const": ce_type}, "content-type": {"const": content_type}}
    if dataschema:
        fixed["ce_dataschema"] = {"const": dataschema}
    return {"allOf": [_ref("schemas", "CloudEventsHeaders"), {"type": "object", "properties": fixed}]}


def _key_binding(declared: DeclaredTopic) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": f"{declared.topic.key} (opaque id, never PHI)"},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def build_document(catalogue: EventCatalogue) -> dict[str, Any]:
    """The AsyncAPI document as plain data (deterministic: everything sorted by name)."""
    partner_topics = [d for d in catalogue.topics if d.topic.partner_facing]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    payload_roots: list[Descriptor] = []

    for declared in partner_topics:
        topic = declared.topic
        cid = channel_id(topic.name)
        channel_messages: dict[str, Any] = {}
        for full_name in catalogue.message_types(topic):
            desc = catalogue.messages[full_name]
            payload_roots.append(desc)
            channel_messages[desc.name] = _ref("messages", full_name)
            messages.setdefault(
                full_name,
                {
                    "name": full_name,
                    "title": desc.name,
                    **({"summary": catalogue.comments[full_name]} if full_name in catalogue.comments else {}),
                    "contentType": CONTENT_TYPE,
                    "headers": _headers_for(full_name, CONTENT_TYPE, dataschema_for(full_name)),
                    "payload": _ref("schemas", full_name),
                    "x-protobuf-message": full_name,
                    "x-protobuf-schema-format": PROTOBUF_FORMAT,
                },
            )
        for resource in catalogue.fhir_resources(topic):
            ce_type = f"hl7.fhir.r4b.{resource}"
            channel_messages[f"Fhir{resource}"] = _ref("messages", ce_type)
            messages.setdefault(
                ce_type,
                {
                    "name": ce_type,
                    "title": f"FHIR R4B {resource}",
                    "summary": f"A FHIR R4B {resource} resource as JSON.",
                    "contentType": "application/fhir+json",
                    "headers": _headers_for(ce_type, "application/fhir+json", None),
                    "payload": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"const": resource}},
                    },
                    "externalDocs": {"url": f"https://hl7.org/fhir/R4B/{resource.lower()}.html"},
                },
            )
        kafka_binding: dict[str, Any] = {
            "topic": topic.name,
            "topicConfiguration": {"retention.ms": topic.retention_ms},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
        if topic.partitions:
            kafka_binding["partitions"] = topic.partitions
        channels[cid] = {
            "address": topic.name,
            "title": topic.name,
            "description": topic.description,
            "messages": channel_messages,
            "bindings": {"kafka": kafka_binding},
            "x-iop-key": topic.key,
            "x-iop-producer": declared.owner,
            "x-iop-retention": _retention_text(topic.retention_ms),
            "x-iop-partitions": topic.partitions or "cluster default (KAFKA_TOPIC_PARTITIONS)",
            "x-iop-guarantees": GUARANTEES,
        }
        operations[f"publish_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "title": f"{declared.owner} publishes on {topic.name}",
            "summary": "Partners subscribe with their own consumer group, commit after applying, "
            "and de-duplicate by ce_id.",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in channel_messages],
        }

    msg_types, enum_types = referenced_types(payload_roots)
    schemas: dict[str, Any] = {
        "CloudEventsHeaders": {
            "type": "object",
            "description": "CloudEvents 1.0 attributes as Kafka headers (binary content mode), plus W3C trace context.",
            "required": REQUIRED_HEADERS,
            "properties": HEADERS,
        }
    }
    for name, mdesc in msg_types.items():
        schemas[name] = message_schema(mdesc, catalogue.comments)
    for name, edesc in enum_types.items():
        schemas[name] = enum_schema(edesc, catalogue.comments)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "IOP platform partner events",
            "version": DOC_VERSION,
            "description": (
                "Partner-facing Kafka topics of the IOP platform. Generated by "
                "`python -m services.plumbing.ops.asyncapi` from services/<service>/topics.py and "
                "proto/iop/events/v1/*.proto: do not edit by hand. Every record is a CloudEvent in "
                "binary content mode: attributes in ce_* headers, payload in the value (protobuf, "
                "or FHIR JSON where the channel says so), the record key is the aggregate id. "
                "See docs/partner-contracts.md."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local broker (deploy/local/infra.sh); production brokers are given per partner.",
            }
        },
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": schemas,
        },
    }


def _retention_text(ms: int) -> str:
    days = ms / (24 * 3600 * 1000)
    return f"{days:g} days" if days >= 1 else f"{ms} ms"


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated values in full (no &anchors / *aliases): easier for people and tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: dict[str, Any]) -> str:
    header = "# Generated by `python -m services.plumbing.ops.asyncapi`; do not edit by hand.\n"
    body = yaml.dump(document, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=110)
    return header + body


def summary(catalogue: EventCatalogue) -> str:
    """Markdown table: every declared topic, whether partners get it, key, retention, message types."""
    lines = ["| topic | partner | producer | key | retention | messages |", "|---|---|---|---|---|---|"]
    for d in catalogue.topics:
        t = d.topic
        names = [m.rsplit(".", 1)[1] for m in catalogue.message_types(t)]
        names += [f"FHIR {r} (JSON)" for r in catalogue.fhir_resources(t)]
        lines.append(
            f"| {t.name} | {'yes' if t.partner_facing else 'no'} | {d.owner} | {t.key} | "
            f"{_retention_text(t.retention_ms)} | {', '.join(names) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.plumbing.ops.asyncapi", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="where the document goes (default docs/asyncapi.yaml)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the file differs from what would be generated"
    )
    parser.add_argument("--summary", action="store_true", help="print the topic catalogue as a table; write nothing")
    args = parser.parse_args(argv)
    catalogue = load_catalogue()
    if args.summary:
        print(summary(catalogue))
        return 0
    for warning in catalogue.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = render(build_document(catalogue))
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current == text:
            print(f"{output} is up to date")
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(output), "generated", lineterm="", n=1)
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{output} is stale: run `python -m services.plumbing.ops.asyncapi`", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output} ({len(build_document(catalogue)['channels'])} channels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
