"""The crisis service as a real process, at its edges: bad numbers and bad input, reused request
ids, withdrawn consent, malformed events and events that arrive out of order.

The ladder's later rungs are an hour apart here, so nothing fires behind a test's back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from iop.crisis.v1 import crisis_pb2, crisis_pb2_grpc
from services.crisis import topics
from services.plumbing.settings import Settings
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
from tests.support import ServiceProcess

pytestmark = pytest.mark.integration
OUTPUT = [t.name for t in topics.ALL]
DEADLINE_S = 30  # the test's own calls (a fresh service's first store calls are slow on a loaded machine)


@pytest.fixture(scope="module")
def crisis(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[ServiceProcess]:
    asyncio.run(ensure_consumed_topics(settings))
    skip_backlog(settings)
    directory: Path = tmp_path_factory.mktemp("crisis-edges")
    env = {"CRISIS_POLICY_FILE": str(policy_file(directory, [0, 3600, 3600, 3600]))}
    proc = start(ServiceProcess("crisis", env=env))
    try:
        yield proc
    finally:
        assert proc.stop() == 0, f"crisis did not stop cleanly; see {proc.log_path}"


@pytest.fixture
async def io(settings: Settings) -> AsyncIterator[tuple[Producer, Collector]]:
    producer = await Producer(settings).start()
    collector = await Collector(settings, OUTPUT).start()
    yield producer, collector
    await collector.stop()
    await producer.stop()


async def card_of(
    api: crisis_pb2_grpc.CrisisServiceStub, settings: Settings, client_id: str, until_session: str = ""
) -> crisis_pb2.CrisisCard:
    """The client's crisis card; with `until_session`, once the check-in of that session is on it."""
    for _ in range(150):
        card = await api.GetCrisisCard(
            crisis_pb2.GetCrisisCardRequest(client_id=client_id), metadata=md(settings, "clinician"), timeout=DEADLINE_S
        )
        if not until_session or card.location_session_id == until_session:
            return card
        await asyncio.sleep(0.1)
    raise AssertionError(f"the check-in of {until_session} never reached the crisis service")


async def test_an_invalid_checkin_backup_phone_is_never_called(crisis, io, settings) -> None:
    producer, out = io
    client, session, clinician = uid("client"), uid("session"), uid("clin")
    channel, api = stub(crisis.target)
    async with channel:
        await api.SaveSafetyPlan(
            crisis_pb2.SaveSafetyPlanRequest(plan=safety_plan(client)),  # backup phone 415-555-0134
            metadata=md(settings, "clinician"),
            timeout=DEADLINE_S,
        )
        await api.AssessCssrs(high_risk_request(client), metadata=md(settings, "clinician"), timeout=DEADLINE_S)
        await producer.session_live(session, client, clinician, backup_phone="555-0134 (bad)")
        card = await card_of(api, settings, client, until_session=session)
    assert card.backup_phone == "+14155550134", card  # the plan's number, normalized
    assert "INVALID_BACKUP_PHONE" in card.problems and "NO_BACKUP_PHONE" not in card.problems

    await producer.drop(session, client, clinician)
    opened = await out.wait_for(for_client(client, "AlertOpened"))
    assert opened and "INVALID_BACKUP_PHONE" in opened[0][2].problems, out.events
    tasks = await out.wait_for(for_client(client, "CrisisTaskCreated"), count=2)
    callback = next(t[2] for t in tasks if t[2].kind == "CALLBACK")
    assert callback.callback_phone == "+14155550134" and list(callback.problems) == ["INVALID_BACKUP_PHONE"]
    assert all(t[2].callback_phone in ("", "+14155550134") for t in tasks), [t[2] for t in tasks]
