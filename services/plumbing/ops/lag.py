"""Consumer lag per group and topic: committed offsets against the end of each partition.

    python -m services.plumbing.ops.lag                    # every group, one line per group and topic
    python -m services.plumbing.ops.lag --group iop.crisis --partitions
    python -m services.plumbing.ops.lag --json --fail-above 1000   # exit 2 when any group lags more

Lag is measured against the last stable offset (the consumers read committed records only).
A partition the group never committed counts from the partition's start (what
auto_offset_reset=earliest would read). A group with no members is listed with state Empty:
its lag grows until it runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from kafka import IsolationLevel, KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import UnsupportedVersionError

from services.plumbing.settings import get_settings


@dataclass(frozen=True)
class PartitionLag:
    group: str
    state: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int
    lag: int


@dataclass(frozen=True)
class TopicLag:
    group: str
    state: str
    topic: str
    partitions: int
    committed: int
    end: int
    lag: int


def _committed_offsets(admin: KafkaAdminClient, groups: list[str]) -> dict[str, dict[TopicPartition, int]]:
    if not groups:
        return {}
    try:
        raw = admin.list_group_offsets(dict.fromkeys(groups))
    except UnsupportedVersionError:  # brokers before 3.0: one group per request
        raw = {}
        for g in groups:
            raw.update(admin.list_group_offsets({g: None}))
    return {g: {tp: om.offset for tp, om in offsets.items()} for g, offsets in raw.items()}


def _active_subscriptions(admin: KafkaAdminClient, groups: list[str]) -> dict[str, tuple[int, set[str]]]:
    """Members and subscribed topics of groups that have members."""
    if not groups:
        return {}
    out: dict[str, tuple[int, set[str]]] = {}
    for group, description in admin.describe_groups(groups).items():
        members = description.get("members") or []
        topics: set[str] = set()
        for m in members:
            metadata = m.get("member_metadata") or {}
            topics.update(metadata.get("topics") or [])
        out[group] = (len(members), topics)
    return out


def _partitions(admin: KafkaAdminClient, topics: set[str]) -> dict[str, list[int]]:
    if not topics:
        return {}
    return {
        t["name"]: sorted(p["partition_index"] for p in t["partitions"])
        for t in admin.describe_topics(sorted(topics))
        if t.get("error_code", 0) == 0
    }


def collect(admin: KafkaAdminClient, group_prefix: str | None = None, topic: str | None = None) -> list[PartitionLag]:
    """Lag of every (group, topic, partition), sorted. A group's topics are the ones it committed
    offsets on and the ones its members subscribe to; every partition of them is listed."""
    listed = sorted(admin.list_groups(), key=lambda g: g["group_id"])
    states = {
        g["group_id"]: g.get("group_state") or "?"
        for g in listed
        if group_prefix is None or g["group_id"].startswith(group_prefix)
    }
    committed = _committed_offsets(admin, list(states))
    active = _active_subscriptions(admin, [g for g, s in states.items() if s not in ("Empty", "Dead")])
    group_topics: dict[str, set[str]] = {}
    for group in states:
        topics = {tp.topic for tp in committed.get(group, {})} | active.get(group, (0, set()))[1]
        group_topics[group] = {t for t in topics if topic in (None, t)}
    partitions = _partitions(admin, set().union(*group_topics.values()) if group_topics else set())
    tps = sorted({TopicPartition(t, p) for t, ps in partitions.items() for p in ps})
    if not tps:
        return []
    ends = admin.list_partition_offsets(
        dict.fromkeys(tps, OffsetSpec.LATEST), isolation_level=IsolationLevel.READ_COMMITTED
    )
    starts = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.EARLIEST))
    out: list[PartitionLag] = []
    for group in sorted(group_topics):
        offsets = committed.get(group, {})
        for t in sorted(group_topics[group]):
            for p in partitions.get(t, []):
                tp = TopicPartition(t, p)
                raw = offsets.get(tp)
                position = raw if raw is not None and raw >= 0 else None
                start_from = position if position is not None else starts[tp].offset
                end = ends[tp].offset
                out.append(PartitionLag(group, states[group], t, p, position, end, max(0, end - start_from)))
    return out


def by_topic(rows: Iterable[PartitionLag]) -> list[TopicLag]:
    sums: dict[tuple[str, str], list[PartitionLag]] = {}
    for r in rows:
        sums.setdefault((r.group, r.topic), []).append(r)
    return [
        TopicLag(
            group=g,
            state=rs[0].state,
            topic=t,
            partitions=len(rs),
            committed=sum(r.committed or 0 for r in rs),
            end=sum(r.end for r in rs),
            lag=sum(r.lag for r in rs),
        )
        for (g, t), rs in sorted(sums.items())
    ]


def _table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.plumbing.ops.lag", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--group", help="only groups whose id starts with this (e.g. iop.crisis)")
    parser.add_argument("--topic", help="only this topic")
    parser.add_argument("--partitions", action="store_true", help="one line per partition")
    parser.add_argument("--min-lag", type=int, default=0, help="hide lines lagging less than this")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--fail-above", type=int, help="exit 2 when any line lags more than this")
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap or get_settings().kafka_bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="iop-ops-lag")
    try:
        rows = collect(admin, args.group, args.topic)
    finally:
        admin.close()
    topics = by_topic(rows)
    shown: list[PartitionLag] | list[TopicLag]
    if args.partitions:
        shown = [r for r in rows if r.lag >= args.min_lag]
    else:
        shown = [t for t in topics if t.lag >= args.min_lag]
    if args.json:
        for r in shown:
            print(json.dumps(asdict(r)))
    elif args.partitions:
        print(
            _table(
                ["GROUP", "STATE", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
                [
                    [r.group, r.state, r.topic, r.partition, "-" if r.committed is None else r.committed, r.end, r.lag]
                    for r in rows
                    if r.lag >= args.min_lag
                ],
            )
        )
    else:
        print(
            _table(
                ["GROUP", "STATE", "TOPIC", "PARTITIONS", "COMMITTED", "END", "LAG"],
                [
                    [t.group, t.state, t.topic, t.partitions, t.committed, t.end, t.lag]
                    for t in topics
                    if t.lag >= args.min_lag
                ],
            )
        )
    if args.fail_above is not None and any(r.lag > args.fail_above for r in shown):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
