"""`changelog_partition_of`: a batch's table write goes to the partition of the key's own record.
faust reads that partition from the task's current event (a private context variable of
faust.streams); this checks the variable is set inside the block and restored after it."""

from __future__ import annotations

from dataclasses import dataclass

from faust.streams import current_event

from services.engagement.worker import changelog_partition_of


@dataclass
class _Message:
    partition: int


@dataclass
class _Event:  # faust's events are weakly referenced; SimpleNamespace cannot be
    message: _Message


def test_the_key_s_event_is_current_inside_the_block_and_the_previous_one_after() -> None:
    earlier = _Event(_Message(0))
    later = _Event(_Message(2))
    with changelog_partition_of(earlier):
        with changelog_partition_of(later):
            assert current_event() is later
        assert current_event() is earlier
    assert current_event() is None
