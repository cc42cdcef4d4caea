"""The AsyncAPI generator: structure, determinism, --check; independent of what the services declare."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from services.plumbing.bus import Topic
from services.plumbing.ops import asyncapi
from services.plumbing.ops.catalogue import (
    DeclaredTopic,
    EventCatalogue,
    discover_messages,
    discover_topics,
    load_catalogue,
    proto_comments,
)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _synthetic_catalogue() -> EventCatalogue:
    messages = discover_messages()
    assert len(messages) >= 2, "the generated event modules should hold messages"
    first, second = list(messages)[:2]
    topics = [
        DeclaredTopic(
            Topic("t.a.one.v1", "thing_id", f"Carries {first} and {second.rsplit('.', 1)[1]}.", partner_facing=True),
            "a",
        ),
        DeclaredTopic(
            Topic(
                "t.a.fhir.v1",
                "client_id",
                "FHIR R4B Observation JSON, content-type application/fhir+json.",
                partitions=6,
                partner_facing=True,
            ),
            "a",
        ),
        DeclaredTopic(Topic("t.a.internal.v1", "x", f"{first}, internal only."), "a"),
    ]
    return EventCatalogue(topics=topics, messages=messages, comments={})


def test_document_structure_from_synthetic_topics() -> None:
    catalogue = _synthetic_catalogue()
    doc = asyncapi.build_document(catalogue)
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {"t_a_one_v1", "t_a_fhir_v1"}  # the internal topic is left out
    one = doc["channels"]["t_a_one_v1"]
    first, second = list(catalogue.messages)[:2]
    assert one["address"] == "t.a.one.v1"
    assert one["x-iop-key"] == "thing_id"
    assert one["bindings"]["kafka"]["topicConfiguration"]["retention.ms"] == Topic("x", "k", "d").retention_ms
    assert one["x-iop-guarantees"]["idempotencyKey"].startswith("ce_id")
    assert sorted(one["messages"]) == sorted([first.rsplit(".", 1)[1], second.rsplit(".", 1)[1]])
    fhir = doc["channels"]["t_a_fhir_v1"]
    assert list(fhir["messages"]) == ["FhirObservation"]
    assert fhir["bindings"]["kafka"]["partitions"] == 6
    observation = doc["components"]["messages"]["hl7.fhir.r4b.Observation"]
    assert observation["contentType"] == "application/fhir+json"
    # Every protobuf message: named by its full name, ce_type pinned to it, payload schema with its fields.
    for name in (first, second):
        message = doc["components"]["messages"][name]
        assert message["name"] == name
        pinned = message["headers"]["allOf"][1]["properties"]
        assert pinned["ce_type"] == {"const": name}
        schema = _resolve(doc, message["payload"]["$ref"])
        desc = catalogue.messages[name]
        assert set(schema["properties"]) == {f.json_name for f in desc.fields}
        for f in desc.fields:
            assert schema["properties"][f.json_name]["x-protobuf-field-number"] == f.number
    headers = doc["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce_id", "ce_type", "ce_source", "ce_specversion"} <= set(headers["required"])
    assert {"ce_time", "ce_subject", "ce_dataschema", "content-type", "traceparent"} <= set(headers["properties"])
    for op in doc["operations"].values():
        assert op["action"] == "send"
    for ref in _refs(doc):  # nothing dangles
        _resolve(doc, ref)


def test_document_from_the_real_declarations_is_consistent() -> None:
    catalogue = load_catalogue()
    doc = asyncapi.build_document(catalogue)
    partner = {d.topic.name for d in catalogue.topics if d.topic.partner_facing}
    assert {c["address"] for c in doc["channels"].values()} == partner
    for ref in _refs(doc):
        _resolve(doc, ref)
    for name, message in doc["components"]["messages"].items():
        assert message["headers"]["allOf"][1]["properties"]["ce_type"] == {"const": name}


def test_rendering_is_deterministic() -> None:
    catalogue = load_catalogue()
    text = asyncapi.render(asyncapi.build_document(catalogue))
    shuffled = list(catalogue.topics)
    random.Random(7).shuffle(shuffled)
    again = EventCatalogue(shuffled, dict(reversed(list(catalogue.messages.items()))), catalogue.comments)
    assert asyncapi.render(asyncapi.build_document(again)) == text
    assert "&id" not in text and "*id" not in text  # no YAML aliases
    assert yaml.safe_load(text)["asyncapi"] == "3.0.0"


def test_check_mode_detects_a_stale_or_missing_file(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    assert asyncapi.main(["--check", "--output", str(out)]) == 1  # missing
    assert asyncapi.main(["--output", str(out)]) == 0
    assert asyncapi.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace("asyncapi: 3.0.0", "asyncapi: 3.0.1"))
    assert asyncapi.main(["--check", "--output", str(out)]) == 1


def test_topics_declared_twice_belong_to_the_domain_owner() -> None:
    topics, _ = discover_topics()
    names = [d.topic.name for d in topics]
    assert names == sorted(set(names))  # one entry per topic
    for declared in topics:
        domain = declared.topic.name.split(".")[1]
        if declared.also_declared_by:
            assert declared.owner[:5] == domain[:5], declared


def test_comments_come_from_the_proto_source(tmp_path: Path) -> None:
    pkg = tmp_path / "x" / "v1"
    pkg.mkdir(parents=True)
    (pkg / "things.proto").write_text(
        'syntax = "proto3";\npackage x.v1;\n\n'
        "// A thing happened.\nmessage ThingHappened {\n"
        "  string thing_id = 1; // opaque id\n"
        "  // How it went.\n  Outcome outcome = 2;\n}\n\n"
        "enum Outcome {\n  OUTCOME_UNSPECIFIED = 0;\n  OUTCOME_GOOD = 1; // it went well\n}\n"
    )
    comments = proto_comments(tmp_path, "x/v1")
    assert comments == {
        "x.v1.ThingHappened": "A thing happened.",
        "x.v1.ThingHappened.thing_id": "opaque id",
        "x.v1.ThingHappened.outcome": "How it went.",
        "x.v1.Outcome.OUTCOME_GOOD": "it went well",
    }
