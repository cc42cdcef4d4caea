"""Pure scheduling rules: no I/O.

Times are aware datetimes in UTC; availability is weekly windows in the owner's
IANA time zone, converted instant by instant (so daylight-saving transitions are
handled by zoneinfo, never by fixed offsets). Bookings reserve 15-minute slot
keys; fatigue and burnout rules are evaluated on the owner's day ledger.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from services.plumbing.errors import FieldViolations

DATA_DIR = Path(__file__).parent / "data"
SLOT = timedelta(minutes=15)
MAX_SESSION_LENGTH = timedelta(hours=4)
MAX_GROUP_SIZE = 15
MAX_SEARCH_WINDOW = timedelta(days=31)
HORIZON = timedelta(days=730)  # how far ahead bookings, searches and care series may reach

GROUP, INDIVIDUAL, EVALUATION, PEER_SUPERVISION = 1, 2, 3, 4
KIND_NAMES = {GROUP: "GROUP", INDIVIDUAL: "INDIVIDUAL", EVALUATION: "EVALUATION", PEER_SUPERVISION: "PEER_SUPERVISION"}
VIDEO, AUDIO_ONLY, MIXED = 1, 2, 3

BOOKED, CHECKED_IN, IN_PROGRESS, ENDED = "booked", "checked_in", "in_progress", "ended"
INTERRUPTED, CANCELLED, RESCHEDULED = "interrupted", "cancelled", "rescheduled"
ACTIVE_STATUSES = (BOOKED, CHECKED_IN, IN_PROGRESS)
OVER_STATUSES = (ENDED, CANCELLED, RESCHEDULED)  # took place, or will not (moved: a new session)
ATTESTATIONS = frozenset({"alone", "headphones", "alternate_location", "compromised"})
INTERRUPTION_REASONS = frozenset({"DISCONNECTED", "PRIVACY_COMPROMISED", "OTHER"})
FACILITATOR_ROLES = frozenset({"lead", "co_facilitator", "observer"})
# Facilitators who treat the group's clients: they act on the session and need a license for the
# clients' states. An observer watches: reads the session, acts on nothing, is not checked.
TREATING_ROLES = frozenset({"lead", "co_facilitator"})
TURN_TAKING_MODES = frozenset({"", "raise_hand", "round_robin", "open"})
US_STATES = frozenset(
    (
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
        "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP"
    ).split()
)
BACKUP_LINE = re.compile(r"^(\+[1-9][0-9]{7,14}(,[0-9#*]{1,20})?|[a-z][a-z0-9+.-]*:[^\s]{3,200})$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")

# Rule names: the FAILED_PRECONDITION reasons of a refused booking.
MIN_GAP = "MIN_GAP_BETWEEN_SESSIONS"
MAX_BACK_TO_BACK = "MAX_BACK_TO_BACK_SESSIONS"
MAX_CONTINUOUS_VIDEO = "MAX_CONTINUOUS_VIDEO"
MAX_DAILY_CLINICIAN = "MAX_DAILY_SCREEN_TIME_CLINICIAN"
MAX_DAILY_CLIENT = "MAX_DAILY_SCREEN_TIME_CLIENT"


# ---------- reference data ----------


@dataclass(frozen=True)
class Rules:
    max_continuous_video_minutes: int
    min_break_minutes: int
    long_session_minutes: int
    break_every_minutes: int
    break_minutes: int
    min_gap_minutes: int
    back_to_back_gap_minutes: int
    max_back_to_back_sessions: int
    max_clinician_screen_minutes_per_day: int
    max_client_screen_minutes_per_day: int

    def layered(self, overrides: dict[str, int] | None) -> Rules:
        """These rules with the set fields of `overrides` (program or clinician) taking precedence."""
        if not overrides:
            return self
        known = {k: int(v) for k, v in overrides.items() if k in RULE_FIELDS and v is not None}
        return replace(self, **known)


RULE_FIELDS = tuple(Rules.__dataclass_fields__)


@dataclass(frozen=True)
class ReferenceData:
    rules_version: str
    default_rules: Rules
    codes_version: str
    service_codes: dict[str, dict[str, str]]
    supervision_overdue_days: int

    @property
    def levels_of_care(self) -> frozenset[str]:
        return frozenset(self.service_codes)

    def service_code(self, level_of_care: str, kind: int) -> str:
        return self.service_codes.get(level_of_care, {}).get(KIND_NAMES.get(kind, ""), "")


def load_reference_data(data_dir: Path = DATA_DIR) -> ReferenceData:
    rules = yaml.safe_load((data_dir / "fatigue_rules.yaml").read_text())
    codes = yaml.safe_load((data_dir / "service_codes.yaml").read_text())
    return ReferenceData(
        rules_version=str(rules["version"]),
        default_rules=Rules(**{k: int(rules["rules"][k]) for k in RULE_FIELDS}),
        codes_version=str(codes["version"]),
        service_codes={str(k): {str(a): str(b) for a, b in v.items()} for k, v in codes["codes"].items()},
        supervision_overdue_days=int(codes["care"]["supervision_overdue_days"]),
    )


# What a program or clinician may set each rule to: values outside make no sense (a cap of 0
# back-to-back sessions, or of 0 continuous video minutes, would refuse every booking; a break of
# 0 minutes is none). Minutes, except max_back_to_back_sessions (sessions).
RULE_BOUNDS: dict[str, tuple[int, int]] = {
    "max_continuous_video_minutes": (15, 24 * 60),  # at least one slot
    "min_break_minutes": (0, 240),
    "long_session_minutes": (15, 24 * 60),
    "break_every_minutes": (15, 24 * 60),
    "break_minutes": (5, 60),
    "min_gap_minutes": (0, 240),
    "back_to_back_gap_minutes": (0, 240),
    # 1: no session may follow another back to back; above 96 (a day of 15-minute slots): no cap
    "max_back_to_back_sessions": (1, 24 * 60),
    "max_clinician_screen_minutes_per_day": (15, 24 * 60),
    "max_client_screen_minutes_per_day": (15, 24 * 60),
}


def validate_rule_overrides(overrides: dict[str, int], prefix: str, v: FieldViolations) -> None:
    for name, value in overrides.items():
        low, high = RULE_BOUNDS[name]
        unit = "sessions" if name == "max_back_to_back_sessions" else "minutes"
        v.require(low <= value <= high, f"{prefix}.{name}", f"must be between {low} and {high} {unit}")


# ---------- time zones and weekly windows ----------


# The areas of the IANA region zones (`Area/Location`). Names outside them are not accepted: the
# special files of a zoneinfo tree (`localtime` follows the server's zone, `Factory` has no offset,
# `posixrules`), the `posix/` and `right/` copies (`right/` counts leap seconds, so its wall clock
# is off by them), fixed offsets (`EST`, `Etc/GMT+5`) and legacy aliases (`US/Eastern`).
ZONE_AREAS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
)


ZONE_RULE = "must be an IANA region time zone (Area/Location, e.g. America/New_York) or UTC"


@functools.cache
def region_zones() -> frozenset[str]:
    """The IANA region zones this machine's time zone database knows, and UTC."""
    return frozenset(n for n in available_timezones() if n == "UTC" or n.split("/", 1)[0] in ZONE_AREAS)


def stored_zone(name: str) -> ZoneInfo:
    """The zone of a saved profile or program, read as saved: it passed the rule of its day (zones
    such as `US/Eastern` did until 2026-12-07), and a booking must not fail on it now."""
    return ZoneInfo(name)


def zone(name: str) -> ZoneInfo | None:
    """The IANA region zone (`America/New_York`) or UTC; None for any other name."""
    if name not in region_zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Window:
    weekday: int  # 0 = Monday
    start_min: int  # minutes after local midnight
    end_min: int  # exclusive; 1440 = end of day

    def as_doc(self) -> dict[str, Any]:
        return {"weekday": self.weekday, "start": _hhmm(self.start_min), "end": _hhmm(self.end_min)}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse_windows(raw: Sequence[tuple[int, str, str]], field_name: str, v: FieldViolations) -> list[Window]:
    """Validated weekly windows; bad or overlapping ones are reported to `v`."""
    windows: list[Window] = []
    for i, (weekday, start, end) in enumerate(raw):
        name = f"{field_name}[{i}]"
        ok = True
        if not 0 <= weekday <= 6:
            v.add(f"{name}.weekday", "must be 0 (Monday) to 6 (Sunday)")
            ok = False
        if not HHMM.match(start) or start == "24:00":
            v.add(f"{name}.start", "must be HH:MM")
            ok = False
        if not HHMM.match(end):
            v.add(f"{name}.end", "must be HH:MM (24:00 = end of day)")
            ok = False
        if not ok:
            continue
        window = Window(weekday, _minutes(start), _minutes(end))
        if window.end_min <= window.start_min:
            v.add(f"{name}.end", "must be after start (zero-length or inverted window)")
            continue
        windows.append(window)
    by_day = sorted(windows, key=lambda w: (w.weekday, w.start_min))
    for a, b in itertools.pairwise(by_day):
        if a.weekday == b.weekday and b.start_min < a.end_min:
            v.add(field_name, f"overlapping availability on weekday {a.weekday}: {_hhmm(b.start_min)}")
    return by_day


def windows_from_docs(docs: Iterable[dict[str, Any]]) -> list[Window]:
    return [Window(int(d["weekday"]), _minutes(d["start"]), _minutes(d["end"])) for d in docs]


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    """The local calendar days of `tz` that [start, end) touches, in order."""
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def within_windows(start: datetime, end: datetime, tz: ZoneInfo, windows: Sequence[Window]) -> bool:
    """Whether weekly windows cover [start, end) in local time of `tz`.

    Each local day the session touches needs one window covering that day's part of it, so a
    session across local midnight fits a window that ends at 24:00 followed by one that starts at
    00:00 the next day (e.g. every day 00:00-24:00), and no other way."""
    local_start = start.astimezone(tz)
    local_last = (end - timedelta(microseconds=1)).astimezone(tz)
    for day in local_days(start, end, tz):
        from_min = local_start.hour * 60 + local_start.minute if day == local_start.date() else 0
        # wall-clock end; a session across a DST change is measured by its local end
        to_min = local_last.hour * 60 + local_last.minute + 1 if day == local_last.date() else 24 * 60
        if not any(w.weekday == day.weekday() and w.start_min <= from_min and to_min <= w.end_min for w in windows):
            return False
    return True


def local_day(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).date().isoformat()


# ---------- slot reservations ----------


def aligned(at: datetime) -> bool:
    return at.second == 0 and at.microsecond == 0 and at.minute % 15 == 0


def slot_starts(start: datetime, end: datetime) -> list[datetime]:
    out = []
    at = start
    while at < end:
        out.append(at)
        at += SLOT
    return out


def slot_key(owner: str, at: datetime) -> str:
    """The reservation key of one 15-minute slot of one clinician or client (opaque ids only)."""
    return f"{owner}@{at.astimezone(UTC).strftime('%Y%m%dT%H%M')}"


def clinician_owner(clinician_id: str) -> str:
    return f"clinician:{clinician_id}"


def client_owner(client_id: str) -> str:
    return f"client:{client_id}"


# ---------- screen time, breaks and fatigue rules ----------

Segment = tuple[datetime, datetime]


def break_plan(start: datetime, end: datetime, rules: Rules) -> list[Segment]:
    """Breaks built into a long session: `break_minutes` after every `break_every_minutes` on screen."""
    if end - start <= timedelta(minutes=rules.long_session_minutes) or rules.break_every_minutes <= 0:
        return []
    breaks: list[Segment] = []
    every, length = timedelta(minutes=rules.break_every_minutes), timedelta(minutes=rules.break_minutes)
    at = start + every
    while at + length < end:
        breaks.append((at, at + length))
        at += length + every
    return breaks


def screen_segments(start: datetime, end: datetime, breaks: Sequence[Segment], video: bool) -> list[Segment]:
    """On-screen stretches of a session (none for an audio-only session)."""
    if not video:
        return []
    out: list[Segment] = []
    at = start
    for b_start, b_end in breaks:
        out.append((at, b_start))
        at = b_end
    out.append((at, end))
    return out


@dataclass(frozen=True)
class Booked:
    """A booked session as the rules see it: its time and its on-screen stretches."""

    session_id: str
    start: datetime
    end: datetime
    segments: tuple[Segment, ...] = field(default=())

    def screen_minutes(self) -> int:
        return int(sum((e - s).total_seconds() for s, e in self.segments) // 60)

    def as_entry(self) -> str:
        """The form a day ledger stores: `<session id> <start> <end> <start>-<end> ...` (the session,
        then its on-screen segments), in epoch seconds. As a document with dates, an entry cost the
        local store (FerretDB keeps a type schema beside every nested field) about three times as
        much to write and to read."""
        if " " in self.session_id:
            raise ValueError("a ledger entry's session id has no spaces")
        times = [str(_epoch(self.start)), str(_epoch(self.end))]
        return " ".join([self.session_id, *times, *(f"{_epoch(s)}-{_epoch(e)}" for s, e in self.segments)])

    @staticmethod
    def from_entry(entry: str | dict[str, Any]) -> Booked:
        """A day ledger's entry: the string of `as_entry`, or the document that revisions written
        before 2026-12-07 hold."""
        if isinstance(entry, dict):
            return Booked(
                entry["session_id"],
                _utc(entry["start"]),
                _utc(entry["end"]),
                tuple(segments_from_docs(entry.get("segments", []))),
            )
        session_id, start, end, *segments = entry.split(" ")
        stretches = (segment.split("-") for segment in segments)
        return Booked(
            session_id,
            _from_epoch(start),
            _from_epoch(end),
            tuple((_from_epoch(s), _from_epoch(e)) for s, e in stretches),
        )


def _epoch(at: datetime) -> int:
    seconds = at.timestamp()
    if seconds != int(seconds):
        raise ValueError("ledger times are whole seconds")
    return int(seconds)


def _from_epoch(seconds: str) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def segment_docs(segments: Iterable[Segment]) -> list[dict[str, datetime]]:
    """Segments as documents (the store does not take nested arrays)."""
    return [{"start": s, "end": e} for s, e in segments]


def segments_from_docs(docs: Iterable[dict[str, datetime]]) -> list[Segment]:
    return [(_utc(x["start"]), _utc(x["end"])) for x in docs]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _minutes_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def clinician_violations(existing: Sequence[Booked], new: Booked, rules: Rules) -> list[str]:
    """Fatigue/burnout rules a clinician's new booking breaks, given the clinician's other bookings that day."""
    violations: list[str] = []
    ordered = sorted([*existing, new], key=lambda b: b.start)
    idx = ordered.index(new)
    neighbours = [ordered[i] for i in (idx - 1, idx + 1) if 0 <= i < len(ordered)]
    for other in neighbours:
        gap = (
            _minutes_between(other.end, new.start)
            if other.start < new.start
            else _minutes_between(new.end, other.start)
        )
        if gap < rules.min_gap_minutes:
            violations.append(MIN_GAP)
            break
    # back-to-back chain containing the new booking
    chain_start = idx
    while chain_start > 0 and _minutes_between(ordered[chain_start - 1].end, ordered[chain_start].start) <= (
        rules.back_to_back_gap_minutes
    ):
        chain_start -= 1
    chain_end = idx
    while chain_end + 1 < len(ordered) and _minutes_between(ordered[chain_end].end, ordered[chain_end + 1].start) <= (
        rules.back_to_back_gap_minutes
    ):
        chain_end += 1
    if chain_end - chain_start + 1 > rules.max_back_to_back_sessions:
        violations.append(MAX_BACK_TO_BACK)
    if longest_run_with(ordered, new, rules.min_break_minutes) > rules.max_continuous_video_minutes:
        violations.append(MAX_CONTINUOUS_VIDEO)
    if sum(b.screen_minutes() for b in ordered) > rules.max_clinician_screen_minutes_per_day:
        violations.append(MAX_DAILY_CLINICIAN)
    return violations


def client_violations(existing: Sequence[Booked], new: Booked, rules: Rules) -> list[str]:
    """Rules a client's new booking breaks, given the client's other bookings that day."""
    if sum(b.screen_minutes() for b in [*existing, new]) > rules.max_client_screen_minutes_per_day:
        return [MAX_DAILY_CLIENT]
    return []


def longest_run_with(bookings: Sequence[Booked], new: Booked, min_break_minutes: int) -> float:
    """Longest continuous on-screen run (gaps shorter than a real break join runs) that includes `new`."""
    segments = sorted(((s, e, b is new) for b in bookings for s, e in b.segments), key=lambda x: x[0])
    longest = 0.0
    run_start: datetime | None = None
    run_end: datetime | None = None
    has_new = False
    for s, e, is_new in segments:
        if run_start is None or run_end is None or _minutes_between(run_end, s) >= min_break_minutes:
            if run_start is not None and run_end is not None and has_new:
                longest = max(longest, _minutes_between(run_start, run_end))
            run_start, run_end, has_new = s, e, is_new
        else:
            run_end = max(run_end, e)
            has_new = has_new or is_new
    if run_start is not None and run_end is not None and has_new:
        longest = max(longest, _minutes_between(run_start, run_end))
    return longest


def day_load(bookings: Sequence[Booked], back_to_back_gap_minutes: int) -> tuple[int, int, int]:
    """(screen minutes, sessions, longest back-to-back chain) of one day."""
    ordered = sorted(bookings, key=lambda b: b.start)
    longest = 1 if ordered else 0
    chain = 1
    for a, b in itertools.pairwise(ordered):
        chain = chain + 1 if _minutes_between(a.end, b.start) <= back_to_back_gap_minutes else 1
        longest = max(longest, chain)
    return sum(b.screen_minutes() for b in ordered), len(ordered), longest


# ---------- requests ----------


@dataclass(frozen=True)
class SessionRequest:
    request_id: str
    program_id: str
    clinician_id: str
    client_ids: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime | None
    kind: int  # iop.events.v1.SessionKind
    capacity: int = 0
    facilitators: tuple[tuple[str, str], ...] = ()
    turn_taking_mode: str = ""
    speaking_time_limit_s: int = 0
    planned_modality: int = VIDEO
    override_reason: str = ""
    mute_on_entry: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # stored as-is (e.g. rescheduled_from)


def validate_horizon(at: datetime | None, now: datetime, field_name: str, v: FieldViolations) -> None:
    """Nothing is booked, searched or scheduled further ahead than HORIZON (a time near the end of
    the calendar would otherwise overflow in a client's local time)."""
    if at is not None and at - now > HORIZON:
        v.add(field_name, f"at most {HORIZON.days} days (2 years) from now")


def validate_times(
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
    v: FieldViolations,
    max_length: timedelta,
    start_field: str = "starts_at",
    end_field: str = "ends_at",
) -> None:
    if starts_at is None:
        v.add(start_field, "required")
    if ends_at is None:
        v.add(end_field, "required")
    if starts_at is None or ends_at is None:
        return
    if ends_at <= starts_at:
        v.add(end_field, "must be after starts_at (inverted or zero-length)")
    elif ends_at - starts_at > max_length:
        v.add(end_field, f"a session lasts at most {max_length}")
    if starts_at < now:
        v.add(start_field, "must not be in the past")
    validate_horizon(starts_at, now, start_field, v)
    if not aligned(starts_at):
        v.add(start_field, "must be on a 15-minute boundary (slot grid)")
    if not aligned(ends_at):
        v.add(end_field, "must be on a 15-minute boundary (slot grid)")


def validate_ids(ids: Sequence[str], field_name: str, v: FieldViolations) -> None:
    """Each id present (a blank one is named by its place, `client_ids[0]`), none twice."""
    for i, value in enumerate(ids):
        v.require(bool(value.strip()), f"{field_name}[{i}]", "required (an id, not blank)")
    v.require(len(set(ids)) == len(ids), field_name, "ids must be unique")


def validate_session_request(req: SessionRequest, now: datetime) -> None:
    """Raises InvalidArgument naming every problem with the request."""
    v = FieldViolations()
    v.require(bool(req.request_id.strip()), "request_id", "required (idempotency key)")
    v.require(bool(req.program_id.strip()), "program_id", "required")
    v.require(bool(req.clinician_id.strip()), "clinician_id", "required")
    validate_ids(req.client_ids, "client_ids", v)
    v.require(req.kind in (GROUP, INDIVIDUAL, EVALUATION), "kind", "must be GROUP, INDIVIDUAL or EVALUATION")
    if req.kind in (INDIVIDUAL, EVALUATION):
        v.require(len(req.client_ids) == 1, "client_ids", "an individual session has exactly one client")
        v.require(req.capacity in (0, 1), "capacity", "an individual session has capacity 1")
    if req.kind == GROUP:
        v.require(1 <= req.capacity <= MAX_GROUP_SIZE, "capacity", f"a group seats 1 to {MAX_GROUP_SIZE} clients")
        v.require(len(req.client_ids) <= max(req.capacity, 0), "client_ids", "more clients than seats (capacity)")
    elif not req.client_ids:
        v.add("client_ids", "at least one client is required")
    for i, (clinician_id, role) in enumerate(req.facilitators):
        v.require(bool(clinician_id.strip()), f"facilitators[{i}].clinician_id", "required")
        v.require(role in FACILITATOR_ROLES, f"facilitators[{i}].role", "must be lead, co_facilitator or observer")
    v.require(req.turn_taking_mode in TURN_TAKING_MODES, "turn_taking.mode", "must be raise_hand, round_robin or open")
    v.require(0 <= req.speaking_time_limit_s <= 3600, "turn_taking.speaking_time_limit_s", "0 to 3600 seconds")
    v.require(req.planned_modality in (VIDEO, AUDIO_ONLY), "planned_modality", "must be VIDEO or AUDIO_ONLY")
    validate_times(req.starts_at, req.ends_at, now, v, MAX_SESSION_LENGTH)
    v.raise_if_any()


def validate_backup_line(line: str, v: FieldViolations) -> None:
    v.require(
        bool(BACKUP_LINE.match(line)), "backup_line", "an E.164 number (+15551234567[,pin]) or a bridge URI (tel:/sip:)"
    )


# Minutes of attendance an ending may give beyond the minutes its session ran (SchedulerSettings).
DEFAULT_ATTENDANCE_GRACE_MIN = 5


def attendance_limit(started_at: datetime | None, now: datetime, grace_min: int) -> int:
    """The most minutes a client can have attended a session ending now: the minutes it ran since
    StartSession, rounded up, plus `grace_min` (the video platform's clock; a client admitted a
    little before the session was started). Not its booked length: until 2026-12-08 a session
    ended after 10 of its 60 booked minutes took 60, a 90837 billed for 10 minutes delivered."""
    return minutes_run(started_at, now) + grace_min


def ending_bound(grace_min: int) -> str:
    """What an ending's limit is, in its field violation."""
    return f"the minutes the session ran since StartSession, plus {grace_min} minutes' grace"


INTERRUPTION_BOUND = "the minutes it ran until the interruption"


def minutes_run(started_at: datetime | None, until: datetime) -> int:
    """The minutes a session ran from its start to `until`, rounded up; 0 when it never started.
    The most a client can have attended before an interruption at `until`: its booked length is no
    bound for a session cut short (until 2026-12-07 it was, and 40 minutes given for a 60-minute
    session interrupted after 10 billed a 90834); one interrupted at check-in was attended by nobody."""
    return -int((started_at - until).total_seconds() // 60) if started_at is not None else 0


def attendance_shape_violations(
    modality: int, attendance: Sequence[tuple[str, int, int]], *, ending: bool
) -> list[tuple[str, str]]:
    """What is wrong with an ended (`ending`) or interrupted session's attendance (client, minutes,
    modality) and session-wide modality by themselves, before the session is read: the modality
    known (required at an end; at an interruption only with attendance), each row naming its
    client, minutes 0 to a day, a known modality or none (the session's)."""
    out: list[tuple[str, str]] = []
    if modality not in (VIDEO, AUDIO_ONLY, MIXED) and (ending or attendance or modality != 0):
        out.append(("modality", "VIDEO, AUDIO_ONLY or MIXED"))
    for i, (client_id, minutes, m) in enumerate(attendance):
        if not client_id:
            out.append((f"attendance[{i}].client_id", "required"))
        if not 0 <= minutes <= 24 * 60:
            out.append((f"attendance[{i}].minutes_attended", "0 to 1440"))
        if m not in (0, VIDEO, AUDIO_ONLY, MIXED):
            out.append((f"attendance[{i}].modality", "a known modality"))
    return out


def attendance_rows(modality: int, attendance: Sequence[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """The attendance as stored and published: each row's modality, else the session's."""
    return [{"client_id": c, "minutes_attended": m, "modality": mod or modality} for c, m, mod in attendance]


def attendance_violations(
    attendance: Sequence[tuple[str, int, int]],
    client_ids: Sequence[str],
    limit: int,
    bound: str,
) -> list[tuple[str, str]]:
    """What is wrong with an ended or interrupted session's attendance (client, minutes, modality):
    each row a client of the session, each client once, minutes within `limit` (they feed billing;
    `bound` says what the limit is)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, (client_id, minutes, _) in enumerate(attendance):
        if client_id in seen:
            out.append((f"attendance[{i}].client_id", "each client at most once"))
        elif client_id not in client_ids:
            out.append((f"attendance[{i}].client_id", "not a client of this session"))
        seen.add(client_id)
        if not 0 <= minutes <= limit:
            why = f"0 to {limit} ({bound})" if limit else "0 (the session had not started)"
            out.append((f"attendance[{i}].minutes_attended", why))
    return out


# ---------- slot search ----------


@dataclass(frozen=True)
class Candidate:
    start: datetime
    end: datetime
    in_alone_window: bool


def candidate_starts(frm: datetime, to: datetime, duration: timedelta, now: datetime) -> list[datetime]:
    """Slot-grid start times with the whole session inside [max(frm, now), to)."""
    first = max(frm, now)
    # round up to the grid
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    steps = -(-(first - epoch) // SLOT)
    at = epoch + steps * SLOT
    out = []
    while at + duration <= to:
        out.append(at)
        at += SLOT
    return out


def search(
    starts: Iterable[datetime],
    duration: timedelta,
    acceptable: Callable[[datetime, datetime], bool | None],
    limit: int,
) -> list[Candidate]:
    """The first `limit` starts the predicate accepts; it returns None to refuse, or whether in alone-window."""
    out: list[Candidate] = []
    for start in starts:
        verdict = acceptable(start, start + duration)
        if verdict is None:
            continue
        out.append(Candidate(start, start + duration, verdict))
        if len(out) >= limit:
            break
    return out


# ---------- recurrence (clinician care) ----------


def recurrence(first_start: datetime, tz: ZoneInfo, interval_days: int, occurrences: int) -> list[datetime]:
    """Occurrences at the same LOCAL wall-clock time (a weekly 08:00 stays 08:00 across DST)."""
    local = first_start.astimezone(tz)
    out = []
    for i in range(occurrences):
        day: date = local.date() + timedelta(days=i * interval_days)
        wall = datetime(day.year, day.month, day.day, local.hour, local.minute, tzinfo=tz)
        out.append(wall.astimezone(UTC))
    return out


# ---------- care team ----------


def on_care_team(session: dict[str, Any], clinician_id: str, acting: bool) -> bool:
    """Whether a clinician is on a session's care team: its clinician or one of its facilitators.
    `acting` (changing the session, or reading its clients' other records) leaves out observers."""
    if not clinician_id:
        return False
    if session.get("clinician_id") == clinician_id:
        return True
    return any(
        f.get("clinician_id") == clinician_id and (not acting or f.get("role") in TREATING_ROLES)
        for f in session.get("facilitators", [])
    )


# ---------- slots proposed after a disconnection or compromised privacy ----------


def proposal_key(client_id: str) -> str:
    """The field under a session's `client_proposals` that holds one client's proposals (a client
    id may hold characters a field path cannot: '.', '$')."""
    return "c" + hashlib.sha256(client_id.encode()).hexdigest()[:32]


def _legacy_client_proposals(session: dict[str, Any]) -> bool:
    """A group session stored before per-client proposals, whose `proposed_slots` were proposed to
    some of its clients (`proposed_for`), not to the whole group."""
    proposed_for = session.get("proposed_for")
    return (
        session.get("kind") == GROUP
        and bool(session.get("proposed_slots"))
        and proposed_for is not None
        and bool(set(session.get("client_ids", [])) - set(proposed_for))
    )


def group_proposals(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The slots proposed for the whole session (an individual session, or a group interrupted as a
    whole): what RescheduleSession without a new start takes."""
    return [] if _legacy_client_proposals(session) else list(session.get("proposed_slots", []))


def client_proposals(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The slots proposed to single clients of a group, each `{client_id, slots, reason}`, in the
    order of the session's clients. A session stored before per-client proposals kept one client's
    as `proposed_slots` with `proposed_for: [client]`: those are that client's (a later client's own
    field does not hide them)."""
    found = {p["client_id"]: p for p in (session.get("client_proposals") or {}).values()}
    if _legacy_client_proposals(session):
        for client_id in session["proposed_for"]:
            found.setdefault(
                client_id, {"client_id": client_id, "slots": list(session["proposed_slots"]), "reason": ""}
            )
    order = {c: i for i, c in enumerate(session.get("client_ids", []))}
    return sorted(found.values(), key=lambda p: order.get(p["client_id"], len(order)))
