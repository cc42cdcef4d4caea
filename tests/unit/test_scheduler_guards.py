"""Pure input guards of the scheduler: time zones, fatigue-rule bounds, ids, the booking horizon,
backup phones and attendance."""

from __future__ import annotations

import pytest

from services.scheduler import domain as d


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
