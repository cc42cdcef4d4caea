"""Durable ladder timers: a SIGKILL in the middle of a ladder (even mid-claim) and two instances
at once. Every rung of every ladder is recorded exactly once, in order; none skipped or doubled."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from iop.crisis.v1 import crisis_pb2
from services.crisis import topics
from services.plumbing.settings import Settings
from tests.integration.test_crisis_support import (
    Collector,
    Producer,
    crisis_db,
    ensure_consumed_topics,
    fired_rungs,
    high_risk_request,
    md,
    policy_file,
    skip_backlog,
    start,
    stub,
    uid,
)
from tests.support import RUN_ID, TEST_PORTS, ServiceProcess, isolated_settings

pytestmark = pytest.mark.integration
# Its own database: ladders left running by other crisis tests must not fire in these instances.
PREFIX = f"t{RUN_ID}dur_"
# Deadline of the test's own calls: FerretDB answers a freshly started service's first calls
# slowly on a loaded machine (tests/support.py). Not what these tests check.
DEADLINE_S = 30


class PagingGateway:
    """A real HTTP paging gateway on loopback that answers slowly, so rungs are mid-claim for a while."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []  # every request received
        self.in_flight: list[dict[str, Any]] = []  # those not answered yet
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _page(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.in_flight.append(body)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight.remove(body)
        return web.json_response({"accepted": True})

    async def start(self) -> PagingGateway:
        app = web.Application()
        app.router.add_post("/page", self._page)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()  # the port the OS picked, read back
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def upstream(settings: Settings) -> AsyncIterator[Producer]:
    await ensure_consumed_topics(settings)
    skip_backlog(settings)
    producer = await Producer(settings).start()
    yield producer
    await producer.stop()


async def open_ladders(target: str, settings: Settings, producer: Producer, n: int) -> list[str]:
    """n high-risk clients drop off their sessions; returns the client ids."""
    clients = [uid("client") for _ in range(n)]
    channel, api = stub(target)
    async with channel:
        await asyncio.gather(
            *(
                api.AssessCssrs(high_risk_request(c), metadata=md(settings, "supervisor"), timeout=DEADLINE_S)
                for c in clients
            )
        )
    for c in clients:
        await producer.drop(uid("session"), c, uid("clin"))
    return clients


def header_settled(doc: dict[str, Any], rungs: int) -> bool:
    return doc.get("next_step") == rungs and doc.get("due_at") is None


async def wait_ladders_done(
    db: Any, clients: list[str], rungs: int, timeout_s: float, settle_s: float = 30
) -> list[dict[str, Any]]:
    """The alerts of these clients, each with "rungs" = its rung records, once all ladders are done
    and their headers say so (the header is folded from the records after each rung is recorded),
    or what was last read when either deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    docs: list[dict[str, Any]] = []
    while True:
        docs = await db.alerts.find({"client_id": {"$in": clients}}).to_list()
        for d in docs:
            d["rungs"] = await fired_rungs(db, d)
        if len(docs) == len(clients) and all(len(d["rungs"]) >= rungs for d in docs):
            break
        if loop.time() >= deadline:
            return docs
        await asyncio.sleep(0.2)
    deadline = loop.time() + settle_s
    while not all(header_settled(d, rungs) for d in docs) and loop.time() < deadline:
        await asyncio.sleep(0.2)
        docs = [{**(await db.alerts.find_one({"_id": d["_id"]})), "rungs": d["rungs"]} for d in docs]
    return docs


async def wait_escalations_received(out: Collector, docs: list[dict[str, Any]], timeout_s: float = 30) -> None:
    """Until the collector has received every AlertEscalated stored with these alerts' rung records
    (their outbox), i.e. the relay published them all; returns at the deadline regardless."""
    stored = {
        e["id"] for d in docs for r in d["rungs"] for e in r.get("outbox", []) if e["type"].endswith("AlertEscalated")
    }
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        received = {e[1].id for e in out.matching(lambda t, e, p: e.type.endswith("AlertEscalated"))}
        if stored <= received:
            return
        await asyncio.sleep(0.1)


def assert_exactly_once(docs: list[dict[str, Any]], clients: list[str], rungs: int) -> None:
    assert sorted(d["client_id"] for d in docs) == sorted(clients), "an alert is missing"
    for d in docs:
        assert [f["index"] for f in d["rungs"]] == list(range(rungs)), d["rungs"]
        assert d["next_step"] == rungs and d["due_at"] is None
        task_ids = [t["task_id"] for r in d["rungs"] for t in r["tasks"]]
        assert len(task_ids) == len(set(task_ids)), task_ids


def assert_events_once(out: Collector, alert_ids: set[str], rungs: int) -> None:
    ids_per_rung: dict[tuple[str, int], set[str]] = {}
    for _, ev, payload, _ in out.matching(lambda t, e, p: e.type.endswith("AlertEscalated")):
        if payload.alert_id in alert_ids:
            ids_per_rung.setdefault((payload.alert_id, payload.step_index), set()).add(ev.id)
    expected = {(a, i) for a in alert_ids for i in range(1, rungs)}
    assert set(ids_per_rung) == expected, sorted(expected - set(ids_per_rung))
    doubled = {k: v for k, v in ids_per_rung.items() if len(v) != 1}
    assert not doubled, doubled  # one event per rung (a redelivery would carry the same id)


async def test_sigkill_mid_ladder_resumes_without_skipping_or_doubling(
    tmp_path: Path, settings: Settings, upstream: Producer
) -> None:
    gateway = await PagingGateway(delay_s=0.8).start()
    env = {
        "CRISIS_POLICY_FILE": str(policy_file(tmp_path, [0, 1.5, 1.5, 1.5])),
        "CRISIS_TIMER_LEASE_S": "1.5",
        "CRISIS_PAGING_URL": f"http://127.0.0.1:{gateway.port}/page",
        "CRISIS_PAGING_TIMEOUT_S": "3",
        "CRISIS_INSTANCE_ID": "crisis-a",
        "MONGODB_DATABASE_PREFIX": PREFIX,
    }
    out = await Collector(settings, [topics.ALERTS_TOPIC.name]).start()
    mongo, db = crisis_db(isolated_settings(MONGODB_DATABASE_PREFIX=PREFIX))
    proc = start(ServiceProcess("crisis", env=env))
    try:
        clients = await open_ladders(proc.target, settings, upstream, 8)
        deadline = asyncio.get_running_loop().time() + 60
        own: set[str] = set()  # these ladders' alerts (the gateway may also hear of other runs' alerts)
        while len(own) < len(clients) and asyncio.get_running_loop().time() < deadline:
            own = {d["_id"] for d in await db.alerts.find({"client_id": {"$in": clients}}, {"_id": 1}).to_list()}
            await asyncio.sleep(0.05)
        assert len(own) == len(clients), "not every drop opened an alert"
        # Kill the moment the third rung of one of these ladders is being delivered: claimed, not
        # recorded. The gateway answers in this event loop, so nothing is answered between the
        # check and the kill (no await in between).
        in_flight: list[dict[str, Any]] = []
        while asyncio.get_running_loop().time() < deadline:
            in_flight = [r for r in gateway.in_flight if r["step"] == "EMERGENCY_CONTACT" and r["alert_id"] in own]
            if in_flight:
                break
            await asyncio.sleep(0.02)
        assert in_flight, "no third rung was ever delivered"
        assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_mid_claim = {r["idempotency_key"] for r in in_flight}
        await asyncio.sleep(2.0)  # rungs fall due while no instance runs
        proc = start(ServiceProcess("crisis", env={**env, "CRISIS_INSTANCE_ID": "crisis-a2"}))
        docs = await wait_ladders_done(db, clients, 4, timeout_s=60)
        assert_exactly_once(docs, clients, 4)
        await wait_escalations_received(out, docs)
        assert_events_once(out, {d["_id"] for d in docs}, 4)
        # the rung that was mid-claim at the kill was taken over after its lease (paged again, same key)
        # and recorded once, by the restarted instance
        repaged = Counter(r["idempotency_key"] for r in gateway.requests)
        assert killed_mid_claim and all(repaged[k] >= 2 for k in killed_mid_claim), (killed_mid_claim, repaged)
        takeover = {f"{d['_id']}:{f['index']}": f["fired_by"] for d in docs for f in d["rungs"]}
        assert all(takeover.get(k) == "crisis-a2" for k in killed_mid_claim), (killed_mid_claim, takeover)
    finally:
        assert proc.stop() == 0
        await out.stop()
        await gateway.stop()
        await mongo.close()


async def test_two_instances_fire_each_rung_exactly_once(
    tmp_path: Path, settings: Settings, upstream: Producer
) -> None:
    policy = str(policy_file(tmp_path, [0, 1.0, 1.0, 1.0]))
    other_port = TEST_PORTS["crisis"] + 5  # stays inside this suite's block of test ports
    common = {"CRISIS_POLICY_FILE": policy, "CRISIS_TIMER_LEASE_S": "2", "MONGODB_DATABASE_PREFIX": PREFIX + "2"}
    a = ServiceProcess("crisis", env={**common, "CRISIS_INSTANCE_ID": "crisis-a"})
    b = ServiceProcess(
        "crisis", env={**common, "CRISIS_INSTANCE_ID": "crisis-b", "CRISIS_GRPC_PORT": str(other_port)}, instance="-b"
    )
    out = await Collector(settings, [topics.ALERTS_TOPIC.name]).start()
    mongo, db = crisis_db(isolated_settings(MONGODB_DATABASE_PREFIX=PREFIX + "2"))
    try:
        start(a)
        start(b)
        clients = await open_ladders(a.target, settings, upstream, 16)
        docs = await wait_ladders_done(db, clients, 4, timeout_s=90)
        assert_exactly_once(docs, clients, 4)
        await wait_escalations_received(out, docs)
        assert_events_once(out, {d["_id"] for d in docs}, 4)
        fired_by = Counter(f["fired_by"] for d in docs for f in d["rungs"] if f["trigger"] == "TIMER")
        assert set(fired_by) <= {"crisis-a", "crisis-b"} and sum(fired_by.values()) == 3 * len(clients)
        print(f"timer rungs fired per instance: {dict(fired_by)}")
        # both instances serve the API on the same data
        channel, api = stub(b.target)
        async with channel:
            alert = await api.GetAlert(
                crisis_pb2.GetAlertRequest(alert_id=docs[0]["_id"]),
                metadata=md(settings, "supervisor"),
                timeout=DEADLINE_S,
            )
        assert alert.next_step_index == 4
    finally:
        codes = (a.stop(), b.stop())
        await out.stop()
        await mongo.close()
    assert codes == (0, 0), "an instance did not stop cleanly"
