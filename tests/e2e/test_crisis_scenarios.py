"""PRODUCT.md scenario 1, disconnection during crisis, end to end and as ONE trace.

A client flagged at high risk (C-SSRS) with a safety plan checks in from San Francisco, the
session starts, and the video platform reports the client dropped off. Within a second the crisis
service opens an alert, the clinician gets a callback task on the backup phone with the local
crisis resources, on-call is notified; nobody reaches the client, so the ladder moves on: on-call
clinician, emergency contact, local emergency services for the verified location. Every step is
an event, and the chain from the webhook's span to the last rung is one trace in Zipkin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from iop.crisis.v1 import crisis_pb2
from iop.events.v1 import crisis_pb2 as ev
from services.crisis import topics
from services.plumbing.settings import Settings
from services.plumbing.zipkin_export import ZipkinSpanProcessor
from tests.integration.test_crisis_durability import PagingGateway
from tests.integration.test_crisis_support import (
    Collector,
    Producer,
    ensure_consumed_topics,
    for_client,
    high_risk_request,
    md,
    policy_file,
    safety_plan,
    skip_backlog,
    start,
    stub,
    uid,
)
from tests.support import ServiceProcess, wait_for_trace

pytestmark = pytest.mark.e2e
# the test's phone numbers (+1 415 555-0199 / -0134 / 800 555-0100) in any spelling
PHONE = re.compile(r"555\D?01\d\d")
# Deadline of the test's own calls: FerretDB answers a freshly started service's first calls
# slowly on a loaded machine (tests/support.py). Not what this test checks.
DEADLINE_S = 30


@pytest.fixture
async def stack(tmp_path: Path, settings: Settings) -> AsyncIterator[tuple[ServiceProcess, PagingGateway]]:
    await ensure_consumed_topics(settings)
    skip_backlog(settings)
    gateway = await PagingGateway(delay_s=0.0).start()
    env = {
        "CRISIS_POLICY_FILE": str(policy_file(tmp_path, [0, 1.0, 1.0, 1.0])),
        "CRISIS_PAGING_URL": f"http://127.0.0.1:{gateway.port}/page",
        "CRISIS_PAGING_TIMEOUT_S": "3",  # the shared 2-core machine is slow under load
    }
    proc = start(ServiceProcess("crisis", env=env))
    try:
        yield proc, gateway
    finally:
        assert proc.stop() == 0
        await gateway.stop()


async def test_disconnection_during_crisis_is_escalated_as_one_trace(stack, settings: Settings) -> None:
    crisis, gateway = stack
    client, session, clinician = uid("client"), uid("session"), uid("clin")
    producer = await Producer(settings).start()
    out = await Collector(settings, [t.name for t in topics.ALL]).start()
    channel, api = stub(crisis.target)
    try:
        async with channel:
            # Before the session: a safety plan with a consented emergency contact, a high C-SSRS
            # screen (by a supervisor: the session that makes the clinician the client's comes next).
            await api.SaveSafetyPlan(
                crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client)),
                metadata=md(settings, "supervisor"),
                timeout=DEADLINE_S,
            )
            risk = await api.AssessCssrs(
                high_risk_request(client), metadata=md(settings, "supervisor"), timeout=DEADLINE_S
            )
            assert risk.level == ev.RISK_LEVEL_HIGH
            # The scheduler: session booked with a backup line, client checks in (verified address), session live.
            await producer.session_live(session, client, clinician)
            for _ in range(150):
                card = await api.GetCrisisCard(
                    crisis_pb2.GetCrisisCardRequest(client_id=client),
                    metadata=md(settings, "supervisor"),
                    timeout=DEADLINE_S,
                )
                if card.location_session_id == session:
                    break
                await asyncio.sleep(0.1)
            assert card.resources.region_id == "US-CA-06075", card

            # The video platform's webhook (engagement) reports the drop: the root of the trace.
            # (exported from a background thread: the paging gateway shares this event loop)
            provider = TracerProvider(resource=Resource.create({"service.name": "video-webhook"}))
            provider.add_span_processor(ZipkinSpanProcessor(settings.zipkin_endpoint))
            tracer = provider.get_tracer("e2e")
            with tracer.start_as_current_span("POST /webhooks/video participant_left", kind=SpanKind.SERVER) as root:
                trace_id = format(root.get_span_context().trace_id, "032x")
                dropped = await producer.drop(session, client, clinician)

            opened = await out.wait_for(for_client(client, "AlertOpened"))
            assert len(opened) == 1
            alert = opened[0][2]
            # opened promptly after the drop, by the drop (one trace, below); the 1 s target is measured
            # by the crisis benchmark (tests/bench/crisis_bench.py), not by one sample on a shared machine
            assert alert.trigger_event_id == dropped.id
            assert 0 <= (opened[0][1].time - dropped.time).total_seconds() < 10, "alert not opened promptly"
            created = await out.wait_for(for_client(client, "CrisisTaskCreated"), count=2)
            tasks = {t[2].kind: t[2] for t in reversed(created)}  # the first task of each kind
            callback = tasks["CALLBACK"]
            assert callback.assignee_id == clinician and callback.callback_phone == "+14155550134"
            assert callback.backup_line == "+18005550100"
            assert callback.resources.mobile_crisis.phone and callback.resources.emergency_departments
            assert tasks["ON_CALL_NOTIFICATION"].assignee_id == "oncall-test"

            # Nobody reaches the client: the ladder moves on, rung by rung, each one an event.
            rungs = [e[2] for e in await out.wait_for(for_client(client, "AlertEscalated"), count=3, timeout_s=20)]
            assert [(r.step_index, r.step) for r in rungs] == [
                (1, ev.LADDER_STEP_ON_CALL_CLINICIAN),
                (2, ev.LADDER_STEP_EMERGENCY_CONTACT),
                (3, ev.LADDER_STEP_LOCAL_EMERGENCY_SERVICES),
            ]
            assert all(r.delivery_status == "DELIVERED" for r in rungs), rungs
            assert {r["idempotency_key"] for r in gateway.requests} >= {f"{alert.alert_id}:{i}" for i in (1, 2, 3)}
            # the rung's task is published with its escalation, but on the tasks topic: it can come second
            is_task = for_client(client, "CrisisTaskCreated")
            emergency = [t[2] for t in await out.wait_for(lambda *e: is_task(*e) and e[2].kind == "EMERGENCY_SERVICES")]
            assert emergency and emergency[0].resources.psap_phone and emergency[0].location.city == "San Francisco"

            card = await api.GetCrisisCard(  # as the session's clinician: they treat the client
                crisis_pb2.GetCrisisCardRequest(client_id=client),
                metadata=md(settings, "clinician", clinician),
                timeout=DEADLINE_S,
            )
            assert card.active_alert.alert_id == alert.alert_id
            assert card.active_alert.status == ev.ALERT_STATUS_ESCALATED and card.active_alert.next_step_index == 4
            assert card.emergency_contacts[0].phone == "+14155550199" and card.plan.version == 1
    finally:
        await out.stop()
        await producer.stop()
    await asyncio.to_thread(provider.shutdown)

    def complete(spans: list[dict]) -> bool:
        rung_spans = [s for s in spans if s["name"] == "crisis ladder rung"]
        sends = [s for s in spans if s.get("kind") == "PRODUCER" and s["name"] == "iop.crisis.alerts.v1 send"]
        return len(rung_spans) >= 3 and len(sends) >= 4

    spans = wait_for_trace(settings, trace_id, complete, timeout_s=90)
    assert {s["traceId"] for s in spans} == {trace_id}
    names = {(s["localEndpoint"]["serviceName"], s.get("kind"), s["name"]) for s in spans}  # Zipkin lowercases
    assert ("video-webhook", "SERVER", "post /webhooks/video participant_left") in names, names
    assert ("crisis", "CONSUMER", "iop.engagement.attendance.v1 process") in names, names
    assert ("crisis", "PRODUCER", "iop.crisis.alerts.v1 send") in names, names
    assert ("crisis", "PRODUCER", "iop.crisis.tasks.v1 send") in names, names
    assert ("crisis", "CLIENT", "paging post") in names, names
    assert complete(spans), sorted(n for _, _, n in names)
    webhook = next(s for s in spans if s["name"].startswith("post /webhooks"))
    process = next(s for s in spans if s["name"] == "iop.engagement.attendance.v1 process")
    assert process["parentId"] == webhook["id"]  # the consumer continues the webhook's trace
    for s in spans:  # no PHI in span attributes: no phone number, address or name
        for tag, value in (s.get("tags") or {}).items():
            assert not PHONE.search(value) and "Test St" not in value and "Alex" not in value, (tag, s)
            # the opaque client id appears only as a record key (the tasks topic is keyed by client)
            assert client not in value or tag == "messaging.kafka.message.key", (tag, s)
