"""Killing the broker between the state change and the publish loses no event.

Runs its own disposable broker (same jars as the local stack, other ports and
data dir) so that crashing it disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer

from iop.events.v1 import scheduling_pb2 as ev
from services.plumbing.envelope import CloudEvent
from services.plumbing.settings import Settings
from tests.integration.test_scheduler_support import Api, local_day_at
from tests.support import ROOT, RUN_ID, ServiceProcess

pytestmark = pytest.mark.integration

INFRA = str(ROOT / "deploy" / "local" / "infra.sh")
PORT, CONTROLLER_PORT = 19092, 19093


@pytest.fixture(scope="module")
def broker() -> Iterator[dict[str, str]]:
    if not (ROOT / ".local" / "kafka" / "libs" / ".resolved").exists():
        pytest.fail("the Kafka jars are not installed: run deploy/local/infra.sh install")
    state = tempfile.mkdtemp(prefix="iop-crash-broker-")
    env = {
        **os.environ,
        "LOCAL_KAFKA_STATE": state,
        "LOCAL_KAFKA_PORT": str(PORT),
        "LOCAL_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    subprocess.run([INFRA, "start-kafka"], env=env, check=True)
    try:
        yield env
    finally:
        subprocess.run([INFRA, "kill-kafka"], env=env, check=False)
        shutil.rmtree(state, ignore_errors=True)


def infra(command: str, env: dict[str, str]) -> None:
    subprocess.run([INFRA, command], env=env, check=True)


def book_one(api: Api, program_id: str) -> str:
    clinician, client = api.clinician(), api.client()
    # a new clinician and client each time, so every booking can take the same slot
    return api.book(program_id, clinician, [client], local_day_at(days_ahead=2, hour=10)).session_id


async def published_session_ids(bootstrap: str, want: set[str], timeout_s: float) -> set[str]:
    consumer = AIOKafkaConsumer(
        "iop.scheduling.sessions.v1", bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not want <= seen and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    event = CloudEvent.from_kafka(r.headers, r.value)
                    if event.type == "iop.events.v1.SessionScheduled":
                        seen.add(ev.SessionScheduled.FromString(r.value).session_id)
    finally:
        await consumer.stop()
    return seen


async def test_broker_crash_between_state_change_and_publish_loses_nothing(broker, settings: Settings) -> None:
    bootstrap = f"127.0.0.1:{PORT}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_DATABASE_PREFIX": f"t{RUN_ID}crash{uuid.uuid4().hex[:6]}_"}
    compliance = ServiceProcess("compliance", env=env).start()
    scheduler = ServiceProcess("scheduler", env=env).start()
    api = Api(settings, scheduler.target, compliance.target)
    try:
        program = await asyncio.to_thread(api.program)
        before = await asyncio.to_thread(book_one, api, program.program_id)
        assert before in await published_session_ids(bootstrap, {before}, timeout_s=30)

        await asyncio.to_thread(infra, "kill-kafka", broker)  # SIGKILL: a crash, not a shutdown
        # The API keeps working while the broker is down: the state change and its
        # event are one store write; the relay cannot publish yet.
        during = {await asyncio.to_thread(book_one, api, program.program_id) for _ in range(3)}

        await asyncio.sleep(2)
        await asyncio.to_thread(infra, "start-kafka", broker)
        seen = await published_session_ids(bootstrap, during | {before}, timeout_s=90)
        assert during <= seen, f"lost events: {during - seen}"
    finally:
        api.close()
        assert scheduler.stop() == 0
        compliance.stop()
