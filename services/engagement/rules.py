"""The engagement rules (services/engagement/data/rules.yaml), loaded once at start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = Path(__file__).parent / "data" / "rules.yaml"


@dataclass(frozen=True)
class Instrument:
    name: str  # PHQ-9 | GAD-7
    items: int
    loinc_total: str
    severity: tuple[tuple[int, str], ...]
    loinc_item9: str = ""


@dataclass(frozen=True)
class Rules:
    version: str
    max_clock_skew_s: int
    max_event_ahead_s: int
    max_body_bytes: int
    late_after_min: float
    left_early_before_min: float
    present_minimum_min: float
    normal_leave_reasons: tuple[str, ...]
    dip_ending_leave_reasons: tuple[str, ...]  # the client's own leaves: they end a quality dip
    connection_lost_quality: float
    drop_current_after_end_min: float
    check_in_max_days_ahead: int
    check_in_max_days_back: int
    client_threshold_up: float
    client_threshold_down: float
    speaking_minutes_target: float
    client_weights: dict[str, float]
    nudge_after_absences: int
    burnout_threshold_up: float
    burnout_threshold_down: float
    back_to_back_gap_min: float
    peak_day_hours_cap: float
    weekly_hours_cap: float
    back_to_back_cap: int
    caseload_cap: int
    burnout_weights: dict[str, float]
    phq9: Instrument
    gad7: Instrument
    item_min: int
    item_max: int
    trend_min_change: int


def _instrument(name: str, raw: dict[str, Any]) -> Instrument:
    return Instrument(
        name=name,
        items=int(raw["items"]),
        loinc_total=str(raw["loinc_total"]),
        loinc_item9=str(raw.get("loinc_item9", "")),
        severity=tuple((int(a), str(b)) for a, b in raw["severity"]),
    )


# Zoom's wording of a leave, "<...> left the meeting. Reason : <reason>", lower-case with white
# space as single spaces; what comes before its words may be a display name (the client's own text,
# which may hold the same words), so the reason is what follows the last of them.
ZOOM_LEAVE = re.compile(r"(?:.* )?left the meeting\. reason ?:(?P<reason>.*)")
# Zoom's wording of the client's own leave, "$name left the meeting." (also as the reason after
# "left the meeting. Reason :"): the display name, any text, before its words. A name holding
# "Reason :" makes it none, so Zoom's "got disconnected from the meeting. Reason : left the
# meeting" stays a drop; a lost connection Zoom words with the name ends with its own words.
NAMED_OWN_LEAVE = re.compile(r"(?:(?P<name>.*) )?left the meeting")
REASON_LABEL = re.compile(r"\breason ?:")
OWN_LEAVE = "left the meeting"


def _plain(text: str) -> str:
    """Lower-case, white space as single spaces, without a final full stop."""
    return " ".join(text.lower().split()).rstrip(".").rstrip()


def leave_reason_itself(reason: str) -> str | None:
    """The reason of a participant_left, matched whole against the rules' leave reasons: the part
    after Zoom's "left the meeting. Reason :" ("left the meeting. Reason : Host ended the
    meeting." is "host ended the meeting"), or the whole text; lower-case, without a final full
    stop. None when Zoom's wording gives no reason ("left the meeting. Reason :" and nothing after):
    the participant left the meeting, and Zoom did not say why (`domain.is_drop`: a normal leave,
    ending no dip). Zoom puts the participant's display name in some reasons ("$name got
    disconnected from the meeting."), always before its own words: so a reason holding a normal
    one ("Eve left the meeting got disconnected from the meeting.") is none; and Zoom's "$name left
    the meeting." is "left the meeting", whatever the name (`NAMED_OWN_LEAVE`)."""
    text = " ".join(reason.lower().split())
    zoom = ZOOM_LEAVE.fullmatch(text)
    itself = _plain(text if zoom is None else zoom["reason"])
    if zoom is not None and not itself:
        return None
    named = NAMED_OWN_LEAVE.fullmatch(itself)
    if named is not None and not REASON_LABEL.search(named["name"] or ""):
        return OWN_LEAVE
    return itself


def _reasons(att: dict[str, Any], key: str) -> tuple[str, ...]:
    """`attendance.<key>`: a list of non-empty leave reasons, lower-case, without a final full stop."""
    raw = att[key]
    if not isinstance(raw, list) or not all(isinstance(r, str) and _plain(r) for r in raw):
        raise ValueError(f"attendance.{key} must be a list of non-empty strings")
    return tuple(_plain(r) for r in raw)


def _dip_ending_leave_reasons(att: dict[str, Any]) -> tuple[str, ...]:
    """`attendance.dip_ending_leave_reasons`: a list of normal leave reasons (required; may be empty)."""
    reasons = _reasons(att, "dip_ending_leave_reasons")
    normal = _reasons(att, "normal_leave_reasons")
    for reason in reasons:
        if reason not in normal:
            raise ValueError(
                f"attendance.dip_ending_leave_reasons: {reason!r} is not a normal leave reason "
                "(a leave that is a drop cannot end a dip)"
            )
    return reasons


def parse_rules(raw: dict[str, Any]) -> Rules:
    att, cr, cb, out = raw["attendance"], raw["client_risk"], raw["clinician_burnout"], raw["outcomes"]
    hook, check_ins = raw["webhook"], raw["check_ins"]
    return Rules(
        version=str(raw["version"]),
        max_clock_skew_s=int(hook["max_clock_skew_seconds"]),
        max_event_ahead_s=int(hook["max_event_ahead_seconds"]),
        max_body_bytes=int(hook["max_body_bytes"]),
        late_after_min=float(att["late_after_minutes"]),
        left_early_before_min=float(att["left_early_before_minutes"]),
        present_minimum_min=float(att["present_minimum_minutes"]),
        normal_leave_reasons=_reasons(att, "normal_leave_reasons"),
        dip_ending_leave_reasons=_dip_ending_leave_reasons(att),
        connection_lost_quality=float(att["connection_lost_quality"]),
        drop_current_after_end_min=float(att["drop_current_after_end_minutes"]),
        check_in_max_days_ahead=int(check_ins["max_days_ahead"]),
        check_in_max_days_back=int(check_ins["max_days_back"]),
        client_threshold_up=float(cr["threshold_up"]),
        client_threshold_down=float(cr["threshold_down"]),
        speaking_minutes_target=float(cr["speaking_minutes_target"]),
        client_weights={str(k): float(v) for k, v in cr["factors"].items()},
        nudge_after_absences=int(cr["nudge_after_consecutive_absences"]),
        burnout_threshold_up=float(cb["threshold_up"]),
        burnout_threshold_down=float(cb["threshold_down"]),
        back_to_back_gap_min=float(cb["back_to_back_gap_minutes"]),
        peak_day_hours_cap=float(cb["peak_day_hours_cap"]),
        weekly_hours_cap=float(cb["weekly_hours_cap"]),
        back_to_back_cap=int(cb["back_to_back_cap"]),
        caseload_cap=int(cb["caseload_cap"]),
        burnout_weights={str(k): float(v) for k, v in cb["factors"].items()},
        phq9=_instrument("PHQ-9", out["phq9"]),
        gad7=_instrument("GAD-7", out["gad7"]),
        item_min=int(out["item_min"]),
        item_max=int(out["item_max"]),
        trend_min_change=int(out["trend_min_change"]),
    )


@lru_cache(maxsize=1)
def load_rules(path: Path = RULES_PATH) -> Rules:
    with path.open() as f:
        return parse_rules(yaml.safe_load(f))
