"""Pure input guards of the scheduler: time zones, fatigue-rule bounds, ids, the booking horizon,
backup phones and attendance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.plumbing.errors import FieldViolations, InvalidArgument
from services.plumbing.phones import PhoneError, normalize_phone
from services.scheduler import domain as d
from services.scheduler.config import SchedulerSettings


@pytest.mark.parametrize(
    "name",
    [
        "localtime",  # the server's own zone
        "Factory",
        "posixrules",
        "right/America/New_York",  # counts leap seconds
        "posix/America/New_York",
        "US/Eastern",  # a legacy alias
        "EST",  # a fixed offset
        "Etc/GMT+5",
        "America/",
        "america/new_york",
        " America/New_York",
    ],
)
def test_only_iana_region_zones_and_utc_are_time_zones(name: str) -> None:
    assert d.zone(name) is None


@pytest.mark.parametrize("name", ["America/New_York", "America/Argentina/Buenos_Aires", "Asia/Tokyo", "UTC"])
def test_region_zones_are_time_zones(name: str) -> None:
    zone = d.zone(name)
    assert zone is not None and zone.key == name


def test_a_zone_saved_under_the_earlier_rule_still_reads() -> None:
    assert d.zone("US/Eastern") is None  # refused as input now
    assert d.stored_zone("US/Eastern").key == "US/Eastern"  # a profile saved with it still books


def rule_violations(**rules: int) -> list[tuple[str, str]]:
    v = FieldViolations()
    d.validate_rule_overrides(rules, "fatigue_rules", v)
    return v.items


def test_every_fatigue_rule_has_bounds_and_the_defaults_lie_within_them() -> None:
    assert set(d.RULE_BOUNDS) == set(d.RULE_FIELDS)
    defaults = d.load_reference_data().default_rules
    assert rule_violations(**{name: getattr(defaults, name) for name in d.RULE_FIELDS}) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_back_to_back_sessions", 0),  # every booking refused
        ("max_continuous_video_minutes", 0),  # every video booking refused
        ("max_continuous_video_minutes", 10),  # shorter than a slot
        ("max_clinician_screen_minutes_per_day", 0),
        ("max_client_screen_minutes_per_day", 14),
        ("break_every_minutes", 0),
        ("break_minutes", 0),
        ("min_gap_minutes", -1),
        ("long_session_minutes", 1441),
        ("max_back_to_back_sessions", 1441),
    ],
)
def test_fatigue_rules_outside_their_bounds_are_refused_with_the_bounds(name: str, value: int) -> None:
    low, high = d.RULE_BOUNDS[name]
    [(field, description)] = rule_violations(**{name: value})
    assert field == f"fatigue_rules.{name}"
    assert f"between {low} and {high}" in description


def test_the_bounds_themselves_are_allowed() -> None:
    assert rule_violations(**{name: low for name, (low, _) in d.RULE_BOUNDS.items()}) == []
    assert rule_violations(**{name: high for name, (_, high) in d.RULE_BOUNDS.items()}) == []


def test_a_blank_id_is_named_by_its_place_and_a_repeated_one_by_the_list() -> None:
    v = FieldViolations()
    d.validate_ids(["a", "", " ", "a"], "client_ids", v)
    assert [f for f, _ in v.items] == ["client_ids[1]", "client_ids[2]", "client_ids"]


def test_a_booking_with_a_blank_client_id_names_it() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    req = d.SessionRequest(
        "r", "p", "c", ("",), datetime(2026, 12, 2, 9, tzinfo=UTC), datetime(2026, 12, 2, 10, tzinfo=UTC), d.INDIVIDUAL
    )
    with pytest.raises(InvalidArgument) as info:
        d.validate_session_request(req, now)
    assert [f for f, _ in info.value.violations] == ["client_ids[0]"]


@pytest.mark.parametrize(
    "start", [datetime(2028, 12, 2, 9, tzinfo=UTC), datetime(9999, 12, 31, 22, tzinfo=UTC)], ids=["3y", "9999"]
)
def test_a_booking_lies_within_two_years(start: datetime) -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    req = d.SessionRequest("r", "p", "c", ("a",), start, start + timedelta(hours=1), d.INDIVIDUAL)
    with pytest.raises(InvalidArgument) as info:
        d.validate_session_request(req, now)
    assert [f for f, _ in info.value.violations] == ["starts_at"]
    assert "730 days" in info.value.violations[0][1]
    within = now + d.HORIZON - timedelta(hours=12)
    d.validate_session_request(
        d.SessionRequest("r", "p", "c", ("a",), within, within + timedelta(hours=1), d.INDIVIDUAL), now
    )


PHONES = [
    ("(212) 555-0143", "+12125550143"),
    ("212.555.0143", "+12125550143"),
    ("1 212 555 0143", "+12125550143"),
    ("+1 212-555-0143", "+12125550143"),
    ("+44 20 7946 0958", "+442079460958"),
    ("call me maybe", None),
    ("555-0143", None),  # no area code
    ("+0123456789", None),  # no country code starts with 0
    ("(112) 555-0143", None),  # area codes start 2-9
    ("(211) 555-0143", None),  # N11 is a service code
    ("212 055 0143", None),  # exchanges start 2-9
    ("+1 212 555 014", None),
    ("+1234567890123456", None),  # over 15 digits
    ("", None),
]


@pytest.mark.parametrize(("raw", "normalized"), PHONES)
def test_a_backup_phone_is_normalized_to_e164_or_refused(raw: str, normalized: str | None) -> None:
    if normalized is None:
        with pytest.raises(PhoneError):
            normalize_phone(raw)
    else:
        assert normalize_phone(raw) == normalized


def test_attendance_at_an_ending_is_at_most_the_minutes_the_session_ran_plus_the_grace() -> None:
    started = datetime(2026, 12, 2, 9, tzinfo=UTC)
    # ended after 10 of its 60 booked minutes: 10 minutes delivered, not 60
    assert d.attendance_limit(started, started + timedelta(minutes=10), 5) == 15
    assert d.attendance_limit(started, started + timedelta(minutes=75, seconds=1), 0) == 76  # ran longer: rounded up
    assert d.attendance_limit(None, started, 5) == 5


def test_attendance_names_each_client_of_the_session_once_within_the_limit() -> None:
    rows = [("a", 60, 1), ("a", 50, 1), ("x", 10, 1), ("b", 1440, 1), ("b", -1, 1)]
    bound = d.ending_bound(5)
    assert d.attendance_violations(rows, ["a", "b"], 60, bound) == [
        ("attendance[1].client_id", "each client at most once"),
        ("attendance[2].client_id", "not a client of this session"),
        ("attendance[3].minutes_attended", f"0 to 60 ({bound})"),
        ("attendance[4].client_id", "each client at most once"),
        ("attendance[4].minutes_attended", f"0 to 60 ({bound})"),
    ]
    assert d.attendance_violations([("a", 60, 1), ("b", 0, 2)], ["a", "b"], 60, bound) == []


@pytest.mark.parametrize("raw", ["-1", "1441", "100000", "abc", "2.5"])
def test_an_attendance_grace_out_of_bounds_stops_the_scheduler_naming_it(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_ATTENDANCE_GRACE_MIN", raw)
    with pytest.raises(ValidationError, match="SCHEDULER_ATTENDANCE_GRACE_MIN"):
        SchedulerSettings()


@pytest.mark.parametrize(("raw", "grace"), [(None, 5), ("0", 0), ("1440", 1440)])
def test_the_attendance_grace_is_5_minutes_unless_set_from_0_to_a_day(
    raw: str | None, grace: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if raw is None:
        monkeypatch.delenv("SCHEDULER_ATTENDANCE_GRACE_MIN", raising=False)
    else:
        monkeypatch.setenv("SCHEDULER_ATTENDANCE_GRACE_MIN", raw)
    assert SchedulerSettings().attendance_grace_min == grace
