"""Pure stream-processing state: rolling windows, explainable scores, hysteresis.

The faust worker keeps one JSON-serialisable state per session, client and
clinician in changelog-backed tables and calls these functions to update them.
Every update is idempotent by construction: facts are stored keyed by their
own id (session id, check-in day), so applying the same fact twice changes
nothing, and windows are measured from event time (the latest fact's own
time), never from the wall clock or arrival order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.engagement.domain import ISO_DAY
from services.engagement.rules import Rules

State = dict[str, Any]
WINDOWS = (7, 28)
RETAIN_DAYS = 28


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _latest(state: State, at: str) -> None:
    if at > state.get("latest", ""):
        state["latest"] = at


@dataclass(frozen=True)
class Factor:
    name: str
    value: float  # 0..1
    weight: float
    explanation: str

    @property
    def contribution(self) -> float:
        return round(self.value * self.weight, 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "weight": self.weight,
            "contribution": self.contribution,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Crossing:
    direction: str  # up | down
    value: float
    sequence: int  # how many crossings this subject had: makes event ids deterministic


def apply_hysteresis(risk: State, value: float, up: float, down: float) -> Crossing | None:
    """Update `risk` with a new score; a crossing only above `up` or below `down` (no flapping)."""
    elevated = bool(risk.get("elevated", False))
    risk["value"] = round(value, 4)
    crossing = None
    if not elevated and value >= up:
        risk["elevated"] = True
        crossing = "up"
    elif elevated and value < down:
        risk["elevated"] = False
        crossing = "down"
    if crossing is None:
        return None
    risk["crossings"] = int(risk.get("crossings", 0)) + 1
    return Crossing(crossing, round(value, 4), risk["crossings"])


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


# --- sessions: live participation per participant ------------------------------------------------


def new_session() -> State:
    return {"participants": {}, "offsets": {}, "signals": 0, "recent_ids": []}


def already_applied(state: State, topic: str, offset: int, signal_id: str = "") -> bool:
    """At-least-once redelivery guard: offsets already folded into this key's state are skipped."""
    if offset <= int(state.get("offsets", {}).get(topic, -1)):
        return True
    return bool(signal_id) and signal_id in state.get("recent_ids", [])


def mark_applied(state: State, topic: str, offset: int, signal_id: str = "", keep_ids: int = 16) -> None:
    state.setdefault("offsets", {})[topic] = offset
    if signal_id:
        ids = state.setdefault("recent_ids", [])
        ids.append(signal_id)
        del ids[:-keep_ids]


def apply_signal(state: State, participant_id: str, kind: str, at: str, value: float) -> None:
    """Fold one video signal into the session's per-participant participation."""
    p = state["participants"].setdefault(
        participant_id, {"speaking_s": 0.0, "chat": 0, "camera": [], "joins": 0, "drops": 0, "quality_min": None}
    )
    if kind == "speaking":
        p["speaking_s"] = round(p["speaking_s"] + max(0.0, value), 3)
    elif kind == "chat":
        p["chat"] += max(1, int(value))
    elif kind in ("camera_on", "camera_off"):
        p["camera"].append([at, kind == "camera_on"])
        p["camera"].sort()
        del p["camera"][:-200]
    elif kind == "participant_joined":
        p["joins"] += 1
        if not p["camera"]:
            p["camera"].append([at, True])  # platforms join with the camera on unless told otherwise
    elif kind == "connection_quality":
        q = p["quality_min"]
        p["quality_min"] = value if q is None else min(q, value)
    state["signals"] += 1
    _latest(state, at)


def camera_on_seconds(toggles: list[list[Any]], until: str) -> float:
    """Seconds with the camera on, from event-time ordered toggles, up to `until`."""
    total = 0.0
    on_since: datetime | None = None
    end = datetime.fromisoformat(until)
    for at, on in sorted(toggles):
        t = datetime.fromisoformat(at)
        if on and on_since is None:
            on_since = t
        elif not on and on_since is not None:
            total += max(0.0, (min(t, end) - on_since).total_seconds())
            on_since = None
    if on_since is not None and end > on_since:
        total += (end - on_since).total_seconds()
    return total


def participation_summary(state: State, participant_id: str, minutes: float, until: str) -> dict[str, Any]:
    p = state.get("participants", {}).get(participant_id)
    if p is None:
        return {"speaking_s": 0.0, "chat": 0, "camera_on_ratio": 0.0}
    attended_s = max(60.0, minutes * 60)
    ratio = _clip(camera_on_seconds(p["camera"], until) / attended_s) if minutes > 0 else 0.0
    return {"speaking_s": p["speaking_s"], "chat": p["chat"], "camera_on_ratio": round(ratio, 3)}


# --- clients: rolling windows and the engagement-risk score --------------------------------------


def new_client() -> State:
    return {"sessions": {}, "check_ins": {}, "risk": {}, "nudged": []}


def _prune(state: State) -> None:
    if not state.get("latest"):
        return
    horizon = (_day(state["latest"]) - timedelta(days=RETAIN_DAYS + 7)).isoformat()
    state["sessions"] = {k: v for k, v in state["sessions"].items() if v["day"] >= horizon}
    state["check_ins"] = {k: v for k, v in state["check_ins"].items() if k >= horizon}


def apply_attendance(state: State, session_id: str, fact: dict[str, Any]) -> None:
    """One session's final attendance + participation for this client (replaces, never adds)."""
    state["sessions"][session_id] = fact
    _latest(state, fact["at"])
    _prune(state)


def check_in_problem(day: str, at: str, max_days_ahead: int = 1) -> str | None:
    """Why a check-in fact must not be folded (the worker dead-letters it), or None. Its day moves
    the windows (`latest`), and the windows prune what is older than 35 days before it: a day
    far after the fact's recording time would erase the client's history."""
    try:
        parsed = date.fromisoformat(day) if ISO_DAY.fullmatch(day) else None  # not 2026-1-5, not 2026-W01-1
    except ValueError:
        parsed = None
    if parsed is None:
        return "MALFORMED_DAY: a check-in day must be YYYY-MM-DD"
    if at and parsed > _day(at) + timedelta(days=max_days_ahead):
        return f"DAY_IN_FUTURE: the check-in's day is more than {max_days_ahead} day(s) after it was recorded"
    return None


def apply_check_in(state: State, day: str, fact: dict[str, Any], at: str, max_days_ahead: int = 1) -> str | None:
    """Fold a check-in (replaces that day's); returns why it was not folded, leaving the state as it was."""
    problem = check_in_problem(day, at, max_days_ahead)
    if problem:
        return problem
    state["check_ins"][day] = fact
    _latest(state, max(at, day))
    _prune(state)
    return None


def client_window(state: State, days: int) -> dict[str, Any]:
    """Stats over the `days` days ending at the latest event day (inclusive)."""
    w: dict[str, Any] = {
        "days": days,
        "sessions_expected": 0,
        "sessions_attended": 0,
        "late": 0,
        "left_early": 0,
        "absent": 0,
        "minutes_attended": 0.0,
        "disconnections": 0,
        "speaking_minutes": 0.0,
        "chat_messages": 0,
        "camera_on_ratio": 0.0,
        "check_ins": 0,
        "mean_mood": 0.0,
        "practice_days": 0,
    }
    if not state.get("latest"):
        w.update(attendance_rate=0.0, practice_rate=0.0)
        return w
    end = _day(state["latest"])
    start = (end - timedelta(days=days - 1)).isoformat()
    camera: list[float] = []
    for s in state["sessions"].values():
        if not start <= s["day"] <= end.isoformat():
            continue
        w["sessions_expected"] += 1
        status = s["status"]
        if status == "absent":
            w["absent"] += 1
            continue
        w["sessions_attended"] += 1
        w["late"] += status == "late"
        w["left_early"] += status == "left_early"
        w["minutes_attended"] += s.get("minutes", 0.0)
        w["disconnections"] += s.get("disconnections", 0)
        w["speaking_minutes"] += s.get("speaking_s", 0.0) / 60
        w["chat_messages"] += s.get("chat", 0)
        camera.append(s.get("camera_on_ratio", 0.0))
    moods = []
    for day, c in state["check_ins"].items():
        if start <= day <= end.isoformat():
            w["check_ins"] += 1
            moods.append(c["mood"])
            w["practice_days"] += bool(c.get("practice_done"))
    w["attendance_rate"] = round(w["sessions_attended"] / w["sessions_expected"], 4) if w["sessions_expected"] else 0.0
    w["camera_on_ratio"] = round(sum(camera) / len(camera), 4) if camera else 0.0
    w["mean_mood"] = round(sum(moods) / len(moods), 2) if moods else 0.0
    w["practice_rate"] = round(w["practice_days"] / days, 4)
    w["minutes_attended"] = round(w["minutes_attended"], 1)
    w["speaking_minutes"] = round(w["speaking_minutes"], 2)
    return w


def client_factors(state: State, rules: Rules) -> list[Factor]:
    w = client_window(state, 7)
    weights = rules.client_weights
    expected, attended = w["sessions_expected"], w["sessions_attended"]
    f = [
        Factor(
            "absence_rate_7d",
            w["absent"] / expected if expected else 0.0,
            weights["absence_rate_7d"],
            f"missed {w['absent']} of {expected} sessions in 7 days",
        ),
        Factor(
            "late_or_left_early_rate_7d",
            (w["late"] + w["left_early"]) / expected if expected else 0.0,
            weights["late_or_left_early_rate_7d"],
            f"late {w['late']}, left early {w['left_early']} of {expected} sessions",
        ),
        Factor(
            "low_speaking_7d",
            _clip(1 - (w["speaking_minutes"] / attended) / rules.speaking_minutes_target) if attended else 0.0,
            weights["low_speaking_7d"],
            f"spoke {w['speaking_minutes']:.1f} min over {attended} attended sessions",
        ),
        Factor(
            "camera_off_7d",
            _clip(1 - w["camera_on_ratio"]) if attended else 0.0,
            weights["camera_off_7d"],
            f"camera on {w['camera_on_ratio'] * 100:.0f}% of attended time",
        ),
        Factor(
            "missed_check_ins_7d",
            _clip(1 - w["check_ins"] / 7),
            weights["missed_check_ins_7d"],
            f"{w['check_ins']} daily check-ins in 7 days",
        ),
        Factor(
            "missed_practice_7d",
            _clip(1 - w["practice_days"] / 7),
            weights["missed_practice_7d"],
            f"practice done on {w['practice_days']} of 7 days",
        ),
        Factor(
            "low_mood_7d",
            _clip((5 - w["mean_mood"]) / 5) if w["check_ins"] else 0.0,
            weights["low_mood_7d"],
            f"mean mood {w['mean_mood']:.1f}/10" if w["check_ins"] else "no mood reported",
        ),
    ]
    return f


def score(factors: list[Factor]) -> float:
    return round(_clip(sum(f.contribution for f in factors)), 4)


def consecutive_absences(state: State) -> int:
    n = 0
    for s in sorted(state["sessions"].values(), key=lambda s: s["at"], reverse=True):
        if s["status"] != "absent":
            break
        n += 1
    return n


def needs_nudge(state: State, rules: Rules) -> str | None:
    """A nudge (once per latest event day) after consecutive absences; returns its day or None."""
    if not state.get("latest") or consecutive_absences(state) < rules.nudge_after_absences:
        return None
    day = state["latest"][:10]
    if day in state.get("nudged", []):
        return None
    state.setdefault("nudged", []).append(day)
    del state["nudged"][:-10]
    return day


# --- clinicians: on-screen load and the burnout-risk score --------------------------------------


def new_clinician() -> State:
    return {"sessions": {}, "risk": {}}


def apply_clinician_session(state: State, session_id: str, fact: dict[str, Any] | None, at: str) -> None:
    """A session on the clinician's calendar (None: cancelled). Keyed by session: idempotent."""
    if fact is None:
        state["sessions"].pop(session_id, None)
    else:
        previous = state["sessions"].get(session_id)
        if previous and previous.get("status") == "ended" and fact.get("status") != "ended":
            return  # an out-of-order 'scheduled' after the session already ended changes nothing
        state["sessions"][session_id] = fact
    _latest(state, at)
    if state.get("latest"):
        horizon = (_day(state["latest"]) - timedelta(days=RETAIN_DAYS + 7)).isoformat()
        state["sessions"] = {k: v for k, v in state["sessions"].items() if v["start"][:10] >= horizon}


def _per_day(state: State) -> dict[str, list[tuple[datetime, datetime]]]:
    days: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in state["sessions"].values():
        start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
        if end > start:
            days.setdefault(s["start"][:10], []).append((start, end))
    for v in days.values():
        v.sort()
    return days


def back_to_back(intervals: list[tuple[datetime, datetime]], gap_min: float) -> int:
    """Sessions that start less than `gap_min` minutes after the previous one ended."""
    return sum(
        1
        for (_, prev_end), (start, _) in itertools.pairwise(intervals)
        if (start - prev_end) < timedelta(minutes=gap_min)
    )


def clinician_load(state: State, rules: Rules) -> dict[str, Any]:
    """Load over the week around the latest event day: 6 days back to 7 days ahead (the calendar)."""
    out: dict[str, Any] = {
        "on_screen_hours_today": 0.0,
        "on_screen_hours_7_days": 0.0,
        "back_to_back_today": 0,
        "max_back_to_back_7_days": 0,
        "caseload": 0,
        "sessions_7_days": 0,
        "peak_day": "",
        "peak_day_hours": 0.0,
        "busiest_back_to_back": 0,
    }
    if not state.get("latest"):
        return out
    ref = _day(state["latest"])
    days = _per_day(state)
    lo7, hi = (ref - timedelta(days=6)).isoformat(), (ref + timedelta(days=7)).isoformat()
    lo28 = (ref - timedelta(days=27)).isoformat()
    clients: set[str] = set()
    for s in state["sessions"].values():
        if lo28 <= s["start"][:10] <= hi:
            clients.update(s.get("clients", []))
    out["caseload"] = len(clients)
    for day, intervals in days.items():
        hours = sum((e - s).total_seconds() for s, e in intervals) / 3600
        b2b = back_to_back(intervals, rules.back_to_back_gap_min)
        if day == ref.isoformat():
            out["on_screen_hours_today"] = round(hours, 2)
            out["back_to_back_today"] = b2b
        if lo7 <= day <= ref.isoformat():
            out["on_screen_hours_7_days"] += hours
            out["sessions_7_days"] += len(intervals)
        if lo7 <= day <= hi:
            out["max_back_to_back_7_days"] = max(out["max_back_to_back_7_days"], b2b)
            if hours > out["peak_day_hours"]:
                out["peak_day"], out["peak_day_hours"] = day, round(hours, 2)
    out["on_screen_hours_7_days"] = round(out["on_screen_hours_7_days"], 2)
    return out


def burnout_factors(load: dict[str, Any], rules: Rules) -> list[Factor]:
    w = rules.burnout_weights
    return [
        Factor(
            "peak_day_on_screen_hours",
            _clip(load["peak_day_hours"] / rules.peak_day_hours_cap),
            w["peak_day_on_screen_hours"],
            f"{load['peak_day_hours']:.1f} h on screen on {load['peak_day'] or 'no day'} "
            f"(cap {rules.peak_day_hours_cap:g} h)",
        ),
        Factor(
            "weekly_on_screen_hours",
            _clip(load["on_screen_hours_7_days"] / rules.weekly_hours_cap),
            w["weekly_on_screen_hours"],
            f"{load['on_screen_hours_7_days']:.1f} h on screen in 7 days (cap {rules.weekly_hours_cap:g} h)",
        ),
        Factor(
            "back_to_back_sessions",
            _clip(load["max_back_to_back_7_days"] / rules.back_to_back_cap),
            w["back_to_back_sessions"],
            f"{load['max_back_to_back_7_days']} back-to-back sessions in a day (cap {rules.back_to_back_cap})",
        ),
        Factor(
            "caseload",
            _clip(load["caseload"] / rules.caseload_cap),
            w["caseload"],
            f"{load['caseload']} clients in 28 days (cap {rules.caseload_cap})",
        ),
    ]
