"""Pure domain logic: webhook signatures, the attendance ledger, outcome measures.

No I/O here. Everything is computed from event time (when the platform says a
thing happened), never from arrival order: the ledger keeps each session's
signals and derives attendance from them sorted by their own timestamps.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from services.engagement.rules import Instrument, Rules, leave_reason_itself

# --- webhook signatures (Zoom style) -------------------------------------------------------------

SIGNATURE_VERSION = "v0"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """x-zm-signature for `body` sent at `timestamp` (seconds since the epoch, as a string)."""
    message = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float, max_skew_s: int
) -> str | None:
    """Why a webhook must be rejected (401), or None when it is authentic and fresh."""
    if not timestamp or not signature:
        return "MISSING_SIGNATURE"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        return "MALFORMED_TIMESTAMP"  # int() would also take "1_7", " 17" or non-ASCII digits
    ts = int(timestamp)
    if ts > 10**11:  # milliseconds
        ts //= 1000
    if abs(now - ts) > max_skew_s:
        return "STALE_TIMESTAMP"
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500, before this)
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode("utf-8", "replace")):
        return "BAD_SIGNATURE"
    return None


def webhook_event_id(body: bytes) -> str:
    """The replay-protection id: the same delivery (byte for byte) has the same id."""
    return hashlib.sha256(body).hexdigest()[:32]


def zoom_url_validation(secret: str, plain_token: str) -> dict[str, str]:
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# --- the attendance ledger ------------------------------------------------------------------------

JOINED = "participant_joined"
LEFT = "participant_left"
CAMERA_ON = "camera_on"
CAMERA_OFF = "camera_off"
SPEAKING = "speaking"
CHAT = "chat"
QUALITY = "connection_quality"
KINDS = (JOINED, LEFT, CAMERA_ON, CAMERA_OFF, SPEAKING, CHAT, QUALITY)
LEDGER_KINDS = (JOINED, LEFT, QUALITY)  # what attendance is computed from


@dataclass(frozen=True)
class LedgerSignal:
    signal_id: str
    participant_id: str
    kind: str
    at: datetime
    value: float = 0.0
    leave_reason: str = ""
    modality: str = ""


# Zoom's wording of a leave it gives no reason for (`is_drop`: a normal leave that ends no dip)
ZOOM_LEAVE_WITHOUT_REASON = "left the meeting. Reason :"


def kept_leave_reason(reason: str, rules: Rules) -> str:
    """A participant_left's reason as the service keeps and publishes it (the signals topic, the
    ledger, ConnectionDropped): a normal leave's reason in the rules' words, Zoom's wording without
    a reason as that, and "" for any other (a lost connection). The platform's own text is not kept:
    Zoom names the participant in some ("$name got disconnected from the meeting."), and a display
    name is PHI. A kept reason is kept as it is, so `is_drop` and `ends_dip` decide on it as they
    decide on the platform's text."""
    itself = leave_reason_itself(reason)
    if itself is None:
        return ZOOM_LEAVE_WITHOUT_REASON
    return itself if itself in rules.normal_leave_reasons else ""


def is_drop(signal: LedgerSignal, rules: Rules) -> bool:
    """A participant_left with a reason that is not a normal leave, or a lost connection. The reason
    itself is matched, whole (`leave_reason_itself`): Zoom words each as "left the meeting. Reason :
    <reason>", and "left the meeting" in front made every one a normal leave, a network error
    included; and matched as a substring, a display name in the reason ("Eve left the meeting got
    disconnected from the meeting.") made a lost connection one. Zoom's wording with no reason after
    "Reason :" is a normal leave: the participant left the meeting, and Zoom names a lost connection
    in the reason ("Network connection error.", "Unknown reason."...)."""
    if signal.kind == LEFT:
        reason = leave_reason_itself(signal.leave_reason)
        return reason is not None and reason not in rules.normal_leave_reasons
    if signal.kind == QUALITY:
        return signal.value <= rules.connection_lost_quality
    return False


def is_normal_leave(signal: LedgerSignal, rules: Rules) -> bool:
    """A participant_left with a normal reason: the participant left the meeting (themselves, or the
    host removed or moved them, or ended the meeting), not a lost connection."""
    return signal.kind == LEFT and not is_drop(signal, rules)


def ends_dip(signal: LedgerSignal, rules: Rules) -> bool:
    """A normal leave the client made themselves (rules `dip_ending_leave_reasons`): they were
    connected to act, so it ends a quality dip before it. A host's action (removal, a move between
    rooms, the end of the meeting) proves nothing about the client's connection and ends no dip, nor
    does a leave Zoom gives no reason for (its words come before a host's action too)."""
    return is_normal_leave(signal, rules) and leave_reason_itself(signal.leave_reason) in rules.dip_ending_leave_reasons


def is_connected_sign(signal: LedgerSignal, rules: Rules) -> bool:
    """A join, or a connection-quality reading above a lost connection: the participant is
    connected at that time (the platform measures only a live connection). After a drop, the
    first such sign is the reconnection: a quality dip to 0 ends with the quality coming back."""
    return signal.kind == JOINED or (signal.kind == QUALITY and not is_drop(signal, rules))


@dataclass
class Attendance:
    client_id: str
    status: str  # expected | on_time | late | left_early | absent
    minutes: float = 0.0
    disconnections: int = 0
    reconnections: int = 0
    modality: str = "none"  # video | audio_only | mixed | none
    present: bool = False
    first_join: datetime | None = None
    last_leave: datetime | None = None
    intervals: list[tuple[datetime, datetime | None]] = field(default_factory=list)


def attendance_for(
    client_id: str,
    signals: list[LedgerSignal],
    starts_at: datetime,
    ends_at: datetime,
    ended_at: datetime | None,
    rules: Rules,
) -> Attendance:
    """Attendance of one client from the session's signals, in event-time order.

    Before the session ended the status is provisional (`expected` until the
    client joins, then on_time/late); at the end it is final (absent when the
    client attended less than the minimum).
    """
    own = sorted((s for s in signals if s.participant_id == client_id), key=lambda s: (s.at, s.signal_id))
    result = Attendance(client_id=client_id, status="expected")
    open_since: datetime | None = None
    dropped = False
    dip = False  # the drop is a quality dip: the participant is still in the meeting
    modalities: set[str] = set()
    for s in own:
        if s.kind == JOINED or (dropped and dip and is_connected_sign(s, rules)):
            # a rejoin, or the quality back after a dip (not after a participant_left: they are out
            # of the meeting, and only a join brings them back)
            if dropped:
                result.reconnections += 1
                dropped = False
            if open_since is None:
                open_since = s.at
            if s.kind == JOINED and result.first_join is None:
                result.first_join = s.at
            if s.modality:
                modalities.add(s.modality)
        elif s.kind == LEFT or (s.kind == QUALITY and is_drop(s, rules)):
            if is_drop(s, rules) and open_since is not None:
                result.disconnections += 1
                dropped = True
                dip = s.kind == QUALITY
            elif s.kind == LEFT:
                dip = False
            if open_since is not None:
                result.intervals.append((open_since, s.at))
                result.last_leave = s.at
                open_since = None
    if open_since is not None:
        result.intervals.append((open_since, None))
        result.present = ended_at is None
    end = ended_at or ends_at
    total = timedelta()
    for since, until in result.intervals:
        lo = max(since, starts_at)
        hi = min(until or end, end)
        if hi > lo:
            total += hi - lo
    exact_minutes = total.total_seconds() / 60
    result.minutes = round(exact_minutes, 1)
    result.modality = "mixed" if len(modalities) > 1 else (modalities.pop() if modalities else "video")
    if result.first_join is None:
        result.modality = "none"
        result.status = "absent" if ended_at is not None else "expected"
        return result
    late = result.first_join > starts_at + timedelta(minutes=rules.late_after_min)
    result.status = "late" if late else "on_time"
    if ended_at is not None:
        if exact_minutes < rules.present_minimum_min:  # unrounded: 59 s is under a minute
            result.status = "absent"
        elif (
            not late
            and result.last_leave is not None
            and open_since is None
            and result.last_leave < min(ends_at, ended_at) - timedelta(minutes=rules.left_early_before_min)
        ):
            result.status = "left_early"
    return result


def event_time_problem(occurred: datetime, observed: datetime, max_ahead_s: float) -> str | None:
    """Why a signal's event time cannot be used, or None: later than when it was observed (received)
    by more than the allowed clock skew. Such a time would sort after everything real: a join "in
    two days" reads as a rejoin after every real drop, which then raises nothing."""
    if occurred > observed + timedelta(seconds=max_ahead_s):
        return f"EVENT_TIME_IN_FUTURE: the event time is more than {max_ahead_s:g} s after the signal was received"
    return None


def drop_event_id(signal_id: str) -> str:
    """The ConnectionDropped event id for a drop signal: the same on every path that emits it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"iop:engagement:connection-dropped:{signal_id}"))


@dataclass(frozen=True)
class LastSeen:
    """When the webhook last saw a participant connected (ConnectionStore), which may be newer than
    the ledger's signals: `connected` by any sign of a connection (a join, a quality reading above
    0, a leave of the client's own: they were there to leave), `joined` by a join, `left` by a leave
    of the client's own (`ends_dip`), `removed` by another normal leave (a host's action: it proves
    no connection and ends no dip, but the client is out of the meeting, and a reading of 0 after
    it is no drop, as in the ledger)."""

    connected: datetime | None = None
    joined: datetime | None = None
    left: datetime | None = None
    removed: datetime | None = None

    def signals(self, participant_id: str, rules: Rules) -> list[LedgerSignal]:
        """The same facts as ledger signals (ids no real signal has)."""
        signs = []
        if self.joined is not None:
            signs.append(LedgerSignal("~seen-joined", participant_id, JOINED, self.joined))
        if self.connected is not None and self.connected not in (self.joined, self.left):
            signs.append(LedgerSignal("~seen-connected", participant_id, QUALITY, self.connected, value=5.0))
        if self.left is not None and rules.dip_ending_leave_reasons:
            own = rules.dip_ending_leave_reasons[0]
            signs.append(LedgerSignal("~seen-left", participant_id, LEFT, self.left, leave_reason=own))
        host = next((r for r in rules.normal_leave_reasons if r not in rules.dip_ending_leave_reasons), None)
        if self.removed is not None and host is not None:
            signs.append(LedgerSignal("~seen-removed", participant_id, LEFT, self.removed, leave_reason=host))
        return signs


def outages(own: list[LedgerSignal], rules: Rules) -> list[tuple[list[LedgerSignal], bool]]:
    """One participant's outages by event time: the drops of each, and whether it is over (a sign
    of a connection came after it). An outage starts with a drop; a join ends it; a quality reading
    above 0 ends a quality dip but not a participant_left (the participant is out of the meeting:
    only a join brings them back). A leave of the client's own (`ends_dip`) ends a quality dip too:
    they left the meeting themselves, they are not lost; a host's removal or move, or the end of the
    meeting, does not (it proves nothing about the connection: the dip stays open, until a join or a
    quality reading above 0, which shows a live connection, in a breakout room say, or is a late
    report of one before the host's action). A reading of 0 after a normal leave of either kind is
    no drop (they are out of the meeting). Without a join known, the participant counts as
    connected (a join may be delivered late)."""
    found: list[tuple[list[LedgerSignal], bool]] = []
    current: list[LedgerSignal] | None = None
    dip = False  # the current outage is a quality dip only
    gone = False  # left normally (and not back)
    for s in sorted(own, key=lambda s: (s.at, s.signal_id)):
        if s.kind == JOINED:
            if current is not None:
                found.append((current, True))
                current = None
            gone = False
        elif s.kind == QUALITY and not is_drop(s, rules):
            if current is not None and dip:
                found.append((current, True))
                current = None
        elif is_drop(s, rules):
            if s.kind == QUALITY and gone and current is None:
                continue
            if current is None:
                current, dip = [s], s.kind == QUALITY
            else:
                current.append(s)
                dip = dip and s.kind == QUALITY
        elif s.kind == LEFT:  # a normal leave
            if current is not None and dip and ends_dip(s, rules):  # left themselves: the dip is over
                found.append((current, True))
                current = None
            gone = True  # a dip a host's action did not end is still a dip: a reading above 0 ends it
    if current is not None:
        found.append((current, False))
    return found


def _in_drop_window(
    drop: LedgerSignal,
    starts_at: datetime,
    ends_at: datetime,
    ended: bool,
    started_at: datetime | None,
    rules: Rules,
) -> bool:
    opens = starts_at - timedelta(minutes=15)
    closes = ends_at
    if started_at is not None:
        opens = min(opens, started_at)
        closes = max(closes, started_at + (ends_at - starts_at))
    return not ended and opens <= drop.at <= closes + timedelta(minutes=rules.drop_current_after_end_min)


def drop_is_current(
    drop: LedgerSignal,
    signals: list[LedgerSignal],
    starts_at: datetime,
    ends_at: datetime,
    ended: bool,
    started_at: datetime | None = None,
    *,
    rules: Rules,
    seen: LastSeen | None = None,
) -> bool:
    """Whether a drop must raise a connection-dropped event now.

    Only while the session is not ended, and only for a drop the participant has not come back
    from (`outages`): no sign of a connection later by event time (a rejoin; after a quality dip,
    also the quality back above 0; `seen`, what the webhook has seen, may be newer than
    `signals`). A drop delivered late, after its rejoin, is history, not an alarm. One event per
    outage: not when another drop of the participant is in the same outage (repeated quality
    readings of 0, or the same outage reported twice, in any order of delivery: the first to
    arrive raised it; see `drop_after_reconnection` for a reconnection delivered after the next
    outage's drop), except one that was no drop without this one (a reading of 0 that looked like
    one from after a normal leave: it raised nothing) or whose outage was over without this one (a
    dip with a reading above 0 after it: this drop opened it again; if the dip was reported before
    the reading came, the outage is reported twice, erring toward reporting). By event time, the
    drop must fall in the session's window: from 15 minutes before the scheduled start (or the
    actual start when the session went live earlier) to the scheduled end, moved later by a late
    start (actual start + scheduled length), plus the overrun allowance. A session running over is
    still running: until SessionEnded its drops are reported (they feed the crisis service: err
    toward reporting).
    """
    if not _in_drop_window(drop, starts_at, ends_at, ended, started_at, rules):
        return False
    own = [s for s in signals if s.participant_id == drop.participant_id and s.signal_id != drop.signal_id]
    own += (seen or LastSeen()).signals(drop.participant_id, rules)
    for drops, over in outages([*own, drop], rules):
        if drop in drops:
            if over or drops == [drop]:
                return not over
            # another drop of the outage raised it, unless it was no drop without this one (a reading
            # of 0 after a normal leave, the rejoin not known: it raised nothing when it came), or its
            # outage was over without this one (a dip, a reading above 0 after it: the dip was history
            # when it came, and this drop, which no reading above 0 ends, makes the outage open again)
            counted = {s.signal_id for earlier, over_ in outages(own, rules) if not over_ for s in earlier}
            return all(s.signal_id not in counted for s in drops if s != drop)
    return False  # not a drop of someone in the meeting


def drop_after_reconnection(
    sign: LedgerSignal,
    signals: list[LedgerSignal],
    starts_at: datetime,
    ends_at: datetime,
    ended: bool,
    started_at: datetime | None = None,
    *,
    rules: Rules,
    seen: LastSeen | None = None,
) -> LedgerSignal | None:
    """The drop a sign of a connection, or a normal leave (in `signals`), reveals as a new, current
    outage, if any.

    A reconnection delivered after the next drop of the participant splits what looked like one
    outage in two: that drop was taken for the earlier outage's and raised nothing. So does a leave
    of the client's own after a quality dip (it ends the dip: a drop after it, once they are back,
    is a new outage; the rejoin in between may have been delivered already, or never be); a host's
    action ends no dip, but any normal leave can show a reading of 0 that started an outage was
    one from after the leave, and so no drop. A rejoin
    delivered after a reading of 0 shows that reading was no late report from after a normal leave,
    which raised nothing either. Returns the first drop of the outage after `sign` when, without
    `sign`, an earlier drop was in its outage or it was no drop at all, and it is current (no sign of
    a connection after it, `seen` included; in the session's window).
    """
    own = [s for s in signals if s.participant_id == sign.participant_id]
    with_sign = outages([*own, *(seen or LastSeen()).signals(sign.participant_id, rules)], rules)
    if not with_sign or with_sign[-1][1]:
        return None
    first = with_sign[-1][0][0]
    if first.at <= sign.at:
        return None
    without = outages([s for s in own if s.signal_id != sign.signal_id], rules)
    merged = next((drops for drops, _ in without if first in drops), None)
    if merged is not None and merged[0] == first:
        return None  # the first of its outage already when it came: it was judged then
    return first if _in_drop_window(first, starts_at, ends_at, ended, started_at, rules) else None


# --- outcome measures -----------------------------------------------------------------------------

# The platform's opaque ids (client, session, an app's submission id): what the video platform's
# customer keys and meeting ids and compliance's ids allow. Checked up front: a request with an id
# outside this is INVALID_ARGUMENT, not an error deep in a projection.
OPAQUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # fullmatch
OPAQUE_ID_RULE = "1 to 128 of A-Z a-z 0-9 . _ : - (starting with a letter or digit)"


def opaque_id_violations(ids: dict[str, str]) -> list[tuple[str, str]]:
    """A field violation per given id (field name -> value) that is not an opaque id."""
    return [(name, f"must be {OPAQUE_ID_RULE}") for name, value in ids.items() if not OPAQUE_ID.fullmatch(value)]


@dataclass(frozen=True)
class Scored:
    total: int
    severity: str
    item9_positive: bool


def outcome_violations(instrument: Instrument | None, items: list[int], rules: Rules) -> list[tuple[str, str]]:
    """Every problem with a questionnaire's answers, item by item."""
    if instrument is None:
        return [("instrument", "must be INSTRUMENT_PHQ9 or INSTRUMENT_GAD7")]
    out: list[tuple[str, str]] = []
    if len(items) != instrument.items:
        out.append(("item_scores", f"{instrument.name} has exactly {instrument.items} items, got {len(items)}"))
    for i, value in enumerate(items):
        if not rules.item_min <= value <= rules.item_max:
            out.append((f"item_scores[{i}]", f"must be {rules.item_min}..{rules.item_max}, got {value}"))
    return out


def score_outcome(instrument: Instrument, items: list[int]) -> Scored:
    total = sum(items)
    severity = instrument.severity[0][1]
    for floor, label in instrument.severity:
        if total >= floor:
            severity = label
    item9 = instrument.items == 9 and len(items) == 9 and items[8] > 0
    return Scored(total=total, severity=severity, item9_positive=item9)


@dataclass(frozen=True)
class Trend:
    first: int
    latest: int
    change: int
    direction: str
    slope_per_week: float


def outcome_trend(points: list[tuple[datetime, int]], min_change: int) -> Trend | None:
    """Trend of totals over time (least-squares slope per week); None without data."""
    if not points:
        return None
    pts = sorted(points)
    first, latest = pts[0][1], pts[-1][1]
    change = latest - first
    slope = 0.0
    if len(pts) >= 2:
        xs = [(t - pts[0][0]).total_seconds() / (7 * 86400) for t, _ in pts]
        ys = [float(v) for _, v in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    if len(pts) < 2:
        direction = "insufficient_data"
    elif change <= -min_change:
        direction = "improving"
    elif change >= min_change:
        direction = "worsening"
    else:
        direction = "stable"
    return Trend(first, latest, change, direction, round(slope, 2))


# --- check-ins ------------------------------------------------------------------------------------


ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch: YYYY-MM-DD, zero-padded


def check_in_violations(
    client_id: str, day: str, mood: int, practice_minutes: int, today: date, rules: Rules
) -> list[tuple[str, str]]:
    """Every problem with a check-in. `today` is today in UTC; the client's own date may be a day
    ahead (time zones east of UTC). A day far in the future moved the worker's windows there and
    pruned the client's whole history."""
    out: list[tuple[str, str]] = []
    if not client_id:
        out.append(("client_id", "required"))
    else:
        out.extend(opaque_id_violations({"client_id": client_id}))
    parsed: date | None = None
    if ISO_DAY.fullmatch(day):
        with contextlib.suppress(ValueError):
            parsed = date.fromisoformat(day)
    if parsed is None:
        out.append(("day", "must be a date, YYYY-MM-DD"))
    elif parsed > today + timedelta(days=rules.check_in_max_days_ahead):
        out.append(("day", f"must not be after {today + timedelta(days=rules.check_in_max_days_ahead)}"))
    elif parsed < today - timedelta(days=rules.check_in_max_days_back):
        out.append(("day", f"must not be more than {rules.check_in_max_days_back} days ago"))
    if not 0 <= mood <= 10:
        out.append(("mood", f"must be 0..10, got {mood}"))
    if not 0 <= practice_minutes <= 600:
        out.append(("practice_minutes", f"must be 0..600, got {practice_minutes}"))
    return out
