"""The reference partner consumer.

    PYTHONPATH=.:gen/python python -m partner.consumer --topics all --group acme-ehr.iop \
        --mirror acme-mirror.sqlite [--replay-from 2026-11-29T08:00:00Z] [--exit-when-idle 5]

Reads the partner topics as its own consumer group, verifies each record's CloudEvents
envelope (invalid ones are recorded in the mirror's `rejected` table, never crash the
consumer), de-duplicates by ce_id, writes each batch to the local SQLite mirror in one
transaction and only then commits the batch's offsets: a crash at any point loses
nothing (uncommitted records come again) and duplicates nothing (ce_id is the mirror's
primary key). `--replay-from` moves the group's committed offsets to the first record
at or after that time (offsets_for_times) before consuming, so a replay also survives
restarts. `--topics all` reads the topic list from docs/asyncapi.yaml.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from partner.envelope import InvalidEnvelope, decode, header_map, load_event_types, parse_time
from partner.mirror import Accepted, BatchResult, Mirror, Rejected

log = logging.getLogger("partner.consumer")

JOIN_TIMEOUT_S = 30.0
ASYNCAPI = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"


def topics_from_contract(path: Path = ASYNCAPI) -> list[str]:
    """Every channel address in the AsyncAPI document: the partner topics."""
    document = yaml.safe_load(path.read_text())
    return sorted(channel["address"] for channel in document["channels"].values())


def message_types_from_contract(path: Path = ASYNCAPI) -> dict[str, set[str]]:
    """The ce_type values the AsyncAPI document declares, per topic."""
    document = yaml.safe_load(path.read_text())
    prefix = "#/components/messages/"
    return {
        channel["address"]: {message["$ref"].removeprefix(prefix) for message in channel["messages"].values()}
        for channel in document["channels"].values()
    }


@dataclass
class RunStats:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    records: int = 0
    batches: int = 0
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def add(self, result: BatchResult, records: int) -> None:
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.rejected += result.rejected
        self.records += records
        self.batches += 1


def classify(record: ConsumerRecord) -> Accepted | Rejected:
    key = record.key.decode(errors="replace") if record.key is not None else ""
    try:
        event = decode(record.headers or [], record.value)
    except InvalidEnvelope as exc:
        try:
            ce_id = header_map(record.headers or []).get("ce_id", "")
        except InvalidEnvelope:
            ce_id = ""
        names = sorted({name for name, _ in record.headers or []})
        return Rejected(record.topic, record.partition, record.offset, key, ce_id, str(exc), names)
    return Accepted(record.topic, record.partition, record.offset, key or event.subject, event)


class PartnerConsumer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: list[str],
        group_id: str,
        mirror: Mirror,
        client_id: str = "iop-reference-partner",
    ) -> None:
        load_event_types()
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.group_id = group_id
        self.mirror = mirror
        self.client_id = client_id
        self._stopping = False

    def stop(self, *_: Any) -> None:
        self._stopping = True

    def reset_offsets_to_time(self, when: datetime) -> dict[TopicPartition, int]:
        """Moves the (inactive) group's committed offsets to the first record at or after `when`;
        partitions with no such record go to their end."""
        probe = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-replay")
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-replay")
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in self.topics
                for p in sorted(probe.partitions_for_topic(topic) or ())
            ]
            millis = int(when.timestamp() * 1000)
            found = probe.offsets_for_times(dict.fromkeys(partitions, millis))
            ends = probe.end_offsets(partitions)
            offsets = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}
            errors = admin.alter_group_offsets(
                self.group_id, {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )
            failed = {tp: err for tp, err in errors.items() if err.__name__ != "NoError"}
            if failed:
                raise RuntimeError(f"could not move offsets of {self.group_id} (is it still running?): {failed}")
            log.info("group %s replays from %s", self.group_id, when.isoformat())
            return offsets
        finally:
            probe.close()
            admin.close()

    def run(
        self,
        *,
        exit_when_idle_s: float | None = None,
        max_records: int | None = None,
        max_batch: int = 500,
    ) -> RunStats:
        """Consumes until stopped, or `max_records` handled, or (with `exit_when_idle_s`) that long
        without records once partitions are assigned (joining the group does not count as idle;
        no assignment within JOIN_TIMEOUT_S ends the run too)."""
        stats = RunStats()
        consumer = KafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        started = time.monotonic()
        idle_since: float | None = None  # set once the group has assigned partitions
        try:
            while not self._stopping:
                limit = max_batch if max_records is None else min(max_batch, max_records - stats.records)
                if limit <= 0:
                    break
                polled = consumer.poll(timeout_ms=500, max_records=limit)
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    now = time.monotonic()
                    if idle_since is None and consumer.assignment():
                        idle_since = now
                    if exit_when_idle_s is None:
                        continue
                    if idle_since is not None and now - idle_since >= exit_when_idle_s:
                        break
                    if idle_since is None and now - started >= JOIN_TIMEOUT_S:
                        log.warning("no partitions assigned within %.0fs; do the topics exist?", JOIN_TIMEOUT_S)
                        break
                    continue
                idle_since = time.monotonic()
                self.apply(consumer, records, stats)
        finally:
            consumer.close(autocommit=False)
        return stats

    def apply(self, consumer: KafkaConsumer, records: list[ConsumerRecord], stats: RunStats) -> None:
        """Mirror first, then commit: the order that makes restarts lose and duplicate nothing."""
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for record in records:
            item = classify(record)
            if isinstance(item, Rejected):
                log.warning("rejected %s[%d]@%d: %s", item.topic, item.partition, item.offset, item.reason)
                rejected.append(item)
            else:
                accepted.append(item)
        result = self.mirror.write_batch(accepted, rejected)
        stats.add(result, len(records))
        offsets = next_offsets(records)
        self.commit(consumer, offsets)
        stats.commits.append(offsets)

    def commit(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})


def next_offsets(records: Iterable[ConsumerRecord]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m partner.consumer", description=__doc__.split("\n\n")[2])
    parser.add_argument("--topics", required=True, help="comma-separated topic names, or 'all' (docs/asyncapi.yaml)")
    parser.add_argument("--group", required=True, help="this partner's own consumer group id")
    parser.add_argument("--mirror", required=True, type=Path, help="SQLite file of the local mirror")
    parser.add_argument("--replay-from", help="ISO 8601 time: re-read every record from then on")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--exit-when-idle", type=float, help="stop after this many seconds without records")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("kafka",):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    topics = topics_from_contract() if args.topics == "all" else [t for t in args.topics.split(",") if t]
    mirror = Mirror(args.mirror)
    consumer = PartnerConsumer(bootstrap_servers=args.bootstrap, topics=topics, group_id=args.group, mirror=mirror)
    if args.replay_from:
        consumer.reset_offsets_to_time(parse_time(args.replay_from))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = datetime.now(UTC)
    stats = consumer.run(exit_when_idle_s=args.exit_when_idle)
    summary = {
        "group": args.group,
        "topics": topics,
        "started_at": started.isoformat(),
        "records": stats.records,
        "applied": stats.applied,
        "duplicates": stats.duplicates,
        "rejected": stats.rejected,
        "mirror": mirror.counts(),
    }
    print(json.dumps(summary))
    mirror.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
