"""The crisis service's database: collections, indexes and the atomic writes it relies on.

Measured on the local FerretDB 1.x (SQLite backend): a conditional update or findAndModify is NOT
an atomic compare-and-set under concurrency (two concurrent `update_one({"v": n}, {"$set": {"v": n+1}})`
both match, and one overwrites the other; FerretDB issue #3040). What IS atomic is an insert
against a unique index. So:

- every fact is an insert-only record carrying its own events (transactional outbox): risk
  assessments, check-ins, safety-plan versions, alert rung firings and people's actions on alerts.
  A record's unique `_id` makes it exactly-once (a rung is `<alert>:rung:<n>`, or
  `<alert>:round:<k>:rung:<n>` in a ladder restarted by a crisis signal; a plan version is
  `<client>:plan:<version>`); nothing updates a record (the outbox relay records what it
  published apart, in `outbox_published`);
- current state is read from the latest record, or folded from an alert's records;
- the alert document is a header (who, ladder policy, context, the open events) plus a cache of
  the folded state used as the timer index (`due_at`); any writer recomputes it from the records
  ("reconcile"), so a lost header update heals at the next reconcile (timer, sweep, or action);
- timer claims are unique inserts of lease documents (`timer_claims`), taken over after expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.plumbing.storage import Document, GroupedCalls, IndexSpec, find_by_ids

# Per client, in one collection so that one `$in` query reads all of it (the drop path does):
# three insert-only logs `<client>:<kind>:<seq>` and the active-alert slot `<client>:active`.
CLIENT_RECORDS = "client_records"
RISK = "risk"  # log kind: assessments, signals, flags
CHECKINS = "checkin"  # log kind: verified locations (SessionCheckedIn); the current one: `current_checkin`
LATE_CHECKINS = "checkin_late"  # check-ins that arrived after a later one (history only): `late_checkin_id`
PLANS = "plan"  # log kind: safety-plan versions (seq = version)
SESSIONS = "sessions"  # what crisis knows about sessions (one writer: the sessions consumer)
ALERTS = "alerts"  # header + cached state (timer index)
ALERT_RECORDS = "alert_records"  # insert-only: rungs fired, acknowledgements, contact attempts, resolution
CLAIMS = "timer_claims"  # leases on an alert's timer
TIMERS = "timers"  # `<alert>` -> due_at of its next rung: a small collection the timer loop scans
RECONNECT_TASKS = "reconnect_tasks"  # insert-only: low-risk drops
# Who treats whom, kept by the sessions consumer: `<client>|<clinician>` exists while a session not
# cancelled makes the clinician one who treats the client (an access check is one find by _id), and
# `<client>|<clinician>|<session>` names each such session (a cancellation takes its own away).
CARE_TEAM = "care_team"
CARE_TEAM_LINKS = "care_team_links"
SESSION_TEAM_FIELDS = {"clinician_id": 1, "facilitator_ids": 1, "client_ids": 1, "status": 1}

OUTBOX_COLLECTIONS = [CLIENT_RECORDS, ALERTS, ALERT_RECORDS, RECONNECT_TASKS]
INDEXES = [
    IndexSpec(CLIENT_RECORDS, [("client_id", 1), ("kind", 1)], name="client_kind"),
    IndexSpec(ALERTS, [("due_at", 1)], name="due_at_1"),
    IndexSpec(ALERTS, [("active", 1)], name="active_1"),
    IndexSpec(ALERTS, [("client_id", 1), ("opened_at", -1)], name="client_opened"),
    IndexSpec(ALERT_RECORDS, [("alert_id", 1)], name="alert_id_1"),
    IndexSpec(RECONNECT_TASKS, [("client_id", 1), ("created_at", -1)], name="client_created"),
    IndexSpec(CARE_TEAM_LINKS, [("pair", 1)], name="pair_1"),
    IndexSpec(CARE_TEAM_LINKS, [("session_id", 1)], name="session_id_1"),
]
NO_OUTBOX = {"outbox": 0}
FIRST_PROBE = 8  # positions of a client's log read in one query (most logs are shorter)


def seq_id(kind: str, client_id: str, seq: int) -> str:
    return f"{client_id}:{kind}:{seq:06d}"


def late_checkin_id(client_id: str, event_id: str) -> str:
    """A late check-in's record, one per event: a redelivery of it finds it taken."""
    return f"{client_id}:{LATE_CHECKINS}:event:{event_id}"


def active_id(client_id: str) -> str:
    return f"{client_id}:active"


def care_team_id(client_id: str, clinician_id: str) -> str:
    return f"{client_id}|{clinician_id}"


def session_clinicians(session: Document) -> list[str]:
    """The treating clinicians of a stored session (`handlers.on_scheduled`): its clinician and its
    lead and co-facilitators (none on a session stored before 2026-12-08)."""
    return [session.get("clinician_id", ""), *session.get("facilitator_ids", [])]


def _probe_ids(kind: str, client_id: str) -> list[str]:
    return [seq_id(kind, client_id, n) for n in range(1, FIRST_PROBE + 1)]


def number_given_at(checkin: Document) -> datetime | None:
    """When the callback number a check-in record holds was given: at the check-in that gave it
    (`backup_phone_at`: its own time, or the time of the check-in whose number it kept). None
    without a number. A record stored before 2026-12-07 names no time: its own is taken."""
    if not checkin.get("backup_phone"):
        return None
    at: datetime = checkin.get("backup_phone_at") or checkin["at"]
    return at


def with_latest_number(current: Document, candidates: list[Document]) -> Document:
    """The current check-in with the callback number of the latest check-in, by its own time, that
    gave one, among `candidates` (the current one and the check-ins appended after the top's
    `based_on`, `_current_checkin`). Every check-in kept the latest number among those its writer
    read (`service.record_checkin`), so the latest here is the latest of the whole log."""
    given = [(at, d) for d in candidates if (at := number_given_at(d)) is not None]
    if not given:
        return current
    at, source = max(given, key=lambda g: (g[0], g[1]["_id"] == current["_id"]))
    if source["_id"] == current["_id"]:
        return current
    return {**current, "backup_phone": source["backup_phone"], "backup_phone_at": at}


def _links(session_id: str, client_ids: list[str], clinician_ids: list[str], at: datetime) -> list[Document]:
    """The care-team links a session makes: one per (client, clinician) pair, each once."""
    return [
        {
            "_id": f"{care_team_id(client_id, clinician_id)}|{session_id}",
            "pair": care_team_id(client_id, clinician_id),
            "client_id": client_id,
            "clinician_id": clinician_id,
            "session_id": session_id,
            "at": at,
        }
        for client_id in dict.fromkeys(client_ids)
        for clinician_id in dict.fromkeys(clinician_ids)
        if client_id and clinician_id
    ]


def _pair(link: Document) -> Document:
    """The care-team pair a link makes (`care_team_id`), named by the session that first made it."""
    fields = ("client_id", "clinician_id", "session_id", "at")
    return {"_id": link["pair"], **{f: link[f] for f in fields}}


@dataclass(frozen=True)
class ClientRecords:
    """What the store holds on a client now: the latest record of each log, the active alert's id."""

    risk: Document | None
    checkin: Document | None
    plan: Document | None
    active_alert_id: str | None


def rung_id(alert_id: str, index: int, ladder_round: int = 0) -> str:
    """Rung `index` of the alert's ladder: `<alert>:rung:<n>` as opened (round 0), and
    `<alert>:round:<k>:rung:<n>` once a crisis signal after contact restarted it (round k)."""
    return f"{alert_id}:rung:{index}" if ladder_round == 0 else f"{alert_id}:round:{ladder_round}:rung:{index}"


def act_id(alert_id: str, seq: int) -> str:
    return f"{alert_id}:act:{seq:04d}"


class CrisisStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.sessions = db[SESSIONS]
        self.alerts = db[ALERTS]
        self.per_client = db[CLIENT_RECORDS]
        self._grouped = GroupedCalls(db)  # concurrent events' lookups and inserts go together

    # -- per-client logs `<client>:<kind>:<seq>` (seq from 1), found by _id lookups (see `last`)
    async def _get(self, kind: str, client_id: str, seq: int) -> Document | None:
        return await self.per_client.find_one({"_id": seq_id(kind, client_id, seq)}, NO_OUTBOX)

    async def last(self, kind: str, client_id: str) -> tuple[int, Document | None]:
        """The highest sequence number in the client's log and its record ((0, None) when empty).
        A log is dense (appends take the next free position), so its first FIRST_PROBE positions
        are asked for in one `$in` query, which answers most logs; longer ones are galloped."""
        head = await find_by_ids(self.per_client, _probe_ids(kind, client_id), NO_OUTBOX)
        return await self._last_from(kind, client_id, head)

    async def _last_from(self, kind: str, client_id: str, head: dict[Any, Document]) -> tuple[int, Document | None]:
        """`last`, given what a query of the log's first FIRST_PROBE positions found (`head`)."""
        top = 0
        while top < FIRST_PROBE and seq_id(kind, client_id, top + 1) in head:
            top += 1
        if top < FIRST_PROBE:
            return top, head.get(seq_id(kind, client_id, top))
        hi, hi_doc = FIRST_PROBE, head.get(seq_id(kind, client_id, FIRST_PROBE))
        lo, lo_doc = hi, hi_doc
        while hi_doc is not None:
            lo, lo_doc = hi, hi_doc
            hi *= 2
            hi_doc = await self._get(kind, client_id, hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            mid_doc = await self._get(kind, client_id, mid)
            if mid_doc is None:
                hi = mid
            else:
                lo, lo_doc = mid, mid_doc
        return lo, lo_doc

    async def client_records(self, client_id: str) -> ClientRecords:
        """The client's latest risk, check-in and plan and its active alert's id, in one `$in`
        query of the logs' first positions and the slot (a longer log is galloped on its own)."""
        ids = [*_probe_ids(RISK, client_id), *_probe_ids(CHECKINS, client_id), *_probe_ids(PLANS, client_id)]
        found = await self._grouped.finds(CLIENT_RECORDS, NO_OUTBOX).get_many([*ids, active_id(client_id)])
        (_, risk), (_, checkin), (_, plan) = await asyncio.gather(
            self._last_from(RISK, client_id, found),
            self._current_checkin(client_id, found),
            self._last_from(PLANS, client_id, found),
        )
        slot = found.get(active_id(client_id))
        return ClientRecords(risk, checkin, plan, slot["alert_id"] if slot else None)

    async def append(self, kind: str, client_id: str, make: Callable[[str, int], Document]) -> Document:
        """Append `make(record_id, seq)` at the next free position of the client's log."""
        seq, _ = await self.last(kind, client_id)
        return await self.append_after(kind, client_id, seq, make)

    async def append_after(self, kind: str, client_id: str, seq: int, make: Callable[[str, int], Document]) -> Document:
        """Append `make(record_id, seq)` at the first free position after `seq` (the top as read)."""
        for n in range(seq + 1, seq + 50):
            doc = {**make(seq_id(kind, client_id, n), n), "kind": kind}
            if await self.insert_new(CLIENT_RECORDS, doc):
                return doc
        raise RuntimeError("the client's log kept moving; retry")

    async def current_checkin(self, client_id: str) -> tuple[int, Document | None]:
        """The top position of the client's check-in log and its current check-in (the latest by
        check-in time), ((0, None) when there is none). See `_current_checkin`."""
        head = await find_by_ids(self.per_client, _probe_ids(CHECKINS, client_id), NO_OUTBOX)
        return await self._current_checkin(client_id, head)

    async def _current_checkin(self, client_id: str, head: dict[Any, Document]) -> tuple[int, Document | None]:
        """The latest check-in by its own time, with no lock and no update: each check-in record
        names the top position of the log its writer read (`based_on`), and is appended to the log
        only if it is at least as late as the current check-in then (service.record_checkin); so
        every record up to `based_on` is earlier than it, and the latest of the whole log is the
        latest of the records after the top's `based_on` (just the top, unless check-ins were
        appended concurrently, whose positions can be in either order). Records written before
        `based_on` existed count as based on the position before theirs.

        Its callback number is the one of the latest check-in, by its own time, that gave one
        (`with_latest_number`): a check-in without a number keeps the number of the current check-in
        its writer read, and a check-in appended concurrently (not read by it) may have a later one."""
        top, doc = await self._last_from(CHECKINS, client_id, head)
        if doc is None:
            return top, None
        between = [seq_id(CHECKINS, client_id, n) for n in range(doc.get("based_on", top - 1) + 1, top)]
        missing = [i for i in between if i not in head]
        found = {**head, **(await find_by_ids(self.per_client, missing, NO_OUTBOX) if missing else {})}
        candidates = [doc, *(found[i] for i in between if i in found)]
        return top, with_latest_number(max(candidates, key=lambda d: (d["at"], d["_id"])), candidates)

    async def in_checkin_log(self, client_id: str, event_id: str, at: datetime, top: int) -> bool:
        """Whether the check-in of `event_id` (checked in at `at`) is in the client's check-in log,
        whose top position is `top`: read from the top down, a page at a time, no further than it
        can be. A record earlier than `at` names the top of the log its writer read (`based_on`),
        every record up to there being no later than itself (`_current_checkin`), so none of them
        is this check-in. A check-in that was current when it came is found near the top."""
        floor, n = 0, top  # positions <= floor cannot hold it; n: the highest not read yet
        while n > floor:
            low = max(floor, n - FIRST_PROBE)
            page = await find_by_ids(
                self.per_client, [seq_id(CHECKINS, client_id, k) for k in range(low + 1, n + 1)], NO_OUTBOX
            )
            for k in range(n, low, -1):
                if k <= floor:
                    break
                doc = page.get(seq_id(CHECKINS, client_id, k))
                if doc is None:
                    continue
                if doc.get("event_id") == event_id:
                    return True
                if doc["at"] < at:
                    floor = max(floor, doc.get("based_on", k - 1))
            n = low
        return False

    async def insert_late_checkin(self, doc: Document) -> bool:
        """Record a late check-in (`late_checkin_id`); False when it was recorded already."""
        return await self.insert_new(CLIENT_RECORDS, {**doc, "kind": LATE_CHECKINS})

    async def risk(self, client_id: str) -> Document | None:
        return (await self.last(RISK, client_id))[1]

    async def checkin(self, client_id: str) -> Document | None:
        """The client's current check-in: the latest by check-in time (`_current_checkin`)."""
        return (await self.current_checkin(client_id))[1]

    async def plan(self, client_id: str) -> Document | None:
        """The current safety-plan version (a retired plan is a version with retired=True)."""
        return (await self.last(PLANS, client_id))[1]

    async def plan_versions(self, client_id: str) -> list[Document]:
        last, _ = await self.last(PLANS, client_id)
        found = await asyncio.gather(*(self._get(PLANS, client_id, v) for v in range(1, last + 1)))
        return [d for d in found if d is not None]

    async def insert_plan_version(self, doc: Document) -> bool:
        """Insert a plan version `_id` seq_id(PLANS, client, version); False when that version exists."""
        return await self.insert_new(CLIENT_RECORDS, {**doc, "kind": PLANS})

    async def session(self, session_id: str) -> Document | None:
        if not session_id:
            return None
        return await self._grouped.finds(SESSIONS).get(session_id)

    # -- alerts
    async def alert(self, alert_id: str) -> Document | None:
        return await self._grouped.finds(ALERTS, NO_OUTBOX).get(alert_id)

    async def active_alert(self, client_id: str) -> Document | None:
        """Lookups by _id only: FerretDB 1.x scans a collection for any other filter."""
        slot = await self.per_client.find_one({"_id": active_id(client_id)})
        if slot is None:
            return None
        return await self.alert(slot["alert_id"])

    async def take_active(self, client_id: str, alert_id: str) -> str | None:
        """Make `alert_id` the client's active alert; returns the alert id that holds the slot."""
        slot = {"_id": active_id(client_id), "kind": "active", "client_id": client_id, "alert_id": alert_id}
        if await self.insert_new(CLIENT_RECORDS, slot):
            return alert_id
        held = await self.per_client.find_one({"_id": active_id(client_id)})
        return held["alert_id"] if held else None

    async def release_active(self, client_id: str, alert_id: str) -> None:
        await self.per_client.delete_one({"_id": active_id(client_id), "alert_id": alert_id})

    async def records(self, alert: Document) -> list[Document]:
        """The alert's records, by _id lookups only (the local store pushes down nothing else):
        `<alert>:rung:<n>` for each rung, `<alert>:resolved`, the action log `<alert>:act:<seq>`,
        and the rungs of restarted ladders `<alert>:round:<k>:rung:<n>`."""
        return (await self.records_of_many([alert]))[alert["_id"]]

    async def records_of_many(self, alerts: list[Document]) -> dict[str, list[Document]]:
        """`records` of many alerts in a few `$in` queries: their rungs, resolutions, first action
        and first restarted round's first rung at once, then the rest of their action logs one
        position at a time (each round asks only the logs that went on; most alerts have at most
        one action), then the restarted rounds one at a time (most alerts have none)."""
        coll = self.db[ALERT_RECORDS]
        steps = {a["_id"]: len(a["policy"]["steps"]) for a in alerts}
        fixed = {
            alert_id: [rung_id(alert_id, i) for i in range(n)] + [f"{alert_id}:resolved"]
            for alert_id, n in steps.items()
        }
        ids = [i for alert_ids in fixed.values() for i in alert_ids]
        ids += [act_id(a, 0) for a in fixed] + [rung_id(a, 0, 1) for a in fixed]
        found = await find_by_ids(coll, ids, NO_OUTBOX)
        records = {alert_id: [found[i] for i in own if i in found] for alert_id, own in fixed.items()}
        restarted = {a: found[rung_id(a, 0, 1)] for a in fixed if rung_id(a, 0, 1) in found}
        going, seq = [a for a in fixed if act_id(a, 0) in found], 0
        while going:
            for alert_id in going:
                records[alert_id].append(found[act_id(alert_id, seq)])
            seq += 1
            found = await find_by_ids(coll, [act_id(a, seq) for a in going], NO_OUTBOX)
            going = [a for a in going if act_id(a, seq) in found]
        ladder_round = 1
        while restarted:  # round k's first rung is its commit: read its other rungs and round k+1's first
            ids = [rung_id(a, i, ladder_round) for a in restarted for i in range(1, steps[a])]
            found = await find_by_ids(coll, ids + [rung_id(a, 0, ladder_round + 1) for a in restarted], NO_OUTBOX)
            for alert_id, first in restarted.items():
                own = [rung_id(alert_id, i, ladder_round) for i in range(1, steps[alert_id])]
                records[alert_id].extend([first, *(found[i] for i in own if i in found)])
            ladder_round += 1
            restarted = {
                a: found[rung_id(a, 0, ladder_round)] for a in restarted if rung_id(a, 0, ladder_round) in found
            }
        return records

    async def alerts_by_id(self, alert_ids: list[str]) -> list[Document]:
        return list((await find_by_ids(self.alerts, alert_ids, NO_OUTBOX)).values())

    async def append_action(
        self, alert_id: str, first_free: int, make: Callable[[str], Document], *, as_read: bool = False
    ) -> Document | None:
        """Append to the alert's action log at the first free position (unique ids make the log safe
        under concurrent writers); `make(record_id)` builds the record. None if the log kept moving.
        `as_read`: only at `first_free`, the position the writer read free (None when it is taken
        now): the record is then the commit of a decision taken on the whole log as read, as a rung's
        unique id is (two writers that read the same log collide; one that read less fails)."""
        for seq in range(first_free, first_free + (1 if as_read else 20)):
            doc = make(act_id(alert_id, seq))
            if await self.insert_new(ALERT_RECORDS, doc):
                return doc
        return None

    async def record(self, record_id: str) -> Document | None:
        return await self.db[ALERT_RECORDS].find_one({"_id": record_id}, NO_OUTBOX)

    async def set_alert_state(self, alert_id: str, fields: dict[str, Any]) -> None:
        await self.alerts.update_one({"_id": alert_id}, {"$set": fields})

    # -- sessions
    async def upsert_session(self, session_id: str, fields: dict[str, Any], on_insert: dict[str, Any]) -> None:
        update: dict[str, Any] = {"$set": fields}
        if on_insert:
            update["$setOnInsert"] = on_insert
        await self.sessions.update_one({"_id": session_id}, update, upsert=True)

    # -- the care team
    async def treats(self, clinician_id: str, client_id: str) -> bool:
        """Whether the clinician treats the client: one find by _id."""
        return await self._grouped.finds(CARE_TEAM).get(care_team_id(client_id, clinician_id)) is not None

    async def link_care_team(self, session_id: str, client_ids: list[str], clinician_ids: list[str]) -> None:
        """The clinicians treat the clients of session `session_id`: a link per pair and session,
        then the pair (unique inserts: a redelivery or another session of the pair adds nothing).
        The link goes first, so that `unlink_care_team` racing this finds it or deletes the pair
        before it is inserted."""
        await self._link(_links(session_id, client_ids, clinician_ids, datetime.now(UTC)))

    async def _link(self, links: list[Document]) -> None:
        await self._grouped.inserts(CARE_TEAM_LINKS).insert(links)
        await self._grouped.inserts(CARE_TEAM).insert([_pair(link) for link in links])

    async def unlink_care_team(self, session_id: str) -> None:
        """Session `session_id` was cancelled: its links go, and a pair that no other session links
        goes too (`_unlink`). Queries by `session_id` and `pair` (indexed; scans on the local
        FerretDB): a cancellation's cost, not an access check's."""
        await self._unlink(await self.db[CARE_TEAM_LINKS].find({"session_id": session_id}).to_list())

    async def _unlink(self, own: list[Document]) -> None:
        """Delete these links, and each pair no other session links. A session linking the pair
        meanwhile (another partition) inserted its link before the second look here (which puts the
        pair back) or inserts the pair after it was deleted."""
        if not own:
            return
        links = self.db[CARE_TEAM_LINKS]
        await links.delete_many({"_id": {"$in": [link["_id"] for link in own]}})
        for link in own:
            if await links.find_one({"pair": link["pair"]}, {"_id": 1}) is not None:
                continue
            await self.db[CARE_TEAM].delete_one({"_id": link["pair"]})
            if await links.find_one({"pair": link["pair"]}, {"_id": 1}) is not None:
                await self.insert_new(CARE_TEAM, _pair(link))

    async def session_ids(self, after: str | None = None) -> list[str]:
        """The `_id` of every stored session (after `after`), in order: one scan, sorted here (asked
        to sort, FerretDB holds every matching document, whole, in memory until the last is read).
        The hint keeps MongoDB on the `_id` index alone (FerretDB ignores it)."""
        query: Document = {} if after is None else {"_id": {"$gt": after}}
        return sorted([doc["_id"] async for doc in self.sessions.find(query, {"_id": 1}).hint([("_id", 1)])])

    async def link_stored_sessions(self, session_ids: list[str]) -> tuple[int, int]:
        """The care team of these stored sessions, as their events make it (`link_care_team`), for a
        session applied without it (before 2026-12-08, or by a replica of a version before): each
        session not cancelled links its treating clinicians with its clients, and a cancelled
        session's links (an older replica applied its cancellation after this service linked it) go
        (`_unlink`). A few commands for the lot, whatever their number: the sessions' read, the links'
        and the pairs' inserts, the statuses read again, the cancelled sessions' possible links read
        by `_id`; then the unlinks. A session cancelled meanwhile is found cancelled by the second
        read (its cancellation wrote the status before looking for its links), or its cancellation
        found and removed the links. Returns (sessions linked, sessions whose links were removed)."""
        read = await find_by_ids(self.sessions, session_ids, SESSION_TEAM_FIELDS)
        live = [doc for doc in read.values() if doc.get("status") != "cancelled"]
        at = datetime.now(UTC)
        await self._link(
            [
                link
                for doc in live
                for link in _links(doc["_id"], doc.get("client_ids", []), session_clinicians(doc), at)
            ]
        )
        now = await find_by_ids(self.sessions, [doc["_id"] for doc in live], {"status": 1}) if live else {}
        cancelled = [
            doc
            for doc in read.values()
            if doc.get("status") == "cancelled" or now.get(doc["_id"], {}).get("status") == "cancelled"
        ]
        possible = [
            link["_id"]
            for doc in cancelled
            for link in _links(doc["_id"], doc.get("client_ids", []), session_clinicians(doc), at)
        ]
        found = await find_by_ids(self.db[CARE_TEAM_LINKS], possible) if possible else {}
        await self._unlink(list(found.values()))
        return len(live), len({link["session_id"] for link in found.values()})

    # -- the one atomic primitive
    async def insert_new(self, collection: str, doc: Document) -> bool:
        """Insert; False when a document with that _id (or unique key) exists already."""
        return not await self._grouped.inserts(collection).insert([doc])

    # -- ladder timers
    async def set_timer(self, alert_id: str, due_at: datetime | None, active: bool, first: bool = False) -> None:
        """The alert's next due time in the small `timers` collection (deleted when resolved).
        `first`: the alert was just opened, so its timer is most likely new; it is inserted (an
        upsert reads before it writes) and updated only if it was there already."""
        if active:
            fields = {"due_at": due_at, "set_at": datetime.now(UTC)}  # set_at: when it last changed
            if first and await self.insert_new(TIMERS, {"_id": alert_id, **fields}):
                return
            await self.db[TIMERS].update_one({"_id": alert_id}, {"$set": fields}, upsert=True)
        else:
            await self.db[TIMERS].delete_one({"_id": alert_id})

    async def timers(self) -> list[Document]:
        """Every active alert's timer (one scan of a collection of tiny documents)."""
        return await self.db[TIMERS].find({}).to_list()

    async def claim(self, alert_id: str, owner: str, now: datetime, until: datetime) -> bool:
        """Lease the alert's timer: a unique insert; an expired lease (its holder died) is taken over."""
        claims = self.db[CLAIMS]
        if await self.insert_new(CLAIMS, {"_id": alert_id, "owner": owner, "until": until}):
            return True
        held = await claims.find_one({"_id": alert_id})
        if held is not None and held["until"].astimezone(UTC) <= now:
            await claims.delete_one({"_id": alert_id, "owner": held["owner"], "until": held["until"]})
            return await self.insert_new(CLAIMS, {"_id": alert_id, "owner": owner, "until": until})
        return held is None and await self.insert_new(CLAIMS, {"_id": alert_id, "owner": owner, "until": until})

    async def release(self, alert_id: str, owner: str) -> None:
        await self.db[CLAIMS].delete_one({"_id": alert_id, "owner": owner})
