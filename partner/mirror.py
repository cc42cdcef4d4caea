"""The partner's local mirror: a SQLite file with every event, the latest state per key, and rejects.

Tables:
  events    one row per ce_id (the idempotency key): the de-duplicated event log
  latest    one row per (topic, key): the newest event (by ce_time) for that aggregate
  rejected  one row per record that broke the envelope contract, with the reason
  duplicates  one row per redelivered record (same ce_id seen before), for audits and tests
  fhir_resources  one row per FHIR resource (resourceType, id): its newest version (by ce_time)
Each batch is written in one SQLite transaction; offsets are committed to Kafka only after it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partner.envelope import Event
from partner.fhir import references, resource_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  ce_id TEXT PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
  key TEXT, ce_type TEXT NOT NULL, ce_source TEXT NOT NULL, ce_subject TEXT, ce_time TEXT NOT NULL,
  content_type TEXT NOT NULL, traceparent TEXT, payload_json TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
  topic TEXT NOT NULL, key TEXT NOT NULL, ce_id TEXT NOT NULL, ce_type TEXT NOT NULL, ce_time TEXT NOT NULL,
  payload_json TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (topic, key)
);
CREATE TABLE IF NOT EXISTS rejected (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, key TEXT, ce_id TEXT,
  reason TEXT NOT NULL, headers_json TEXT NOT NULL, received_at TEXT NOT NULL,
  PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS duplicates (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, ce_id TEXT NOT NULL,
  received_at TEXT NOT NULL, PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS fhir_resources (
  resource_type TEXT NOT NULL, id TEXT NOT NULL, ce_id TEXT NOT NULL, ce_time TEXT NOT NULL,
  resource_json TEXT NOT NULL, PRIMARY KEY (resource_type, id)
);
CREATE INDEX IF NOT EXISTS events_time ON events (ce_time);
"""


@dataclass(frozen=True)
class Accepted:
    topic: str
    partition: int
    offset: int
    key: str
    event: Event


@dataclass(frozen=True)
class Rejected:
    topic: str
    partition: int
    offset: int
    key: str
    ce_id: str
    reason: str
    header_names: list[str]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0


class Mirror:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # One thread at a time uses a mirror; explicit BEGIN/COMMIT below.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed batch survives a power cut
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def write_batch(self, accepted: list[Accepted], rejected: list[Rejected]) -> BatchResult:
        """One transaction: the batch is in the mirror entirely or not at all."""
        now = datetime.now(UTC).isoformat()
        result = BatchResult()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for a in accepted:
                e = a.event
                payload = json.dumps(e.payload, sort_keys=True)
                cur = db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        e.id,
                        a.topic,
                        a.partition,
                        a.offset,
                        a.key,
                        e.type,
                        e.source,
                        e.subject,
                        e.time_text,
                        e.content_type,
                        e.traceparent,
                        payload,
                        now,
                    ),
                )
                if cur.rowcount == 0:
                    result.duplicates += 1
                    db.execute(
                        "INSERT OR IGNORE INTO duplicates VALUES (?,?,?,?,?)",
                        (a.topic, a.partition, a.offset, e.id, now),
                    )
                    continue
                result.applied += 1
                db.execute(
                    "INSERT INTO latest VALUES (?,?,?,?,?,?,?) ON CONFLICT (topic, key) DO UPDATE SET "
                    "ce_id=excluded.ce_id, ce_type=excluded.ce_type, ce_time=excluded.ce_time, "
                    "payload_json=excluded.payload_json, updated_at=excluded.updated_at "
                    "WHERE excluded.ce_time >= latest.ce_time",
                    (a.topic, a.key, e.id, e.type, e.time_text, payload, now),
                )
                resource = resource_of(e)
                if resource is not None:
                    db.execute(
                        "INSERT INTO fhir_resources VALUES (?,?,?,?,?) ON CONFLICT (resource_type, id) DO UPDATE SET "
                        "ce_id=excluded.ce_id, ce_time=excluded.ce_time, resource_json=excluded.resource_json "
                        "WHERE excluded.ce_time >= fhir_resources.ce_time",
                        (
                            resource["resourceType"],
                            str(resource.get("id", "")),
                            e.id,
                            e.time_text,
                            json.dumps(resource, sort_keys=True),
                        ),
                    )
            for r in rejected:
                cur = db.execute(
                    "INSERT OR IGNORE INTO rejected VALUES (?,?,?,?,?,?,?,?)",
                    (r.topic, r.partition, r.offset, r.key, r.ce_id, r.reason, json.dumps(r.header_names), now),
                )
                result.rejected += cur.rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    # Read side (what the partner's EHR integration queries).
    def event_ids(self, topic: str | None = None) -> list[str]:
        sql, args = "SELECT ce_id FROM events", []
        if topic:
            sql, args = sql + " WHERE topic = ?", [topic]
        return [row[0] for row in self._db.execute(sql + " ORDER BY ce_time, ce_id", args)]

    def event_types(self) -> set[tuple[str, str]]:
        """(topic, ce_type) of every event received."""
        return set(self._db.execute("SELECT DISTINCT topic, ce_type FROM events").fetchall())

    def latest(self, topic: str, key: str) -> dict[str, str] | None:
        row = self._db.execute(
            "SELECT ce_id, ce_type, ce_time, payload_json FROM latest WHERE topic = ? AND key = ?", (topic, key)
        ).fetchone()
        if row is None:
            return None
        return {"ce_id": row[0], "ce_type": row[1], "ce_time": row[2], "payload_json": row[3]}

    def rejected(self) -> list[dict[str, object]]:
        rows = self._db.execute(
            'SELECT topic, partition, "offset", ce_id, reason FROM rejected ORDER BY topic, "offset"'
        )
        return [{"topic": r[0], "partition": r[1], "offset": r[2], "ce_id": r[3], "reason": r[4]} for r in rows]

    def duplicate_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM duplicates").fetchone()[0])

    def fhir_resource(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT resource_json FROM fhir_resources WHERE resource_type = ? AND id = ?", (resource_type, resource_id)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def fhir_resources(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT resource_json FROM fhir_resources ORDER BY resource_type, id")
        return [json.loads(row[0]) for row in rows]

    def unresolved_references(self) -> list[tuple[str, str]]:
        """(from, to) for every reference of a mirrored FHIR resource to one that is not mirrored."""
        known = set(self._db.execute("SELECT resource_type, id FROM fhir_resources").fetchall())
        missing = []
        for resource_type, resource_id, body in self._db.execute(
            "SELECT resource_type, id, resource_json FROM fhir_resources ORDER BY resource_type, id"
        ):
            for target in references(json.loads(body)):
                if target not in known:
                    missing.append((f"{resource_type}/{resource_id}", "/".join(target)))
        return missing

    def counts(self) -> dict[str, int]:
        return {
            table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("events", "latest", "rejected", "duplicates", "fhir_resources")
        }
