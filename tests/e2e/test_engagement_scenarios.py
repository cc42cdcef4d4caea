"""Engagement scenarios end to end: the engagement process and its faust worker, the real broker,
store, trace UI and a headless Chromium.

- Disconnection during crisis: a signed webhook reports a client's drop mid-session; before the
  webhook answers, ConnectionDropped is on iop.engagement.attendance.v1 (the crisis service's
  1 s target is measured by tests/bench/crisis_bench.py), in the same trace as the webhook.
- Burnout from a full virtual day: a day of back-to-back groups on the clinician's calendar raises
  the clinician burnout-risk signal (ScoreThresholdCrossed) with its factors, readable over gRPC.
- A client falling behind gets an outreach task; the supervisor dashboard shows all of it in Chromium.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from iop.engagement.v1 import engagement_pb2 as pb
from iop.engagement.v1 import engagement_pb2_grpc
from iop.events.v1 import engagement_pb2 as ev
from iop.events.v1 import scheduling_pb2
from services.plumbing.protos import to_timestamp
from services.plumbing.settings import Settings
from tests.integration.test_engagement_support import (
    HTTP_PORT,
    SESSIONS_TOPIC,
    SIGNALS_TOPIC,
    Tap,
    WorkerProcess,
    assert_drop_published_by_the_webhook,
    engagement_service,
    post_webhook,
    producer,
    publish,
    scheduled,
    wait_until,
    zoom_body,
)
from tests.support import ServiceProcess, auth_metadata, token, wait_for_trace, zipkin_base

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[tuple[ServiceProcess, WorkerProcess]]:
    service = engagement_service().start()
    try:
        worker = WorkerProcess(settings).start()
    except Exception:
        service.stop()
        raise
    try:
        yield service, worker
    finally:
        worker.stop()
        assert service.stop() == 0, f"engagement did not stop cleanly; see {service.log_path}"


@pytest.fixture(scope="module")
def stub(stack) -> Iterator[engagement_pb2_grpc.EngagementServiceStub]:
    with grpc.insecure_channel(stack[0].target) as channel:
        yield engagement_pb2_grpc.EngagementServiceStub(channel)


def test_disconnection_scenario_connection_dropped_before_the_webhook_answers_in_one_trace(
    stack, stub, settings: Settings
) -> None:
    session_id, client = f"s-{uuid.uuid4().hex[:10]}", f"c-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) - timedelta(minutes=20)
    kp = producer(settings)
    publish(kp, SESSIONS_TOPIC, session_id, scheduled(session_id, "clin-e2e", [client, "c-other"], start))
    kp.close()

    def opened() -> bool:
        try:
            stub.GetSessionAttendance(
                pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
            )
            return True
        except grpc.RpcError:
            return False

    assert wait_until(opened)
    assert post_webhook(zoom_body("meeting.participant_joined", session_id, client, start)).status_code == 200
    tap = Tap(settings, "iop.engagement.attendance.v1")
    signals = Tap(settings, SIGNALS_TOPIC)

    tracer = TracerProvider().get_tracer("video-platform")
    with tracer.start_as_current_span("video platform: participant dropped", kind=SpanKind.CLIENT) as root:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        trace_id = format(root.get_span_context().trace_id, "032x")
    sent = time.time()
    reply = post_webhook(
        zoom_body("meeting.participant_left", session_id, client, leave_reason="Network disconnected"), headers=carrier
    )
    answered = time.time()
    assert reply.status_code == 200, reply.text
    _, dropped, record = assert_drop_published_by_the_webhook(
        tap, signals, session_id, reply.json()["signal_id"], sent, answered
    )
    signals.close()
    assert dropped.client_id == client and dropped.clinician_id == "clin-e2e"
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == trace_id, "ConnectionDropped is not in the webhook's trace"
    tap.close()

    def complete(spans: list[dict]) -> bool:
        names = {(s["localEndpoint"]["serviceName"], s["name"].lower()) for s in spans}
        return {
            ("engagement", "iop.engagement.attendance.v1 send"),
            ("engagement", f"{SIGNALS_TOPIC} process".lower()),
            ("engagement-worker", f"{SIGNALS_TOPIC} process".lower()),
        } <= names

    spans: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not complete(spans):
        try:  # the shared trace UI can be slow to answer under load
            spans = wait_for_trace(settings, trace_id, complete, timeout_s=20)
        except httpx.HTTPError:
            time.sleep(1)
    names = {(s["localEndpoint"]["serviceName"], s.get("kind"), s["name"].lower()) for s in spans}
    assert ("engagement", "SERVER", "post /webhooks/video") in names, sorted(map(str, names))
    assert ("engagement", "PRODUCER", f"{SIGNALS_TOPIC} send".lower()) in names, names
    assert ("engagement", "CONSUMER", f"{SIGNALS_TOPIC} process".lower()) in names, names
    assert ("engagement", "PRODUCER", "iop.engagement.attendance.v1 send") in names, names
    # the faust worker continues the same trace
    assert ("engagement-worker", "CONSUMER", f"{SIGNALS_TOPIC} process".lower()) in names, names
    # engagement's spans never name the client (its topics are keyed by session; another run's
    # crisis service, reading the same topics, may join this trace with its own client-keyed spans)
    for s in spans:
        if s["localEndpoint"]["serviceName"].startswith("engagement"):
            assert all(client not in str(v) for v in (s.get("tags") or {}).values()), s


def test_burnout_scenario_raises_the_clinician_signal(stack, stub, settings: Settings) -> None:
    clinician = f"k-{uuid.uuid4().hex[:8]}"
    scores = Tap(settings, "iop.engagement.scores.v1")
    day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    kp = producer(settings)
    for i in range(6):  # six 75-minute video groups, 5 minutes apart: a full back-to-back day
        starts = day + timedelta(minutes=80 * i)
        sid = f"{clinician}-g{i}"
        publish(
            kp, SESSIONS_TOPIC, sid, scheduled(sid, clinician, [f"{clinician}-c{i}a", f"{clinician}-c{i}b"], starts, 75)
        )
    kp.close()
    hit = scores.poll(lambda ce, p: isinstance(p, ev.ScoreThresholdCrossed) and p.subject_id == clinician, timeout_s=30)
    assert hit is not None, "no burnout signal"
    crossed = hit[1]
    assert crossed.score == "clinician_burnout_risk" and crossed.direction == "up" and crossed.value >= 0.6
    factors = {f.name: f for f in crossed.factors}
    # the calendar facts arrive by session partition, so the crossing may come at the 4th or 5th group
    assert factors["peak_day_on_screen_hours"].value >= 0.8 and factors["back_to_back_sessions"].value >= 0.5
    assert "back-to-back sessions in a day (cap 4)" in factors["back_to_back_sessions"].explanation

    def summary() -> pb.ClinicianEngagement | None:
        try:
            return stub.GetClinicianEngagement(
                pb.GetClinicianEngagementRequest(clinician_id=clinician), metadata=auth_metadata(settings, "supervisor")
            )
        except grpc.RpcError:
            return None

    def whole_day() -> pb.ClinicianEngagement | None:  # the snapshot may be flushed between two facts
        got = summary()
        return got if got is not None and got.caseload == 12 else None

    got = wait_until(whole_day, timeout_s=30)
    assert got is not None and got.burnout_risk.elevated and got.max_back_to_back_7_days == 5
    assert got.caseload == 12
    # The whole day is folded (and the worker sends a crossing before it stores the state that holds it),
    # so a repeated or flapping signal would already be on the topic. Counted by event id: the worker sends
    # at least once, with deterministic ids (consumers de-duplicate), and on a broker shared with another
    # test run, that run's worker folds these sessions too and sends the same event.
    scores.records(1.0)
    signals = scores._matching(lambda ce, p: isinstance(p, ev.ScoreThresholdCrossed) and p.subject_id == clinician)
    assert {ce.id for ce, _ in signals} == {hit[0].id}, "the signal must not flap or repeat"
    assert all(p.direction == "up" for _, p in signals)
    with pytest.raises(grpc.RpcError) as err:  # another clinician may not read it
        stub.GetClinicianEngagement(
            pb.GetClinicianEngagementRequest(clinician_id=clinician),
            metadata=auth_metadata(settings, "clinician", subject="k-someone-else"),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    scores.close()


def test_client_falling_behind_gets_outreach_and_the_dashboard_shows_it_in_chromium(
    stack, stub, settings: Settings
) -> None:
    client = f"c-{uuid.uuid4().hex[:8]}"
    clinician = f"k-{uuid.uuid4().hex[:8]}"
    scores = Tap(settings, "iop.engagement.scores.v1")
    kp = producer(settings)
    now = datetime.now(UTC)
    for d in range(4):  # four sessions in four days, the last three missed
        sid = f"{client}-s{d}"
        starts = now - timedelta(days=4 - d)
        publish(kp, SESSIONS_TOPIC, sid, scheduled(sid, clinician, [client], starts, program="prog-dash"))
        publish(
            kp,
            "iop.engagement.attendance.v1",
            sid,
            ev.AttendanceRecorded(
                session_id=sid,
                client_id=client,
                status="on_time" if d == 0 else "absent",
                minutes_attended=60 if d == 0 else 0,
                session_starts_at=to_timestamp(starts),
                program_id="prog-dash",
                clinician_id=clinician,
            ),
        )
    kp.close()
    outreach = scores.poll(lambda ce, p: isinstance(p, ev.OutreachTaskCreated) and p.client_id == client, timeout_s=30)
    assert outreach is not None, "no outreach task"
    assert outreach[1].reason in ("engagement_risk_elevated", "consecutive_absences")
    engagement = wait_until(lambda: _client(stub, settings, client), timeout_s=30)
    assert engagement is not None and engagement.engagement_risk.elevated
    assert engagement.last_7_days.absent == 3
    assert {f.name for f in engagement.engagement_risk.factors} >= {"absence_rate_7d", "missed_check_ins_7d"}
    scores.close()
    # the ledger feeds the per-program attendance: a real session, a real webhook, the session's end
    sid = f"{client}-live"
    starts = now - timedelta(minutes=30)
    kp = producer(settings)
    publish(kp, SESSIONS_TOPIC, sid, scheduled(sid, clinician, [client, f"{client}-peer"], starts, program="prog-dash"))
    assert wait_until(lambda: _opened(stub, settings, sid))
    assert post_webhook(zoom_body("meeting.participant_joined", sid, client, starts)).status_code == 200
    publish(
        kp,
        SESSIONS_TOPIC,
        sid,
        scheduling_pb2.SessionEnded(session_id=sid, clinician_id=clinician, ended_at=to_timestamp(now)),
    )
    kp.close()
    assert wait_until(lambda: _opened(stub, settings, sid, ended=True))
    stub.SubmitOutcome(
        pb.SubmitOutcomeRequest(
            submission_id=str(uuid.uuid4()), client_id=client, instrument=pb.INSTRUMENT_PHQ9, item_scores=[2] * 8 + [0]
        ),
        metadata=auth_metadata(settings, "clinician"),
    )

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is required for the dashboard test"
    # A test run is a development environment: the page takes the token from its URL for that
    # request (it signs nothing in; elsewhere a token in a URL is refused).
    url = f"http://127.0.0.1:{HTTP_PORT}/dashboard?access_token={token(settings, 'supervisor')}"
    asked_at_us = int(time.time() * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp}/profile",
            "--window-size=1000,900",
        ]
        dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, timeout=90, check=True).stdout.decode()
        png = Path(tmp) / "dashboard.png"
        subprocess.run([*args, f"--screenshot={png}", url], capture_output=True, timeout=90, check=True)
        width, height, pixels = decode_png(png.read_bytes())
    assert f'data-label="{client}"' in dom, "the client falling behind is not on the page"
    assert 'id="burnout-risk"' in dom and 'id="attendance-chart"' in dom
    assert 'class="client-behind"' in dom
    assert (width, height) == (1000, 900)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), 4 * 7)}
    assert len(colours) > 20, "the screenshot is blank"
    assert any(_near(c, (0xC0, 0x39, 0x2B)) for c in colours), "no elevated-risk bar was drawn"
    assert any(_near(c, (0x2E, 0x86, 0xC1)) for c in colours), "no attendance bar was drawn"

    # The page was asked for with the supervisor's token in its query string: the engagement
    # service's spans of those requests are in Zipkin, and the token is in none of them.
    secret = url.rpartition("access_token=")[2]
    spans = _dashboard_spans(settings, since_us=asked_at_us)
    assert spans, "no span of the dashboard requests reached Zipkin"
    assert not [s for s in spans if secret in str(s)], "the dashboard's token is in a span"


def _dashboard_spans(settings: Settings, since_us: int, timeout_s: float = 30) -> list[dict]:
    """The engagement service's `GET /dashboard` spans in Zipkin that started at `since_us` or later
    (polled until some arrive: each process exports in its own batches)."""
    query: dict[str, str | int] = {
        "serviceName": "engagement",
        "spanName": "get /dashboard",
        "lookback": 600_000,
        "limit": 50,
    }
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = httpx.get(f"{zipkin_base(settings)}/api/v2/traces", params=query, timeout=10)
            found = [s for trace in reply.json() for s in trace] if reply.status_code == 200 else []
            spans = [s for s in found if s.get("name") == "get /dashboard" and s.get("timestamp", 0) >= since_us]
        except httpx.HTTPError:
            spans = []
        if spans or time.monotonic() > deadline:
            return spans
        time.sleep(1)


def _client(stub, settings: Settings, client: str) -> pb.ClientEngagement | None:
    try:
        reply = stub.GetClientEngagement(
            pb.GetClientEngagementRequest(client_id=client), metadata=auth_metadata(settings, "clinician")
        )
    except grpc.RpcError:
        return None
    return reply if reply.engagement_risk.elevated and reply.last_7_days.absent == 3 else None


def _opened(stub, settings: Settings, session_id: str, ended: bool = False) -> bool:
    try:
        reply = stub.GetSessionAttendance(
            pb.GetSessionAttendanceRequest(session_id=session_id), metadata=auth_metadata(settings, "clinician")
        )
    except grpc.RpcError:
        return False
    return reply.ended or not ended


def _near(c: bytes, rgb: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(c, rgb, strict=True))


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGBA pixels of an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = colour = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb_, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb_ and pa <= pc else (b if pb_ <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        if bpp == 3:
            for x in range(width):
                out += line[x * 3 : x * 3 + 3] + b"\xff"
        else:
            out += line
    return width, height, bytes(out)
