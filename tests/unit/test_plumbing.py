"""Pure unit tests of the shared plumbing: envelope, auth, errors, outbox records."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from iop.events.v1 import scheduling_pb2
from services.plumbing import auth, paging
from services.plumbing.envelope import CloudEvent, EnvelopeError
from services.plumbing.errors import FieldViolations, InvalidArgument, Unauthenticated, bad_request_violations
from services.plumbing.outbox import OutgoingEvent, with_outbox
from services.plumbing.protos import request_time
from services.plumbing.settings import Settings
from services.plumbing.telemetry import current_span
from tests.support import isolated_settings


@pytest.fixture
def settings() -> Settings:
    return isolated_settings()


def test_cloud_event_round_trips_through_kafka_headers() -> None:
    payload = scheduling_pb2.SessionScheduled(session_id="s-1", client_ids=["k-1"])
    event = CloudEvent.new("/iop/scheduler", "s-1", payload)
    decoded = CloudEvent.from_kafka(event.headers(), event.data)
    assert decoded.id == event.id and decoded.type == "iop.events.v1.SessionScheduled"
    assert decoded.subject == "s-1" and decoded.time == event.time
    assert decoded.payload() == payload
    headers = dict(event.headers())
    assert headers["ce_dataschema"] == b"urn:iop:proto:iop.events.v1.SessionScheduled"
    assert headers["content-type"] == b"application/protobuf"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: [x for x in h if x[0] != "ce_id"], "missing CloudEvents headers: ce_id"),
        (lambda h: [(k, b"0.3" if k == "ce_specversion" else v) for k, v in h], "unsupported ce_specversion"),
        (lambda h: [(k, b"application/json" if k == "content-type" else v) for k, v in h], "content-type"),
        (lambda h: [(k, b"yesterday" if k == "ce_time" else v) for k, v in h], "RFC 3339"),
    ],
)
def test_malformed_envelopes_are_rejected(mutate, message: str) -> None:
    event = CloudEvent.new("/t", "s", scheduling_pb2.SessionScheduled(session_id="s"))
    with pytest.raises(EnvelopeError, match=message):
        CloudEvent.from_kafka(mutate(event.headers()), event.data)


def test_unknown_type_and_undecodable_payload_are_poison() -> None:
    event = CloudEvent.new("/t", "s", scheduling_pb2.SessionScheduled(session_id="s"))
    unknown = CloudEvent(event.id, "iop.events.v1.NoSuchEvent", "/t", "s", event.time, event.data)
    with pytest.raises(EnvelopeError, match="unknown event type"):
        unknown.payload()
    garbage = CloudEvent(event.id, event.type, "/t", "s", event.time, b"\xff\xff\xff")
    with pytest.raises(EnvelopeError, match="does not decode"):
        garbage.payload()


def test_tokens_carry_roles_and_are_checked_per_method(settings: Settings) -> None:
    token = auth.mint_token(settings, "app-1", ["platform"])
    principal = auth.verify_token(settings, f"Bearer {token}")
    assert principal.subject == "app-1" and principal.roles == frozenset({"platform"})
    access = {"/svc/Read": frozenset({"platform"}), "/svc/Write": frozenset({"supervisor"})}
    auth.authorize(principal, "/svc/Read", access)
    with pytest.raises(Exception, match="requires one of: supervisor"):
        auth.authorize(principal, "/svc/Write", access)
    with pytest.raises(Exception, match="not open to any role"):
        auth.authorize(principal, "/svc/Unlisted", access)


def test_expired_token_is_refused_even_after_it_was_cached(settings: Settings) -> None:
    token = auth.mint_token(settings, "app-2", ["clinician"], ttl_s=2)
    assert auth.verify_token(settings, f"Bearer {token}").subject == "app-2"
    time.sleep(2.1)
    with pytest.raises(Unauthenticated) as info:
        auth.verify_token(settings, f"Bearer {token}")
    assert "expired" in info.value.message


def test_unknown_roles_cannot_be_minted(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        auth.mint_token(settings, "x", ["admin"])


def test_field_violations_name_every_problem() -> None:
    v = FieldViolations()
    v.require(False, "a", "required")
    v.require(True, "b", "fine")
    v.add("c", "bad")
    with pytest.raises(InvalidArgument) as info:
        v.raise_if_any()
    status = info.value.to_status()
    from google.rpc import status_pb2

    rich = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    assert bad_request_violations(rich) == [("a", "required"), ("c", "bad")]


def test_page_tokens_round_trip_and_refuse_what_is_not_this_listings() -> None:
    v = FieldViolations()
    assert [paging.page_size(n, 100, 500, v) for n in (0, 1, 500, 501)] == [100, 1, 500, 500]
    token = paging.page_token(("List", "c-1"), [1733000000000, "tc-1"])
    assert paging.page_key(token, ("List", "c-1"), (int, str), v) == [1733000000000, "tc-1"]
    assert paging.page_key("", ("List", "c-1"), (int, str), v) is None and not v.items
    for bad in ("not a token", "é", token + "!", paging.page_token(("List", "c-1"), ["x", "tc-1"]), "W10="):
        assert paging.page_key(bad, ("List", "c-1"), (int, str), v) is None, bad
    assert paging.page_key(token, ("List", "c-2"), (int, str), v) is None  # another request's
    paging.page_size(-1, 100, 500, v)
    assert [f for f, _ in v.items] == ["page_token"] * 6 + ["page_size"]


def test_outbox_update_carries_state_and_events_in_one_write() -> None:
    update = with_outbox(
        {"$set": {"status": "booked"}},
        "/iop/scheduler",
        [OutgoingEvent("iop.scheduling.sessions.v1", "s-1", scheduling_pb2.SessionScheduled(session_id="s-1"))],
    )
    assert update["$set"] == {"status": "booked"}
    (entry,) = update["$push"]["outbox"]["$each"]
    assert entry["topic"] == "iop.scheduling.sessions.v1" and entry["key"] == "s-1"
    assert entry["type"] == "iop.events.v1.SessionScheduled"
    assert scheduling_pb2.SessionScheduled.FromString(entry["data"]).session_id == "s-1"


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(253_402_300_800, 0), (-62_135_596_801, 0), (10**12, 0), (1_700_000_000, -1), (1_700_000_000, 10**9)],
)
def test_a_timestamp_no_datetime_can_hold_is_invalid_argument_naming_its_field(seconds: int, nanos: int) -> None:
    request = scheduling_pb2.SessionScheduled(session_id="s")
    request.starts_at.seconds, request.starts_at.nanos = seconds, nanos
    with pytest.raises(InvalidArgument) as refused:
        request_time(request, "starts_at")
    assert refused.value.violations == [("starts_at", "not a valid timestamp (years 0001-9999, nanos 0-999999999)")]
    with pytest.raises(InvalidArgument) as nested:
        request_time(request, "starts_at", "plan.items[2].starts_at")
    assert [f for f, _ in nested.value.violations] == ["plan.items[2].starts_at"]


def test_request_time_reads_set_and_unset_timestamps() -> None:
    request = scheduling_pb2.SessionScheduled(session_id="s")
    assert request_time(request, "starts_at") is None
    request.starts_at.seconds = 1_700_000_000
    assert request_time(request, "starts_at") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_an_error_escaping_a_span_leaves_its_type_and_frames_not_its_message() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    stored = {"name": "Jane" + " Doe"}
    with pytest.raises(KeyError), current_span(provider.get_tracer("test"), "work"):
        raise KeyError(f"no plan for {stored['name']}")  # a message may quote request or stored data
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "KeyError"
    (event,) = span.events
    assert event.name == "exception" and dict(event.attributes or {})["exception.type"] == "KeyError"
    assert "test_an_error_escaping" in str(dict(event.attributes or {})["exception.stacktrace"])
    assert "Jane Doe" not in span.to_json()
