"""The consumer base: at-least-once, idempotent, bounded retries, dead letters.

For each record: decode the CloudEvents envelope (a record that does not decode
is poison and goes straight to the dead-letter topic), acknowledge it as it is if
it is not this consumer's business (a type it has no handler for, or a payload its
`wanted` filter rejects: no claim, marker or span), skip it if this consumer
group already applied that event id, otherwise run the handler inside a span
whose parent is the producer's context (from `traceparent`), retrying a failing
handler a bounded number of times before dead-lettering it. Records are applied
in order per key, several keys at once (`CONSUMER_KEY_CONCURRENCY`): a handler
is already safe against another instance applying a different partition at the
same time, and the key is the unit of order on every topic. One key is one lane
across the consumer's topics too (a session's facts and its video signals, both
keyed by session id, then never update its document at the same time: FerretDB
loses one of two concurrent updates of a document). Offsets are
committed only after every record of a batch was applied or dead-lettered (at
most every `commit_interval_s` while records flow, and whenever a poll comes
back empty: a redelivery after a crash is de-duplicated anyway), and a stop
drains the records in hand and commits them before leaving the group.

De-duplication costs one write per batch, not a lookup per event: the group
first claims the event ids of the batch's events it handles (one `insert_many` into `claimed_events`;
the unique `_id` answers which ids it has seen before), and only for those it
looks up whether they were applied (`processed_events`). The processed markers
are written in batches, `marker_window_s` after the first of them (one write
per window, not one per batch); until its marker is written, an event this
process applied counts as applied here. A claimed but unapplied event (a crash
or a stop mid-batch, or a crash before its marker was written) is applied again
on redelivery. These bookkeeping writes carry no span: outside any user action
they would only be one-span root traces.

A handler learns from `delivery_is_first()` that no attempt of its group ever
ran for the event (its claim is new and this is the first attempt), so it need
not read back what an earlier attempt would have written. Handlers must make
their own writes idempotent (a crash after the handler and before the
processed-marker write re-runs it): key inserts by event id or use conditional
updates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.envelope import CloudEvent, EnvelopeError, KafkaHeaders
from services.plumbing.ops.metrics import get_metrics
from services.plumbing.settings import Settings
from services.plumbing.storage import BatchedWrites, Document, IndexSpec, find_by_ids, insert_new
from services.plumbing.telemetry import current_span, record_error

log = logging.getLogger(__name__)
tracer = trace.get_tracer("iop.consumer")

PROCESSED_COLLECTION = "processed_events"
# Markers outlive the longest topic retention (4 weeks), so a redelivery is always recognised.
PROCESSED_RETENTION_S = 35 * 24 * 3600
CLAIMED_COLLECTION = "claimed_events"
PROCESSED_INDEXES = [
    IndexSpec(
        PROCESSED_COLLECTION,
        [("processed_at", 1)],
        name="processed_at_ttl",
        options={"expireAfterSeconds": PROCESSED_RETENTION_S},
    ),
    IndexSpec(
        CLAIMED_COLLECTION,
        [("claimed_at", 1)],
        name="claimed_at_ttl",
        options={"expireAfterSeconds": PROCESSED_RETENTION_S},
    ),
]

Handler = Callable[[CloudEvent, Any], Awaitable[None]]
# Which events of a type concern a consumer at all, from the decoded payload (see EventConsumer).
Wanted = Callable[[Any], bool]

_first_delivery: ContextVar[bool] = ContextVar("iop_first_delivery", default=False)


def delivery_is_first() -> bool:
    """True while a handler runs for an event its consumer group never claimed before, on the
    handler's first attempt: nothing the group does for this event can have been written yet."""
    return _first_delivery.get()


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be applied (retrying won't help)."""


class _Getter(Getter[Any]):
    def get(self, carrier: Any, key: str) -> list[str] | None:
        for k, v in carrier:
            if k == key and v is not None:
                return [v.decode()]
        return None

    def keys(self, carrier: Any) -> list[str]:
        return [k for k, _ in carrier]


_getter = _Getter()


class EventConsumer:
    """Consumes `topics` as `group_id`, dispatching by CloudEvents type to `handlers`.

    Event types on the topics that this consumer has no handler for are not its
    business (a topic carries several types) and are skipped, counted in `ignored`;
    so are the events of a type in `wanted` whose payload its predicate rejects
    (a type of which the handler applies only some, such as the few video signals
    that attendance is computed from). Either kind is acknowledged without a claim,
    a processed marker or a span: skipping one twice is harmless.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        group_id: str,
        topics: list[str],
        handlers: dict[str, Handler],
        db: AsyncDatabase[Document],
        producer: AIOKafkaProducer,
        dead_letter_topic: str,
        wanted: dict[str, Wanted] | None = None,
        max_batch: int = 500,
        marker_window_s: float = 0.05,
        commit_interval_s: float = 0.1,
    ) -> None:
        self.group_id = group_id
        self.topics = topics
        self.handlers = handlers
        self._wanted = wanted or {}
        self._failed_filters: set[str] = set()
        self._db = db
        self._producer = producer
        self._dead_letter_topic = dead_letter_topic
        self._max_attempts = settings.consumer_max_attempts
        self._backoff_s = settings.consumer_retry_backoff_s
        self._max_batch = max_batch
        self._key_concurrency = settings.consumer_key_concurrency
        self._new_group_start = settings.kafka_new_group_start
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.kafka_new_group_start,
            isolation_level="read_committed",
        )
        self._commit_interval_s = commit_interval_s
        self._uncommitted: dict[TopicPartition, int] = {}  # handled, not committed yet
        self._last_commit = 0.0
        # Processed markers of events applied here; until written, those events count as applied here.
        self._processed = BatchedWrites(
            lambda docs: insert_new(db[PROCESSED_COLLECTION], docs),  # a concurrent redelivery's are fine
            f"processed markers of {group_id}",
            marker_window_s,
            max_batch,
        )
        self._stopping = False
        self._stopped = asyncio.Event()
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.ignored = 0
        self._metrics = get_metrics()

    async def start(self, assignment_timeout_s: float = 30) -> None:
        """Join the group and wait for partitions, so the service reports SERVING only
        once it consumes. A group that starts at the latest offset pins that position
        with a commit right away: events produced after this start are never skipped,
        even if the process stops before it handled one."""
        await self._consumer.start()
        deadline = asyncio.get_running_loop().time() + assignment_timeout_s
        while not self._consumer.assignment() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self._new_group_start != "latest":
            return
        unpinned = [tp for tp in self._consumer.assignment() if await self._consumer.committed(tp) is None]
        if unpinned:
            await self._consumer.commit({tp: await self._consumer.position(tp) for tp in unpinned})

    async def run(self) -> None:
        try:
            while not self._stopping:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self._max_batch)
                if batches:
                    records = [r for rs in batches.values() for r in rs]
                    self._uncommitted.update(await self._process_batch(records))
                # Offsets go to the group every commit_interval_s while records flow, and as soon as
                # a poll comes back empty: a commit costs the broker a write (~0.3 ms of its CPU).
                due = time.monotonic() - self._last_commit >= self._commit_interval_s
                if self._uncommitted and (due or not batches):
                    await self._commit()
        finally:
            try:
                await self._commit()  # what the last batches handled
            except Exception:  # the broker is gone: the next owner re-reads them (de-duplicated)
                log.warning("consumer %s: the last commit failed", self.group_id, exc_info=True)
            self._stopped.set()

    async def _commit(self) -> None:
        """Commit the offsets handled since the last commit, of the partitions still assigned."""
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in assigned}
        self._uncommitted = {}
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced meanwhile: the partitions' new owner re-reads from the last
            # commit, and the markers make that a no-op.
            log.warning("consumer %s: commit after a rebalance failed; redelivery is de-duplicated", self.group_id)
        await self._metrics.observe_consumer_lag(self.group_id, self._consumer)

    async def stop(self) -> None:
        """Finish the batch in hand, commit it, write its processed markers, leave the group."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=30)
        except TimeoutError:
            log.warning("consumer %s did not drain within 30s", self.group_id)
        try:
            await self._processed.close()
        except Exception:  # what is lost is re-applied on redelivery (handlers are idempotent)
            log.warning("consumer %s: could not write %d processed markers", self.group_id, len(self._processed))
        await self._consumer.stop()

    def _marker_id(self, event_id: str) -> str:
        return f"{self.group_id}:{event_id}"

    async def _process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
        """Apply the batch; returns the offsets to commit.

        Records are handled in order per key (a key's records on every topic of the batch,
        and every copy of one event id, form one lane; keyless records, one per partition),
        with up to `key_concurrency` lanes at a time. On stop each lane ends after the record
        in hand, and a partition's offset covers only the unbroken run of records handled
        from its start, so nothing unhandled is ever committed."""
        decoded: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent | None]] = []
        # payloads decoded to see whether they concern this consumer, by record (not event id: each
        # copy of an event is decoded, and dead-lettered, on its own)
        payloads: dict[tuple[str, int, int], Message] = {}
        for record in records:
            try:
                envelope = CloudEvent.from_kafka(record.headers, record.value)
            except EnvelopeError as exc:
                await self._dead_letter(record, exc, attempts=0)
                decoded.append((record, None))
                continue
            # one not of this consumer's business is acknowledged as it is
            decoded.append((record, envelope if self._concerns(record, envelope, payloads) else None))
        seen, claimed_now = await self._already_applied([self._marker_id(ev.id) for _, ev in decoded if ev is not None])
        applied_now: list[Document] = []
        attempted: set[str] = set()
        handled: set[tuple[str, int, int]] = set()
        lanes: dict[object, list[tuple[ConsumerRecord[bytes, bytes], CloudEvent]]] = {}
        lane_of_event: dict[str, object] = {}
        for record, event in decoded:
            if event is None:
                handled.add((record.topic, record.partition, record.offset))  # dead-lettered or skipped above
                continue
            key_lane = record.key if record.key is not None else (record.topic, record.partition)
            own_lane = key_lane if self._key_concurrency > 1 else None
            lanes.setdefault(lane_of_event.setdefault(event.id, own_lane), []).append((record, event))

        async def run_lane(lane: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent]]) -> None:
            for record, event in lane:
                if self._stopping:
                    return
                marker = self._marker_id(event.id)
                first = marker in claimed_now and marker not in attempted
                attempted.add(marker)
                payload = payloads.get((record.topic, record.partition, record.offset))
                if await self._handle(record, event, marker in seen, first, payload):
                    seen.add(marker)  # a later copy in the same lane is a duplicate
                    applied_now.append({"_id": marker, "type": event.type, "processed_at": datetime.now(UTC)})
                handled.add((record.topic, record.partition, record.offset))

        queue = iter(lanes.values())  # shared by the workers: each takes the next lane when free

        async def lane_worker() -> None:
            for lane in queue:
                await run_lane(lane)

        workers = [asyncio.create_task(lane_worker()) for _ in range(min(self._key_concurrency, len(lanes)))]
        try:
            await asyncio.gather(*workers)
        finally:  # a lane that failed stops the others: the batch is not committed, all of it comes again
            for worker in workers:
                worker.cancel()
        self._processed.add(applied_now)
        done: dict[TopicPartition, int] = {}
        broken: set[TopicPartition] = set()
        for record, _ in decoded:  # a partition's records arrive in offset order
            tp = TopicPartition(record.topic, record.partition)
            if tp in broken:
                continue
            if (record.topic, record.partition, record.offset) in handled:
                done[tp] = record.offset + 1
            else:
                broken.add(tp)
        return done

    def _concerns(
        self,
        record: ConsumerRecord[bytes, bytes],
        event: CloudEvent,
        payloads: dict[tuple[str, int, int], Message],
    ) -> bool:
        """Whether the event is this consumer's business: a type it handles and, for a type in
        `wanted`, a payload its predicate accepts (kept in `payloads` for the handler). A payload
        that does not decode concerns it (applying it dead-letters it), and so does one the
        predicate fails on. Counts the others as ignored."""
        if event.type in self.handlers:
            wanted = self._wanted.get(event.type)
            if wanted is None:
                return True
            try:
                payload = event.payload()
            except EnvelopeError:
                return True
            try:
                concerns = wanted(payload)
            except Exception:  # a predicate that fails decides nothing: the handler has the event
                if event.type not in self._failed_filters:  # once per type, not at stream rate
                    self._failed_filters.add(event.type)
                    log.warning(
                        "%s: the filter of %s failed; applying its events", self.group_id, event.type, exc_info=True
                    )
                concerns = True
            if concerns:
                payloads[(record.topic, record.partition, record.offset)] = payload
                return True
        self.ignored += 1
        self._metrics.observe_event(self.group_id, record.topic, event.type, "ignored")
        return False

    async def _handle(
        self,
        record: ConsumerRecord[bytes, bytes],
        event: CloudEvent,
        seen_before: bool,
        first: bool,
        payload: Message | None,
    ) -> bool:
        """One decoded record of this consumer's business: skipped as a duplicate, else applied
        (`first`: the group never claimed its event before; `payload`: decoded already, or None).
        True when it was applied now."""
        if seen_before:
            self.duplicates += 1
            self._metrics.observe_event(self.group_id, record.topic, event.type, "duplicate")
            return False
        return await self._apply(record, event, self.handlers[event.type], first, payload)

    async def _already_applied(self, marker_ids: list[str]) -> tuple[set[str], set[str]]:
        """(which of these events this group applied before, which it never claimed before).
        Claims the new ones in one write; only ids claimed before (a redelivery) are looked up:
        in the markers this process has not written yet, then by `_id`."""
        ids = list(dict.fromkeys(marker_ids))
        now = datetime.now(UTC)
        with suppress_instrumentation():
            claims = [{"_id": m, "claimed_at": now} for m in ids]
            claimed_before = {ids[i] for i in await insert_new(self._db[CLAIMED_COLLECTION], claims)}
            unwritten = {m for m in claimed_before if m in self._processed}
            to_look_up = [m for m in ids if m in claimed_before and m not in unwritten]
            found = await find_by_ids(self._db[PROCESSED_COLLECTION], to_look_up, {"_id": 1})
        return unwritten | set(found), set(ids) - claimed_before

    async def _apply(
        self,
        record: ConsumerRecord[bytes, bytes],
        event: CloudEvent,
        handler: Handler,
        first: bool,
        decoded: Message | None = None,
    ) -> bool:
        """Run the handler with bounded retries; False when the event was dead-lettered."""
        parent = propagate.extract(record.headers, getter=_getter)
        with current_span(
            tracer,
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": self.group_id,
                "messaging.message.id": event.id,
                "cloudevents.event_type": event.type,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
            },
        ) as span:
            try:
                payload: Message = decoded if decoded is not None else event.payload()
            except EnvelopeError as exc:
                span.set_status(Status(StatusCode.ERROR, "poison event"))
                await self._dead_letter(record, exc, attempts=0)
                self._metrics.observe_event(self.group_id, record.topic, event.type, "dead_lettered")
                return False
            started = time.perf_counter()
            attempt = 0
            while True:
                attempt += 1
                try:
                    first_attempt = _first_delivery.set(first and attempt == 1)
                    try:
                        await handler(event, payload)
                    finally:
                        _first_delivery.reset(first_attempt)
                    self.applied += 1
                    self._metrics.observe_event(
                        self.group_id, record.topic, event.type, "applied", time.perf_counter() - started
                    )
                    return True
                except PoisonEvent as exc:
                    record_error(span, exc, with_message=True)
                    await self._dead_letter(record, exc, attempts=attempt)
                    self._metrics.observe_event(
                        self.group_id, record.topic, event.type, "dead_lettered", time.perf_counter() - started
                    )
                    return False
                except Exception as exc:
                    record_error(span, exc)
                    if attempt >= self._max_attempts:
                        span.set_status(Status(StatusCode.ERROR, "dead-lettered after retries"))
                        await self._dead_letter(record, exc, attempts=attempt)
                        self._metrics.observe_event(
                            self.group_id, record.topic, event.type, "dead_lettered", time.perf_counter() - started
                        )
                        return False
                    self._metrics.observe_event(self.group_id, record.topic, event.type, "retried")
                    log.warning(
                        "handler for %s failed (attempt %d/%d): %s",
                        event.type,
                        attempt,
                        self._max_attempts,
                        type(exc).__name__,
                    )
                    await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: BaseException, attempts: int) -> None:
        """Forward the record as it came, with why it failed in dlq_* headers: the reason a handler
        or the envelope wrote, or for any other error its type (its message may quote data)."""
        reason = str(exc)[:500] if isinstance(exc, PoisonEvent | EnvelopeError) else type(exc).__name__
        headers: KafkaHeaders = [(k, v) for k, v in record.headers if v is not None and not k.startswith("dlq_")]
        headers += [
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
            ("dlq_error_type", type(exc).__name__.encode()),
            ("dlq_error_message", reason.encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_time", datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer.send_and_wait(self._dead_letter_topic, value=record.value, key=record.key, headers=headers)
        self.dead_lettered += 1
        log.error(
            "dead-lettered record %s[%d]@%d for %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self.group_id,
            type(exc).__name__,
        )
