"""Programs, cohorts, availability profiles and clinician care (service layer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iop.events.v1 import scheduling_pb2
from services.plumbing.errors import AlreadyExists, FailedPrecondition, FieldViolations, NotFound, PermissionDenied
from services.plumbing.outbox import OutgoingEvent
from services.plumbing.protos import to_timestamp
from services.plumbing.storage import Document
from services.scheduler import domain as d
from services.scheduler import fhir
from services.scheduler.booking import derived_id, fhir_event
from services.scheduler.store import CARE_SESSIONS, CLIENTS, CLINICIANS, COHORTS, PROGRAMS, Conflict, SchedulerStore
from services.scheduler.topics import SESSIONS

CARE_KINDS = {1: "PEER_SUPERVISION", 2: "TEAM_CHECK_IN"}
MAX_OCCURRENCES = 52

WindowSpec = tuple[int, str, str]


@dataclass(frozen=True)
class TrackSpec:
    track_id: str
    name: str
    hours_per_day: float
    min_days_per_week: int
    max_days_per_week: int


class Programs:
    def __init__(self, store: SchedulerStore, reference: d.ReferenceData) -> None:
        self.store = store
        self.ref = reference

    async def create_program(
        self,
        request_id: str,
        name: str,
        time_zone: str,
        level_of_care: str,
        backup_line: str,
        tracks: Sequence[TrackSpec],
        rules: dict[str, int],
        payer_plan_id: str,
    ) -> Document:
        v = FieldViolations()
        v.require(bool(request_id.strip()), "request_id", "required (idempotency key)")
        v.require(bool(name.strip()) and len(name) <= 200, "name", "required, at most 200 characters")
        v.require(d.zone(time_zone) is not None, "time_zone", d.ZONE_RULE)
        v.require(
            level_of_care in self.ref.levels_of_care,
            "level_of_care",
            f"one of {', '.join(sorted(self.ref.levels_of_care))}",
        )
        d.validate_backup_line(backup_line, v)
        v.require(len(tracks) > 0, "tracks", "at least one track")
        ids = [t.track_id for t in tracks]
        v.require(len(set(ids)) == len(ids), "tracks", "track ids must be unique")
        for i, t in enumerate(tracks):
            v.require(bool(t.track_id.strip()), f"tracks[{i}].track_id", "required")
            v.require(0 < t.hours_per_day <= 8, f"tracks[{i}].hours_per_day", "more than 0, at most 8")
            v.require(1 <= t.min_days_per_week <= 7, f"tracks[{i}].min_days_per_week", "1 to 7")
            v.require(
                t.min_days_per_week <= t.max_days_per_week <= 7,
                f"tracks[{i}].max_days_per_week",
                "min_days_per_week to 7",
            )
        d.validate_rule_overrides(rules, "fatigue_rules", v)
        v.raise_if_any()
        doc = {
            "_id": derived_id("program", request_id),
            "request_id": request_id,
            "name": name,
            "time_zone": time_zone,
            "level_of_care": level_of_care,
            "backup_line": backup_line,
            "tracks": [t.__dict__ for t in tracks],
            "fatigue_rules": rules,
            "payer_plan_id": payer_plan_id,
            "created_at": datetime.now(UTC),
        }
        stored, _ = await self.store.insert_once(PROGRAMS, doc)
        return stored

    async def program(self, program_id: str) -> Document:
        doc = await self.store.get(PROGRAMS, program_id) if program_id else None
        if doc is None:
            raise NotFound("program", program_id)
        return doc

    async def create_cohort(
        self, request_id: str, program_id: str, track_id: str, client_ids: Sequence[str], starts_on: datetime | None
    ) -> Document:
        v = FieldViolations()
        v.require(bool(request_id.strip()), "request_id", "required (idempotency key)")
        v.require(bool(program_id.strip()), "program_id", "required")
        v.require(bool(track_id.strip()), "track_id", "required")
        d.validate_ids(client_ids, "client_ids", v)
        v.require(starts_on is not None, "starts_on", "required")
        v.raise_if_any()
        program = await self.program(program_id)
        if track_id not in {t["track_id"] for t in program["tracks"]}:
            raise NotFound("track", track_id)
        known = await self.store.get_many(CLIENTS, client_ids)
        for c in client_ids:
            if c not in known:
                raise NotFound("client", c)
        doc = {
            "_id": derived_id("cohort", request_id),
            "request_id": request_id,
            "program_id": program_id,
            "track_id": track_id,
            "client_ids": list(client_ids),
            "starts_on": starts_on,
            "created_at": datetime.now(UTC),
        }
        stored, _ = await self.store.insert_once(COHORTS, doc)
        return stored

    async def change_cohort(self, cohort_id: str, client_id: str, add: bool) -> Document:
        """Rolling admission and discharge: `client_id` joins (add) or leaves the cohort. Sessions
        already booked stay as they are: a client who left keeps their seats and sessions in the
        cohort's groups until they are cancelled (docs/scheduler.md)."""
        v = FieldViolations()
        v.require(bool(cohort_id.strip()), "cohort_id", "required")
        v.require(bool(client_id.strip()), "client_id", "required")
        v.raise_if_any()
        cohort, client = await asyncio.gather(self.store.cohort(cohort_id), self.store.get(CLIENTS, client_id))
        if cohort is None:
            raise NotFound("cohort", cohort_id)
        if add and client is None:
            raise NotFound("client", client_id)
        if (client_id in cohort["client_ids"]) == add:
            return cohort  # already so: a retry
        change = {"$addToSet": {"client_ids": client_id}} if add else {"$pull": {"client_ids": client_id}}
        updated = await self.store.update_cohort(cohort_id, change)
        if updated is None:
            raise NotFound("cohort", cohort_id)
        return updated

    async def set_clinician(
        self,
        clinician_id: str,
        time_zone: str,
        state: str,
        windows: Sequence[WindowSpec],
        rules: dict[str, int] | None,
    ) -> Document:
        """Create or update a clinician's profile; `rules` None keeps the fatigue rules it has (none
        for a new profile)."""
        v = FieldViolations()
        v.require(bool(clinician_id.strip()), "clinician_id", "required")
        v.require(d.zone(time_zone) is not None, "time_zone", d.ZONE_RULE)
        v.require(state in d.US_STATES, "state", "must be a USPS state or territory code")
        parsed = d.parse_windows(windows, "windows", v)
        v.require(bool(windows), "windows", "at least one weekly window")
        d.validate_rule_overrides(rules or {}, "fatigue_rules", v)
        v.raise_if_any()
        fields: Document = {"time_zone": time_zone, "state": state, "windows": [w.as_doc() for w in parsed]}
        on_insert: Document = {"created_at": datetime.now(UTC)}
        if rules is None:
            on_insert["fatigue_rules"] = {}
        else:
            fields["fatigue_rules"] = rules
        return await self.store.save_profile(
            CLINICIANS, clinician_id, fields, on_insert, [fhir_event(fhir.practitioner(clinician_id))]
        )

    async def set_client(
        self,
        client_id: str,
        time_zone: str,
        windows: Sequence[WindowSpec],
        alone_windows: Sequence[WindowSpec],
        home_state: str,
        payer_plan_id: str,
    ) -> Document:
        v = FieldViolations()
        v.require(bool(client_id.strip()), "client_id", "required")
        tz = d.zone(time_zone)
        v.require(tz is not None, "time_zone", d.ZONE_RULE)
        v.require(home_state in d.US_STATES, "home_state", "must be a USPS state or territory code")
        parsed = d.parse_windows(windows, "windows", v)
        v.require(bool(windows), "windows", "at least one weekly window")
        alone = d.parse_windows(alone_windows, "alone_windows", v)
        for i, w in enumerate(alone):
            if not any(
                a.weekday == w.weekday and a.start_min <= w.start_min and w.end_min <= a.end_min for a in parsed
            ):
                v.add(f"alone_windows[{i}]", "must lie inside an availability window")
        v.raise_if_any()
        return await self.store.save_profile(
            CLIENTS,
            client_id,
            {
                "time_zone": time_zone,
                "windows": [w.as_doc() for w in parsed],
                "alone_windows": [w.as_doc() for w in alone],
                "home_state": home_state,
                "payer_plan_id": payer_plan_id,
            },
            {"tech_check_required": True, "tech_check_trigger": "FIRST_SESSION", "privacy_sensitive": False},
            [fhir_event(fhir.patient(client_id))],
        )

    # ---------- clinician care ----------

    async def create_care_series(
        self,
        request_id: str,
        kind: int,
        clinician_ids: Sequence[str],
        facilitator_id: str,
        first_start: datetime | None,
        duration_minutes: int,
        interval_days: int,
        occurrences: int,
        time_zone: str,
    ) -> tuple[str, list[Document]]:
        v = FieldViolations()
        v.require(bool(request_id.strip()), "request_id", "required (idempotency key)")
        v.require(kind in CARE_KINDS, "kind", "PEER_SUPERVISION or TEAM_CHECK_IN")
        v.require(len(clinician_ids) >= 2, "clinician_ids", "at least two clinicians")
        d.validate_ids(clinician_ids, "clinician_ids", v)
        v.require(facilitator_id in clinician_ids, "facilitator_id", "must be one of clinician_ids")
        v.require(15 <= duration_minutes <= 180 and duration_minutes % 15 == 0, "duration_minutes", "15 to 180, in 15s")
        v.require(1 <= interval_days <= 31, "interval_days", "1 to 31")
        v.require(1 <= occurrences <= MAX_OCCURRENCES, "occurrences", f"1 to {MAX_OCCURRENCES}")
        tz = d.zone(time_zone)
        v.require(tz is not None, "time_zone", d.ZONE_RULE)
        now = datetime.now(UTC)
        if first_start is not None and first_start - now > d.HORIZON:  # (adding to it could overflow)
            d.validate_horizon(first_start, now, "first_starts_at", v)
        else:
            end = first_start + timedelta(minutes=max(duration_minutes, 0)) if first_start else None
            d.validate_times(first_start, end, now, v, timedelta(hours=3), "first_starts_at", "duration_minutes")
            if first_start is not None and 1 <= interval_days <= 31 and 1 <= occurrences <= MAX_OCCURRENCES:
                last = first_start + timedelta(days=interval_days * (occurrences - 1))
                v.require(
                    last - now <= d.HORIZON, "occurrences", f"the last must start at most {d.HORIZON.days} days ahead"
                )
        v.raise_if_any()
        assert tz is not None and first_start is not None
        known = await self.store.get_many(CLINICIANS, clinician_ids)
        for c in clinician_ids:
            if c not in known:
                raise NotFound("clinician", c)
        series_id = f"series-{uuid.uuid5(uuid.NAMESPACE_URL, request_id)}"
        duration = timedelta(minutes=duration_minutes)
        docs: list[Document] = []
        for n, start in enumerate(d.recurrence(first_start, tz, interval_days, occurrences)):
            keys = [
                d.slot_key(d.clinician_owner(c), at)
                for c in clinician_ids
                for at in d.slot_starts(start, start + duration)
            ]
            docs.append(
                {
                    "_id": f"{series_id}-{n:02d}",
                    "request_id": f"{request_id}#{n}",
                    "series_id": series_id,
                    "kind": kind,
                    "clinician_ids": list(clinician_ids),
                    "facilitator_id": facilitator_id,
                    "starts_at": start,
                    "ends_at": start + duration,
                    "time_zone": time_zone,
                    "interval_days": interval_days,
                    "occurrences": occurrences,
                    "attended": [],
                    "missed": [],
                    "slot_keys": keys,
                }
            )
        # A retry finds the occurrences stored before; the others are all claimed, then written.
        stored = await self.store.get_many(CARE_SESSIONS, [doc["_id"] for doc in docs])
        _refuse_other_content(series_id, docs, stored)
        missing = [doc for doc in docs if doc["_id"] not in stored]
        await self._claim_all(missing)
        writes = await asyncio.gather(
            *(
                self.store.insert_once(CARE_SESSIONS, doc, [OutgoingEvent(SESSIONS.name, doc["_id"], _scheduled(doc))])
                for doc in missing
            ),
            return_exceptions=True,
        )
        failed = [doc for doc, w in zip(missing, writes, strict=True) if isinstance(w, BaseException)]
        if failed:  # the store failed: what was written stays (a retry completes the series), the rest is freed
            error = next(w for w in writes if isinstance(w, BaseException))
            try:  # a write can fail after the store applied it (a connection lost on the reply)
                written = await self.store.existing_ids(CARE_SESSIONS, [doc["_id"] for doc in failed])
            except Exception:
                raise error from None  # unknown: the orphan sweep frees the claims of what was not stored
            unwritten = [doc for doc in failed if doc["_id"] not in written]
            await asyncio.gather(*(self.store.release(doc["slot_keys"], doc["_id"]) for doc in unwritten))
            raise error
        lost: list[tuple[Document, Document]] = []  # (ours, another request's under the same id)
        for doc, write in zip(missing, writes, strict=True):
            assert not isinstance(write, BaseException)
            stored[doc["_id"]] = write[0]  # (a concurrent retry's, when it got there first)
            if not write[1] and not _same_occurrence(write[0], doc):
                lost.append((doc, write[0]))
        # a concurrent call reused the request_id for another series and got there first: give back
        # the claims of ours that are not also its own (the same key under the same id is its claim)
        await asyncio.gather(
            *(
                self.store.release(
                    [k for k in ours["slot_keys"] if k not in set(theirs.get("slot_keys", []))], ours["_id"]
                )
                for ours, theirs in lost
            )
        )
        _refuse_other_content(series_id, docs, stored)
        return series_id, [stored[doc["_id"]] for doc in docs]

    async def _claim_all(self, occurrences: Sequence[Document]) -> None:
        """Claim the slots of every occurrence, or none: when one collides, the others' claims are
        given back before the refusal (nothing of a refused series is written)."""
        results = await asyncio.gather(
            *(self.store.claim(doc["slot_keys"], doc["_id"], "care") for doc in occurrences), return_exceptions=True
        )
        failures = [(doc, r) for doc, r in zip(occurrences, results, strict=True) if isinstance(r, BaseException)]
        if not failures:
            return
        taken = [doc for doc, r in zip(occurrences, results, strict=True) if not isinstance(r, BaseException)]
        await asyncio.gather(*(self.store.release(doc["slot_keys"], doc["_id"]) for doc in taken))
        doc, error = failures[0]
        if isinstance(error, Conflict):
            n = int(doc["_id"].rsplit("-", 1)[1]) + 1
            raise FailedPrecondition(
                "CLINICIAN_DOUBLE_BOOKED", f"occurrence {n} collides with a clinician's session", {"occurrence": str(n)}
            ) from error
        raise error

    async def record_care_attendance(
        self, care_id: str, clinician_id: str, attended: bool, recorder: str | None = None
    ) -> Document:
        """`recorder` (a clinician's id) may record their own attendance, or anyone's as the care
        session's facilitator; None records anyone's (a supervisor or the platform)."""
        v = FieldViolations()
        v.require(bool(care_id), "care_session_id", "required")
        v.require(bool(clinician_id), "clinician_id", "required")
        v.raise_if_any()
        doc = await self.store.get(CARE_SESSIONS, care_id)
        # A clinician who is not part of the care session is refused alike whether it exists or not.
        if recorder is not None and (
            doc is None
            or recorder not in doc["clinician_ids"]
            or recorder not in (clinician_id, doc.get("facilitator_id"))
        ):
            raise PermissionDenied(
                "NOT_OWN_RECORD", "a clinician records their own attendance; the facilitator records anyone's"
            )
        if doc is None:
            raise NotFound("care_session", care_id)
        if clinician_id not in doc["clinician_ids"]:
            raise FailedPrecondition("NOT_A_PARTICIPANT", "the clinician is not part of this care session")
        if clinician_id in doc["attended"] + doc["missed"]:
            return doc
        field = "attended" if attended else "missed"
        event = scheduling_pb2.CareSessionAttended(
            care_session_id=care_id, clinician_id=clinician_id, attended=attended, kind=CARE_KINDS[doc["kind"]]
        )
        updated = await self.store.update_care(
            care_id,
            {"attended": {"$ne": clinician_id}, "missed": {"$ne": clinician_id}},
            {"$push": {field: clinician_id}},
            [OutgoingEvent(SESSIONS.name, care_id, event)],
        )
        return updated or await self.store.get(CARE_SESSIONS, care_id) or doc

    async def care_summary(self, clinician_id: str) -> Document:
        if await self.store.get(CLINICIANS, clinician_id) is None:
            raise NotFound("clinician", clinician_id)
        sessions = await self.store.care_of(clinician_id)
        now = datetime.now(UTC)
        attended = [s for s in sessions if clinician_id in s["attended"]]
        missed = [s for s in sessions if clinician_id in s["missed"]]
        last = max((_utc(s["starts_at"]) for s in attended), default=None)
        upcoming = [_utc(s["starts_at"]) for s in sessions if _utc(s["starts_at"]) > now]
        window = timedelta(days=self.ref.supervision_overdue_days)
        supervision = [s for s in sessions if s["kind"] == 1]
        last_supervision = max(
            (_utc(s["starts_at"]) for s in supervision if clinician_id in s["attended"]), default=None
        )
        first_supervision = min((_utc(s["starts_at"]) for s in supervision), default=None)
        # overdue: in the supervision rota for longer than the policy window, none attended within it
        overdue = (
            first_supervision is not None
            and first_supervision < now - window
            and (last_supervision is None or now - last_supervision > window)
        )
        return {
            "clinician_id": clinician_id,
            "attended": len(attended),
            "missed": len(missed),
            "last_attended_at": last,
            "next_at": min(upcoming, default=None),
            "overdue": overdue,
        }


# What makes two requests the same care series: a retry returns the series, another series under
# the same request_id is refused (as a booking's is).
_SERIES_FIELDS = ("kind", "clinician_ids", "facilitator_id", "time_zone", "interval_days", "occurrences")


def _same_occurrence(stored: Document, wanted: Document) -> bool:
    def value(doc: Document, field: str) -> object:
        return sorted(doc[field]) if field == "clinician_ids" else doc[field]  # the members, in any order

    return all(
        value(stored, f) == value(wanted, f)
        for f in _SERIES_FIELDS
        if f in stored  # occurrences stored before 2026-12-07 have no interval_days / occurrences
    ) and (_utc(stored["starts_at"]), _utc(stored["ends_at"])) == (_utc(wanted["starts_at"]), _utc(wanted["ends_at"]))


def _refuse_other_content(series_id: str, wanted: Sequence[Document], stored: dict[str, Document]) -> None:
    """ALREADY_EXISTS REQUEST_ID_REUSED when the request_id created a series other than this request's
    (other clinicians, facilitator, kind, times, interval, count or zone)."""
    if any(doc["_id"] in stored and not _same_occurrence(stored[doc["_id"]], doc) for doc in wanted):
        raise AlreadyExists(
            "REQUEST_ID_REUSED",
            "this request_id created another care series; use a new request_id for a new series",
            {"series_id": series_id},
        )


def _scheduled(care: Document) -> scheduling_pb2.CareSessionScheduled:
    return scheduling_pb2.CareSessionScheduled(
        care_session_id=care["_id"],
        series_id=care["series_id"],
        kind=CARE_KINDS[care["kind"]],
        clinician_ids=care["clinician_ids"],
        starts_at=to_timestamp(care["starts_at"]),
        ends_at=to_timestamp(care["ends_at"]),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
