"""Dead-letter inspection and replay.

    python -m services.plumbing.ops.deadletters list [--original-topic T] [--since ISO] [--until ISO]
                                                     [--event-id ID] [--group G] [--error-type E] [--json]
    python -m services.plumbing.ops.deadletters show --event-id ID [--payload]
    python -m services.plumbing.ops.deadletters replay (filters | --all) [--dry-run]

Dead-letter topics are `iop.<service>.deadletter.v1` (every one on the broker unless
`--dlq-topic` names some). Each record is the original record (key, value, headers)
plus dlq_* headers saying where it came from and why it failed (services/plumbing/consumer.py).
--since/--until filter on when the record was dead-lettered.

Replay re-publishes the original record (its key, value and headers without the dlq_*
ones) to dlq_original_topic. It is idempotent: a ledger in MongoDB (database
`<MONGODB_DATABASE_PREFIX>ops`, collection `dlq_replays`, `_id` = "<ce_id>@<dlq topic>/<partition>/<offset>")
records each replay; a record whose ledger entry says `published` is never re-published, and
dead letters of the same event (same ce_id, e.g. from two consumer groups) selected together are
re-published once.
The entry is written `pending` before publishing and `published` after, so a replay
interrupted in between is completed by the next run (consumers de-duplicate by ce_id,
so that rare second publish is harmless). Fix the cause before replaying: a record that
fails again is dead-lettered again, as a new dead-letter record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from services.plumbing.settings import Settings, get_settings

DLQ_PATTERN = re.compile(r"\.deadletter\.v\d+$")
LEDGER_COLLECTION = "dlq_replays"
READ_QUIET_POLLS = 15


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    partition: int
    offset: int
    dead_lettered_at: datetime  # the dead-letter record's timestamp
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode(errors="replace")
        return ""

    @property
    def event_id(self) -> str:
        return self.header("ce_id")

    @property
    def original_topic(self) -> str:
        return self.header("dlq_original_topic")

    @property
    def ledger_id(self) -> str:
        return f"{self.event_id or '-'}@{self.dlq_topic}/{self.partition}/{self.offset}"

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("dlq_")]

    def summary(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "partition": self.partition,
            "offset": self.offset,
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            "ce_id": self.event_id,
            "ce_type": self.header("ce_type"),
            "original": f"{self.original_topic}[{self.header('dlq_original_partition')}]"
            f"@{self.header('dlq_original_offset')}",
            "group": self.header("dlq_consumer_group"),
            "error_type": self.header("dlq_error_type"),
            "error": self.header("dlq_error_message"),
            "attempts": self.header("dlq_attempts"),
        }


@dataclass(frozen=True)
class Filters:
    original_topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: str | None = None
    group: str | None = None
    error_type: str | None = None

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def match(self, d: DeadLetter) -> bool:
        return (
            (self.original_topic is None or d.original_topic == self.original_topic)
            and (self.since is None or d.dead_lettered_at >= self.since)
            and (self.until is None or d.dead_lettered_at < self.until)
            and (self.event_id is None or d.event_id == self.event_id)
            and (self.group is None or d.header("dlq_consumer_group") == self.group)
            and (self.error_type is None or d.header("dlq_error_type") == self.error_type)
        )


def dead_letter_topics(bootstrap: str) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="iop-ops-deadletters")
    try:
        return sorted(t for t in admin.list_topics() if DLQ_PATTERN.search(t))
    finally:
        admin.close()


def read(bootstrap: str, topics: list[str], filters: Filters) -> Iterator[DeadLetter]:
    """Every matching dead letter present now (reads each partition up to its current end; no group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, client_id="iop-ops-deadletters"
    )
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        if filters.since is not None:
            found = consumer.offsets_for_times(dict.fromkeys(partitions, int(filters.since.timestamp() * 1000)))
            starts = {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in partitions}
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        consumer.pause(*[tp for tp in partitions if tp not in remaining])
        quiet_polls = 0
        while remaining:
            polled = consumer.poll(timeout_ms=1000)
            if not polled:
                # Positions can move past the end without records (control records): check, and give up
                # on partitions that stay silent for READ_QUIET_POLLS seconds.
                for tp in list(remaining):
                    if consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                quiet_polls += 1
                if quiet_polls >= READ_QUIET_POLLS:
                    print(f"warning: no records from {sorted(map(str, remaining))}; stopping", file=sys.stderr)
                    break
                continue
            quiet_polls = 0
            for tp, records in polled.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    d = DeadLetter(
                        dlq_topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        dead_lettered_at=datetime.fromtimestamp(r.timestamp / 1000, UTC),
                        key=r.key,
                        value=r.value,
                        headers=[(k, v) for k, v in r.headers if v is not None],
                    )
                    if filters.match(d):
                        yield d
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


def ledger(settings: Settings) -> tuple[MongoClient[dict[str, Any]], Collection[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    return client, client[f"{settings.mongodb_database_prefix}ops"][LEDGER_COLLECTION]


@dataclass
class ReplayResult:
    replayed: list[str]  # ledger ids of the dead letters replayed now
    skipped: list[str]  # ledger ids already replayed earlier
    published: int = 0  # records re-published (one per event)


def replay(
    letters: list[DeadLetter], producer: KafkaProducer, replays: Collection[dict[str, Any]], operator: str
) -> ReplayResult:
    """Re-publishes each selected dead letter not replayed yet. Dead letters of the same event (same
    ce_id and original topic, e.g. dead-lettered by two consumer groups) are re-published once: every
    group of the original topic sees that one record."""
    result = ReplayResult([], [])
    batches: dict[tuple[str, str], list[DeadLetter]] = {}
    for d in letters:
        if not d.original_topic:
            raise ValueError(f"{d.ledger_id} has no dlq_original_topic header")
        batch_key = (d.original_topic, d.event_id or d.ledger_id)
        batches.setdefault(batch_key, []).append(d)
    for same_event in batches.values():
        claimed = [d for d in same_event if _claim(replays, d, operator)]
        result.skipped.extend(d.ledger_id for d in same_event if d not in claimed)
        if not claimed:
            continue
        d = claimed[0]
        metadata = producer.send(d.original_topic, key=d.key, value=d.value, headers=d.original_headers()).get(
            timeout=30
        )
        result.published += 1
        for c in claimed:
            replays.update_one(
                {"_id": c.ledger_id},
                {
                    "$set": {
                        "status": "published",
                        "published_at": datetime.now(UTC),
                        "published_partition": metadata.partition,
                        "published_offset": metadata.offset,
                    }
                },
            )
            result.replayed.append(c.ledger_id)
    return result


def _claim(replays: Collection[dict[str, Any]], d: DeadLetter, operator: str) -> bool:
    """True when this dead letter is to be published now: newly claimed, or claimed by a replay that
    was interrupted before it published (status pending)."""
    entry = {
        "_id": d.ledger_id,
        "ce_id": d.event_id,
        "dlq_topic": d.dlq_topic,
        "dlq_partition": d.partition,
        "dlq_offset": d.offset,
        "original_topic": d.original_topic,
        "status": "pending",
        "operator": operator,
        "claimed_at": datetime.now(UTC),
    }
    try:
        replays.insert_one(entry)
        return True
    except DuplicateKeyError:
        existing = replays.find_one({"_id": d.ledger_id}) or {}
        return existing.get("status") != "published"


def replay_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, client_id="iop-ops-replay")


def _payload(d: DeadLetter) -> Any:
    if d.value is None:
        return None
    if d.header("content-type") in ("application/json", "application/fhir+json"):
        try:
            return json.loads(d.value)
        except ValueError:
            return None
    import importlib
    import pkgutil

    from google.protobuf import json_format, symbol_database

    package = importlib.import_module("iop.events.v1")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"iop.events.v1.{info.name}")
    try:
        message = symbol_database.Default().GetSymbol(d.header("ce_type"))()
        message.ParseFromString(d.value)
    except Exception as exc:  # a poison payload is what this tool is for: say why it does not decode
        return {"undecodable": type(exc).__name__}
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.plumbing.ops.deadletters", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["list", "show", "replay"])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--dlq-topic", action="append", help="dead-letter topic(s) to read (default: all)")
    parser.add_argument("--original-topic", help="only records dead-lettered from this topic")
    parser.add_argument("--since", help="dead-lettered at or after (ISO 8601)")
    parser.add_argument("--until", help="dead-lettered before (ISO 8601)")
    parser.add_argument("--event-id", help="only this ce_id")
    parser.add_argument("--group", help="only records this consumer group dead-lettered")
    parser.add_argument("--error-type", help="only this exception type (dlq_error_type)")
    parser.add_argument("--json", action="store_true", help="JSON lines")
    parser.add_argument("--payload", action="store_true", help="show: decode the payload (may contain PHI)")
    parser.add_argument("--all", action="store_true", help="replay: every dead letter of the topics (no filter)")
    parser.add_argument("--dry-run", action="store_true", help="replay: say what would be replayed")
    parser.add_argument("--operator", default="sre", help="replay: who replays (recorded in the ledger)")
    args = parser.parse_args(argv)

    settings = get_settings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    filters = Filters(
        original_topic=args.original_topic,
        since=_parse_time(args.since),
        until=_parse_time(args.until),
        event_id=args.event_id,
        group=args.group,
        error_type=args.error_type,
    )
    topics = args.dlq_topic or dead_letter_topics(bootstrap)
    if args.command == "replay" and not filters.any() and not args.all:
        parser.error("replay needs a filter (--event-id, --original-topic, --since ...) or --all")
    if args.command == "show" and not filters.any():
        parser.error("show needs a filter, usually --event-id")
    letters = list(read(bootstrap, topics, filters))

    if args.command == "list":
        for d in letters:
            print(json.dumps(d.summary()) if args.json else _line(d))
        if not args.json:
            print(f"{len(letters)} dead letter(s) in {', '.join(topics) or 'no dead-letter topic'}", file=sys.stderr)
        return 0
    if args.command == "show":
        for d in letters:
            shown: dict[str, Any] = {
                **d.summary(),
                "key": d.key.decode(errors="replace") if d.key is not None else None,
                "headers": {k: v.decode(errors="replace") for k, v in d.headers},
                "payload_bytes": len(d.value or b""),
                "payload_sha256": hashlib.sha256(d.value or b"").hexdigest(),
            }
            if args.payload:
                shown["payload"] = _payload(d)
            print(json.dumps(shown, indent=2, default=str))
        return 0 if letters else 1
    if args.dry_run:
        for d in letters:
            print(f"would replay {d.ledger_id} -> {d.original_topic}")
        return 0
    client, replays = ledger(settings)
    producer = replay_producer(bootstrap)
    try:
        result = replay(letters, producer, replays, args.operator)
    finally:
        producer.close()
        client.close()
    for lid in result.replayed:
        print(f"replayed {lid}")
    for lid in result.skipped:
        print(f"skipped {lid} (already replayed)")
    print(json.dumps({"replayed": len(result.replayed), "published": result.published, "skipped": len(result.skipped)}))
    return 0


def _line(d: DeadLetter) -> str:
    s = d.summary()
    return (
        f"{s['dead_lettered_at']}  {s['dlq_topic']}[{s['partition']}]@{s['offset']}  ce_id={s['ce_id']}  "
        f"{s['ce_type']}  from {s['original']}  group={s['group']}  {s['error_type']}: {s['error'][:80]}"
    )


if __name__ == "__main__":
    sys.exit(main())
