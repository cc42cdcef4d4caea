"""Pure engagement logic: signatures, attendance by event time, outcomes, windows, scores, hysteresis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from pydantic import ValidationError

from services.engagement import domain, scoring
from services.engagement.dashboard import build_overview, render_page
from services.engagement.fhir import observation, observation_json
from services.engagement.rules import RULES_PATH, load_rules, parse_rules
from services.engagement.store import outcome_key
from services.engagement.webhooks import UnusableWebhook, Webhook, to_signal

RULES = load_rules()
T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def sig(pid: str, kind: str, minutes: float, reason: str = "", value: float = 0.0, n: int = 0) -> domain.LedgerSignal:
    return domain.LedgerSignal(f"{pid}-{kind}-{minutes}-{n}", pid, kind, T0 + timedelta(minutes=minutes), value, reason)


# --- webhook signatures ---


def test_signature_accepts_fresh_authentic_and_rejects_everything_else() -> None:
    body = b'{"event": "meeting.participant_joined"}'
    ts = "1764428400"
    good = domain.sign("s3cret", ts, body)
    assert good.startswith("v0=")
    assert domain.signature_problem("s3cret", ts, good, body, 1764428400 + 10, 300) is None
    assert domain.signature_problem("s3cret", ts, good, body + b" ", 1764428400, 300) == "BAD_SIGNATURE"
    assert domain.signature_problem("other", ts, good, body, 1764428400, 300) == "BAD_SIGNATURE"
    assert domain.signature_problem("s3cret", ts, good, body, 1764428400 + 301, 300) == "STALE_TIMESTAMP"
    assert domain.signature_problem("s3cret", ts, good, body, 1764428400 - 301, 300) == "STALE_TIMESTAMP"
    assert domain.signature_problem("s3cret", None, good, body, 0, 300) == "MISSING_SIGNATURE"
    assert domain.signature_problem("s3cret", "yesterday", good, body, 0, 300) == "MALFORMED_TIMESTAMP"
    assert domain.webhook_event_id(body) == domain.webhook_event_id(body) != domain.webhook_event_id(body + b" ")


def test_signature_with_non_ascii_characters_or_an_odd_timestamp_is_refused_not_an_error() -> None:
    body = b"{}"
    ts = "1764428400"
    # Starlette decodes header bytes as latin-1: a non-ASCII signature arrives as such a str
    assert domain.signature_problem("s3cret", ts, "v0=\xe9t\xe9", body, 1764428400, 300) == "BAD_SIGNATURE"
    assert domain.signature_problem("s3cret", ts, "v0=\u2603", body, 1764428400, 300) == "BAD_SIGNATURE"
    for odd in ("1_764_428_400", " 1764428400", "\u0661\u0667\u0666\u0664"):  # int() takes all three
        assert domain.signature_problem("s3cret", odd, "v0=00", body, 1764428400, 300) == "MALFORMED_TIMESTAMP"


# --- attendance ---


def test_attendance_statuses_minutes_and_reconnections_by_event_time() -> None:
    end = T0 + timedelta(minutes=60)
    signals = [
        sig("late", "participant_joined", 12),
        sig("early", "participant_joined", 0),
        sig("early", "participant_left", 30, "left the meeting"),
        # delivered out of order: the rejoin is listed before the drop it follows
        sig("flaky", "participant_joined", 25),
        sig("flaky", "participant_joined", 1),
        sig("flaky", "participant_left", 20, "Connection lost"),
    ]
    by = {c: domain.attendance_for(c, signals, T0, end, end, RULES) for c in ("late", "early", "flaky", "never")}
    assert by["late"].status == "late" and by["late"].minutes == 48.0
    assert by["early"].status == "left_early" and by["early"].minutes == 30.0
    assert by["flaky"].status == "on_time"
    assert (by["flaky"].disconnections, by["flaky"].reconnections) == (1, 1)
    assert by["flaky"].minutes == 19.0 + 35.0
    assert by["never"].status == "absent" and by["never"].modality == "none"
    live = domain.attendance_for("flaky", signals, T0, end, None, RULES)
    assert live.present and live.status == "on_time"
    assert domain.attendance_for("never", signals, T0, end, None, RULES).status == "expected"


def test_under_one_minute_attended_is_absent_even_when_it_rounds_to_one() -> None:
    end = T0 + timedelta(minutes=60)

    def attended(seconds: int) -> domain.Attendance:
        signals = [
            domain.LedgerSignal("j", "c", domain.JOINED, T0),
            domain.LedgerSignal(
                "l", "c", domain.LEFT, T0 + timedelta(seconds=seconds), leave_reason="left the meeting"
            ),
        ]
        return domain.attendance_for("c", signals, T0, end, end, RULES)

    assert attended(59).status == "absent"  # 0.98 min, shown as 1.0
    assert attended(59).minutes == 1.0
    assert attended(60).status == "left_early"


def test_a_quality_dip_to_zero_then_recovery_is_a_disconnection_and_a_reconnection() -> None:
    """A connection-quality reading of 0 is a drop; the quality coming back is the reconnection
    (it used to leave the client "left" for the rest of the session: absent from the minutes, not
    present, left early at the end). By event time, in any order of delivery, replays included."""
    end = T0 + timedelta(minutes=60)
    signals = [
        sig("c", "connection_quality", 22, value=3),  # the recovery, delivered before the dip
        sig("c", "connection_quality", 20, value=0),
        sig("c", "participant_joined", 0),
        sig("c", "connection_quality", 21, value=0, n=1),  # another reading of 0 in the same outage
        sig("c", "connection_quality", 40, value=4),  # a reading while connected: nothing
    ]
    live = domain.attendance_for("c", signals, T0, end, None, RULES)
    assert live.present and live.status == "on_time"
    assert (live.disconnections, live.reconnections) == (1, 1)
    final = domain.attendance_for("c", signals, T0, end, end, RULES)
    assert final.status == "on_time" and final.minutes == 58.0
    assert domain.attendance_for("c", list(reversed(signals)) * 2, T0, end, end, RULES) == final
    # after a normal leave the quality readings do not bring the client back: only a rejoin does
    left = [sig("c", "participant_joined", 0), sig("c", "participant_left", 20, "left the meeting")]
    after_leave = domain.attendance_for("c", [*left, sig("c", "connection_quality", 22, value=3)], T0, end, end, RULES)
    assert after_leave.status == "left_early" and after_leave.minutes == 20.0 and after_leave.reconnections == 0


def test_a_quality_dip_raises_one_connection_dropped_and_none_once_the_quality_is_back() -> None:
    end = T0 + timedelta(hours=1)
    joined = sig("c", "participant_joined", 0)
    dip = sig("c", "connection_quality", 20, value=0)
    assert domain.drop_is_current(dip, [joined, dip], T0, end, ended=False, rules=RULES)
    # the recovery known first (delivered before the dip, or the dip delivered late): history
    back = sig("c", "connection_quality", 22, value=3)
    assert not domain.drop_is_current(dip, [joined, back, dip], T0, end, ended=False, rules=RULES)
    # a second reading of 0 in the same outage, arriving after the first (either order of event
    # time): the crisis service would take it as "disconnected again" and escalate
    again = sig("c", "connection_quality", 21, value=0)
    assert not domain.drop_is_current(again, [joined, dip, again], T0, end, ended=False, rules=RULES)
    earlier = sig("c", "connection_quality", 19, value=0)
    assert not domain.drop_is_current(earlier, [joined, dip, earlier], T0, end, ended=False, rules=RULES)
    # a later outage, after the quality came back, is a new drop
    later = sig("c", "participant_left", 30, "Connection lost")
    assert domain.drop_is_current(later, [joined, dip, back, later], T0, end, ended=False, rules=RULES)
    # the webhook saw the participant rejoin after the drop, before the ledger has that signal
    seen = domain.LastSeen(connected=T0 + timedelta(minutes=31), joined=T0 + timedelta(minutes=31))
    assert not domain.drop_is_current(later, [joined, later], T0, end, ended=False, rules=RULES, seen=seen)
    before = domain.LastSeen(connected=T0, joined=T0)
    assert domain.drop_is_current(later, [joined, later], T0, end, False, rules=RULES, seen=before)
    # the quality back after the dip, seen by the webhook only
    assert not domain.drop_is_current(dip, [joined, dip], T0, end, False, rules=RULES, seen=domain.LastSeen(back.at))


def test_a_quality_reading_after_a_lost_connection_is_not_a_reconnection() -> None:
    """A participant_left for a lost connection takes the participant out of the meeting: only a
    rejoin brings them back. A quality reading above 0 stamped after it (a platform's reading of the
    minute before, sent late) used to count as the reconnection: the drop was never reported (the
    webhook had recorded "connected" after it) and the client showed as present again."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    lost = sig("c", "participant_left", 20, "Connection lost")
    stale = sig("c", "connection_quality", 20.5, value=3)
    assert domain.drop_is_current(lost, [joined, stale, lost], T0, end, ended=False, rules=RULES)
    assert domain.drop_is_current(
        lost, [joined, lost], T0, end, ended=False, rules=RULES, seen=domain.LastSeen(connected=stale.at)
    )
    rejoined = domain.LastSeen(connected=stale.at, joined=stale.at)
    assert not domain.drop_is_current(lost, [joined, lost], T0, end, ended=False, rules=RULES, seen=rejoined)
    live = domain.attendance_for("c", [joined, lost, stale], T0, end, None, RULES)
    assert (live.present, live.disconnections, live.reconnections) == (False, 1, 0)
    final = domain.attendance_for("c", [joined, lost, stale], T0, end, end, RULES)
    assert final.minutes == 20.0
    # a dip to 0 and then the connection lost: the quality coming back does not end that outage either
    dip = sig("c", "connection_quality", 19, value=0)
    assert not domain.attendance_for("c", [joined, dip, lost, stale], T0, end, None, RULES).present


def test_the_next_outage_is_reported_when_the_webhook_saw_the_reconnection_the_ledger_lacks() -> None:
    """Drop, rejoin, drop again, the rejoin not yet applied by the ledger consumer: the webhook has
    recorded it, and the second drop is a new outage (it used to be taken for the first one's)."""
    end = T0 + timedelta(minutes=60)
    first = sig("c", "participant_left", 10, "Connection lost")
    again = sig("c", "participant_left", 30, "Connection lost")
    ledger = [sig("c", "participant_joined", 0), first, again]
    seen = domain.LastSeen(connected=T0 + timedelta(minutes=20), joined=T0 + timedelta(minutes=20))
    assert domain.drop_is_current(again, ledger, T0, end, ended=False, rules=RULES, seen=seen)
    assert not domain.drop_is_current(again, ledger, T0, end, ended=False, rules=RULES)  # one outage, known


def test_a_reading_of_zero_after_a_normal_leave_is_not_a_drop() -> None:
    """The participant left the meeting; a quality reading of 0 stamped after that (delivered late)
    is not a lost connection of someone in the session."""
    end = T0 + timedelta(minutes=60)
    left = [sig("c", "participant_joined", 0), sig("c", "participant_left", 20, "left the meeting")]
    zero = sig("c", "connection_quality", 21, value=0)
    assert not domain.drop_is_current(zero, [*left, zero], T0, end, ended=False, rules=RULES)
    back = [*left, sig("c", "participant_joined", 25)]
    late_zero = sig("c", "connection_quality", 26, value=0)
    assert domain.drop_is_current(late_zero, [*back, late_zero], T0, end, ended=False, rules=RULES)


def test_a_dip_the_client_left_normally_after_is_over_once_the_leave_is_known() -> None:
    """A quality dip to 0, then a normal leave, with or without the quality back in between. The dip
    is a drop, reported while it is the news; once the leave is known (the platform's quality
    readings often come after its participant_left), the client left the meeting themselves and
    the dip is history: it used to stay an open outage until a rejoin, and a dip delivered after
    the leave raised a ConnectionDropped (and a crisis alert) for a client who had left as planned."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    dip = sig("c", "connection_quality", 20, value=0)
    back = sig("c", "connection_quality", 22, value=3)
    left = sig("c", "participant_left", 30, "left the meeting")
    assert domain.drop_is_current(dip, [joined, dip], T0, end, ended=False, rules=RULES)  # as it happens
    for known in ([joined, left], [joined, back, left], [joined, left, back]):
        assert not domain.drop_is_current(dip, [*known, dip], T0, end, ended=False, rules=RULES), known
    assert domain.outages([joined, dip, left], RULES) == [([dip], True)]
    # the leave seen by the webhook only (the ledger consumer has not applied it yet)
    seen_leaving = domain.LastSeen(connected=left.at, left=left.at)
    assert not domain.drop_is_current(dip, [joined, dip], T0, end, False, rules=RULES, seen=seen_leaving)
    # a leave for a lost connection after the dip: the same outage, not over
    lost = sig("c", "participant_left", 30, "Connection lost")
    assert domain.outages([joined, dip, lost], RULES) == [([dip, lost], False)]
    # the attendance: one disconnection; a reconnection only when the quality came back
    recovered = domain.attendance_for("c", [joined, dip, back, left], T0, end, end, RULES)
    assert (recovered.disconnections, recovered.reconnections, recovered.present) == (1, 1, False)
    assert recovered.minutes == 28.0
    dipped = domain.attendance_for("c", [joined, dip, left], T0, end, end, RULES)
    assert (dipped.disconnections, dipped.reconnections, dipped.present) == (1, 0, False)
    # a later rejoin and a reading of 0 after it are a new outage, in any order of delivery
    rejoin, zero = sig("c", "participant_joined", 40), sig("c", "connection_quality", 50, value=0)
    assert domain.drop_is_current(zero, [joined, dip, left, rejoin, zero], T0, end, ended=False, rules=RULES)
    back_again = domain.LastSeen(connected=rejoin.at, joined=rejoin.at, left=left.at)
    assert domain.drop_is_current(zero, [joined, zero], T0, end, ended=False, rules=RULES, seen=back_again)
    # the rejoin delivered last: the reading of 0 had looked like a late one from after the leave
    revealed = domain.drop_after_reconnection(rejoin, [joined, dip, left, zero, rejoin], T0, end, False, rules=RULES)
    assert revealed == zero
    assert domain.drop_after_reconnection(rejoin, [joined, left, zero, rejoin], T0, end, False, rules=RULES) == zero


HOST_ACTIONS = (
    "removed by host",
    "moved to breakout room",
    "moved to main room",
    "host ended the meeting",
    "meeting ended",
    "left the meeting. Reason : removed by host",  # Zoom's own wording of a leave reason
    "left the meeting. Reason : left the meeting to join breakout room",
)


def test_a_dip_the_host_then_removed_or_moved_stays_open_and_is_reported() -> None:
    """A host removing a frozen client, moving them between rooms or ending the meeting proves
    nothing about the client's connection: only a leave of the client's own ends a quality dip
    (rules.yaml `dip_ending_leave_reasons`). A dip delivered after such a leave is reported (it used
    to raise nothing, like a dip before a leave of the client's own). The host's action itself is
    still no drop, and the attendance is what it was."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    dip = sig("c", "connection_quality", 20, value=0)
    for reason in HOST_ACTIONS:
        left = sig("c", "participant_left", 30, reason)
        assert not domain.is_drop(left, RULES) and domain.is_normal_leave(left, RULES), reason
        assert not domain.ends_dip(left, RULES), reason
        assert domain.outages([joined, dip, left], RULES) == [([dip], False)], reason
        assert domain.drop_is_current(dip, [joined, left, dip], T0, end, ended=False, rules=RULES), reason
        assert domain.drop_is_current(dip, [joined, dip], T0, end, ended=False, rules=RULES), reason
        a = domain.attendance_for("c", [joined, dip, left], T0, end, end, RULES)
        assert (a.disconnections, a.reconnections, a.present, a.minutes) == (1, 0, False, 20.0), reason
        # a reading above 0 after it ends the dip (a live connection, in a breakout room say): the
        # host's action leaves the dip a dip
        back = sig("c", "connection_quality", 33, value=4)
        assert domain.outages([joined, dip, left, back], RULES) == [([dip], True)], reason
        # a reading of 0 stamped after the host's action, with no dip before it, is still no drop
        zero = sig("c", "connection_quality", 35, value=0)
        assert not domain.drop_is_current(zero, [joined, left, zero], T0, end, ended=False, rules=RULES), reason


def test_a_dip_the_client_then_left_after_is_still_over() -> None:
    """Unchanged: the client's own leave ("left the meeting", also in Zoom's "left the meeting.
    Reason : left the meeting") ends the dip; delivered after it, the dip raises nothing."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    dip = sig("c", "connection_quality", 20, value=0)
    for reason in ("left the meeting", "Left the meeting.", "left the meeting. Reason : left the meeting"):
        left = sig("c", "participant_left", 30, reason)
        assert domain.ends_dip(left, RULES), reason
        assert domain.outages([joined, dip, left], RULES) == [([dip], True)], reason
        assert not domain.drop_is_current(dip, [joined, left, dip], T0, end, ended=False, rules=RULES), reason
    # a lost connection is no leave of the client's own, whatever words come first
    network = sig("c", "participant_left", 30, "left the meeting. Reason : Network connection error.")
    assert not domain.ends_dip(network, RULES)


def test_a_host_action_leave_splits_no_outage_late() -> None:
    """Dip, removal by the host, rejoin, lost connection. The removal does not end the dip: the lost
    connection, delivered before the removal and the rejoin, is in the dip's outage (the dip raised
    it) until the rejoin comes, which reveals it; the removal delivered late reveals nothing."""
    end = T0 + timedelta(minutes=60)
    joined, dip = sig("c", "participant_joined", 0), sig("c", "connection_quality", 10, value=0)
    removed, rejoin = sig("c", "participant_left", 20, "removed by host"), sig("c", "participant_joined", 30)
    lost = sig("c", "participant_left", 40, "Connection lost")
    assert not domain.drop_is_current(lost, [joined, dip, lost], T0, end, ended=False, rules=RULES)
    assert domain.drop_after_reconnection(removed, [joined, dip, lost, removed], T0, end, False, rules=RULES) is None
    everything = [joined, dip, lost, removed, rejoin]
    assert domain.drop_after_reconnection(rejoin, everything, T0, end, False, rules=RULES) == lost
    # the webhook's view: a host's action is not recorded as a leave of the client's own
    assert domain.drop_is_current(dip, [joined, dip], T0, end, False, rules=RULES, seen=domain.LastSeen())


def test_the_webhooks_record_of_a_host_action_is_judged_as_the_ledger_judges_the_action() -> None:
    """What the webhook saw (`LastSeen.removed`: a host's action the ledger has not applied yet):
    a reading of 0 stamped after it is no drop, as with the action in the ledger; a dip before it is
    still current (it ends no dip), and a rejoin after it brings the client back."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    removed = domain.LastSeen(removed=T0 + timedelta(minutes=20))
    after, before = sig("c", "connection_quality", 25, value=0), sig("c", "connection_quality", 15, value=0)
    for dip, current in ((after, False), (before, True)):
        ledger = [joined, sig("c", "participant_left", 20, "left the meeting. Reason : Host ended the meeting."), dip]
        assert domain.drop_is_current(dip, ledger, T0, end, False, rules=RULES) is current
        assert domain.drop_is_current(dip, [joined, dip], T0, end, False, rules=RULES, seen=removed) is current
    back = domain.LastSeen(joined=T0 + timedelta(minutes=22), removed=T0 + timedelta(minutes=20))
    assert domain.drop_is_current(after, [joined, after], T0, end, False, rules=RULES, seen=back)


def test_dip_ending_leave_reasons_are_loaded_and_checked() -> None:
    assert RULES.dip_ending_leave_reasons == ("left the meeting",)
    raw = yaml.safe_load(RULES_PATH.read_text())
    for bad in (["removed by tornado"], "left the meeting", [""], [3]):
        raw["attendance"]["dip_ending_leave_reasons"] = bad
        with pytest.raises(ValueError, match="dip_ending_leave_reasons"):
            parse_rules(raw)
    raw["attendance"]["dip_ending_leave_reasons"] = []  # no leave ends a dip: allowed (more is reported)
    assert parse_rules(raw).dip_ending_leave_reasons == ()
    del raw["attendance"]["dip_ending_leave_reasons"]
    with pytest.raises(KeyError):
        parse_rules(raw)


def test_a_normal_leave_delivered_after_the_next_drop_reveals_that_drop() -> None:
    """Dip, normal leave, rejoin, lost connection; the lost connection delivered before the leave
    and the rejoin was taken for the dip's outage. The leave ends the dip: delivered next, it
    reveals the lost connection, and the rejoin after it nothing more (its check finds the outage
    split by the leave already: before the leave was checked too, nobody reported it). Delivered the
    other way round, the rejoin reveals it, and the leave nothing more."""
    end = T0 + timedelta(minutes=60)
    joined, dip = sig("c", "participant_joined", 0), sig("c", "connection_quality", 10, value=0)
    left, rejoin = sig("c", "participant_left", 20, "left the meeting"), sig("c", "participant_joined", 30)
    lost = sig("c", "participant_left", 40, "Connection lost")
    assert not domain.drop_is_current(lost, [joined, dip, lost], T0, end, ended=False, rules=RULES)
    assert domain.drop_after_reconnection(left, [joined, dip, lost, left], T0, end, False, rules=RULES) == lost
    everything = [joined, dip, lost, left, rejoin]
    assert domain.drop_after_reconnection(rejoin, everything, T0, end, False, rules=RULES) is None
    assert domain.drop_after_reconnection(rejoin, [joined, dip, lost, rejoin], T0, end, False, rules=RULES) == lost
    assert domain.drop_after_reconnection(left, everything, T0, end, False, rules=RULES) is None


def test_a_drop_in_the_outage_of_a_reading_of_0_that_was_no_drop_is_reported() -> None:
    """Join, normal leave, rejoin (delivered last), lost connection, a reading of 0 after it: the
    reading, delivered before the lost connection, looked like one from after the leave and raised
    nothing. The lost connection is the outage's news: current, not taken for one already raised.
    A second reading of 0 in the outage is not (the lost connection raised it)."""
    end = T0 + timedelta(minutes=60)
    joined, left = sig("c", "participant_joined", 0), sig("c", "participant_left", 10, "left the meeting")
    rejoin, lost = sig("c", "participant_joined", 20), sig("c", "participant_left", 30, "Connection lost")
    zero, again = sig("c", "connection_quality", 40, value=0), sig("c", "connection_quality", 45, value=0)
    assert not domain.drop_is_current(zero, [joined, left, zero], T0, end, ended=False, rules=RULES)
    assert domain.drop_is_current(lost, [joined, left, zero, lost], T0, end, ended=False, rules=RULES)
    assert not domain.drop_is_current(again, [joined, left, zero, lost, again], T0, end, ended=False, rules=RULES)
    assert (
        domain.drop_after_reconnection(rejoin, [joined, left, zero, lost, rejoin], T0, end, False, rules=RULES) is None
    )


def test_a_drop_that_reopens_an_outage_judged_over_is_reported() -> None:
    """Join, a dip to 0, a lost connection, a reading above 0 after it (a late report: after a
    participant_left only a join brings the client back). Delivered reading first, then the dip,
    then the lost connection: the dip came when its outage was over (the reading ended it) and
    raised nothing; the lost connection makes the outage open again, and was taken for the dip's,
    which "raised it": the client's disconnection was never reported. It is the news now. The same
    with a host's removal between the dip and the lost connection and the client's own leave after
    (the removal no longer ends the dip, so the leave after the lost connection ends nothing)."""
    end = T0 + timedelta(minutes=60)
    joined, dip = sig("c", "participant_joined", 0), sig("c", "connection_quality", 10, value=0)
    lost, reading = sig("c", "participant_left", 20, "Connection lost"), sig("c", "connection_quality", 30, value=4)
    assert not domain.drop_is_current(dip, [joined, reading, dip], T0, end, ended=False, rules=RULES)
    assert domain.drop_is_current(lost, [joined, reading, dip, lost], T0, end, ended=False, rules=RULES)
    assert domain.outages([joined, dip, lost, reading], RULES) == [([dip, lost], False)]
    # the dip delivered before the reading raised the outage: the lost connection then reports it again
    # (erring toward reporting: when it comes, the reading that ended the dip may have come before it)
    assert domain.drop_is_current(dip, [joined, dip], T0, end, ended=False, rules=RULES)
    # a reading of 0 in an outage still open without it is the outage's again: not reported
    again = sig("c", "connection_quality", 25, value=0)
    assert not domain.drop_is_current(again, [joined, dip, lost, again], T0, end, ended=False, rules=RULES)
    removed, own = (
        sig("c", "participant_left", 15, "removed by host"),
        sig("c", "participant_left", 40, "left the meeting"),
    )
    lost_later = sig("c", "participant_left", 30, "Connection lost")
    ledger = [joined, removed, own, dip]
    assert not domain.drop_is_current(dip, ledger, T0, end, ended=False, rules=RULES)
    assert domain.drop_is_current(lost_later, [*ledger, lost_later], T0, end, ended=False, rules=RULES)


def test_a_reconnection_delivered_after_the_next_drop_reveals_that_drop() -> None:
    end = T0 + timedelta(minutes=60)
    first = sig("c", "participant_left", 10, "Connection lost")
    again = sig("c", "participant_left", 30, "Connection lost")
    rejoin = sig("c", "participant_joined", 20)
    ledger = [sig("c", "participant_joined", 0), first, again, rejoin]

    def revealed(sign: domain.LedgerSignal, signals: list, **kw) -> domain.LedgerSignal | None:
        return domain.drop_after_reconnection(sign, signals, T0, end, ended=False, rules=RULES, **kw)

    assert revealed(rejoin, ledger) == again
    assert revealed(rejoin, [*ledger, sig("c", "participant_joined", 31)]) is None  # over since
    assert revealed(rejoin, ledger, seen=domain.LastSeen(joined=T0 + timedelta(minutes=31))) is None
    assert domain.drop_after_reconnection(rejoin, ledger, T0, end, ended=True, rules=RULES) is None
    # the rejoin known before the second drop: that drop was judged on its own when it came
    assert revealed(sig("c", "participant_joined", 40), [*ledger, sig("c", "participant_joined", 40)]) is None
    # a quality reading does not end a lost connection: nothing split
    reading = sig("c", "connection_quality", 20, value=4)
    assert revealed(reading, [sig("c", "participant_joined", 0), first, again, reading]) is None
    # it does end a dip
    dip, dip_again = sig("c", "connection_quality", 10, value=0), sig("c", "connection_quality", 30, value=0)
    assert revealed(reading, [sig("c", "participant_joined", 0), dip, dip_again, reading]) == dip_again


def test_zoom_wording_of_a_leave_reason_is_judged_by_the_reason_itself() -> None:
    """Zoom words every participant_left reason as "left the meeting. Reason : <reason>": matched as
    a substring, "left the meeting" made each a normal leave, a network error included, and no lost
    connection of a Zoom participant_left was ever a drop."""
    zoom = "left the meeting. Reason : "
    for reason in ("Network connection error. ", "Connection lost", "unknown"):
        assert domain.is_drop(sig("c", "participant_left", 20, zoom + reason), RULES), reason
    for reason in (
        "left the meeting",
        "Host ended the meeting.",
        "removed by host",
        "left the meeting to join breakout room",
    ):
        assert domain.is_normal_leave(sig("c", "participant_left", 20, zoom + reason), RULES), reason
    for plain in ("left the meeting", "Left the meeting", "removed by host", "moved to main room"):
        assert domain.is_normal_leave(sig("c", "participant_left", 20, plain), RULES), plain
    assert domain.is_drop(sig("c", "participant_left", 20, "Connection lost"), RULES)


# Zoom's documented leave reasons (the dashboard's participant `leave_reason`, the part after
# "Reason :" in a participant_left webhook): "$name left the meeting." is the client's own leave.
ZOOM_REASONS_NO_LOST_CONNECTION = (
    "Host ended the meeting.",
    "Host closed the meeting.",
    "Host started a new meeting.",
    "Host did not join.",
    "Exceeded free meeting minutes limit.",
    "Removed by host.",
    "Leave waiting room.",
    "Removed by host from waiting room.",
)
ZOOM_REASONS_LOST_CONNECTION = (
    "Network connection error.",
    "c-1 got disconnected from the meeting.",
    "Unknown reason.",
)


def test_every_zoom_reason_that_is_no_lost_connection_is_a_normal_leave() -> None:
    """Matched against the whole text, Zoom's "left the meeting. Reason : <reason>" made every
    reason a normal leave; matched against the reason itself, the host closing the meeting (or
    starting a new one, or never joining, or the free minutes running out) and a client leaving the
    waiting room were drops: a ConnectionDropped, and a crisis alert, for each client still in the
    meeting. None is the client's own leave from the meeting: none ends a quality dip. A lost
    connection, and a reason Zoom does not know, is still a drop."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    for reason in ZOOM_REASONS_NO_LOST_CONNECTION:
        for text in (reason, "left the meeting. Reason : " + reason):
            left = sig("c", "participant_left", 30, text)
            assert domain.is_normal_leave(left, RULES), text
            assert not domain.ends_dip(left, RULES), text
            assert not domain.drop_is_current(left, [joined, left], T0, end, ended=False, rules=RULES), text
            a = domain.attendance_for("c", [joined, left], T0, end, None, RULES)
            assert (a.disconnections, a.minutes) == (0, 30.0), text
    for reason in ZOOM_REASONS_LOST_CONNECTION:
        left = sig("c", "participant_left", 30, "left the meeting. Reason : " + reason)
        assert domain.is_drop(left, RULES), reason
        assert domain.drop_is_current(left, [joined, left], T0, end, ended=False, rules=RULES), reason


def test_a_zoom_leave_with_an_empty_reason_is_a_normal_leave_that_ends_no_dip() -> None:
    """Zoom words a leave "left the meeting. Reason : <reason>" and names a lost connection in the
    reason ("Network connection error.", "$name got disconnected from the meeting.", "Unknown
    reason."). With nothing after "Reason :" it says only that the participant left the meeting: a
    normal leave, no drop (it was one: a ConnectionDropped, and a crisis alert, for a client who
    left). It does not say who acted (the same words come before a host's action), so, as a host's
    action, it ends no quality dip: a dip before it is still reported. A participant_left with no
    reason at all (not Zoom's wording) is still taken for a lost connection."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    dip = sig("c", "connection_quality", 20, value=0)
    for text in ("left the meeting. Reason :", "Left the meeting. Reason : ", "left the meeting. Reason : ."):
        left = sig("c", "participant_left", 30, text)
        assert not domain.is_drop(left, RULES) and domain.is_normal_leave(left, RULES), text
        assert not domain.ends_dip(left, RULES), text
        assert not domain.drop_is_current(left, [joined, left], T0, end, ended=False, rules=RULES), text
        a = domain.attendance_for("c", [joined, left], T0, end, None, RULES)
        assert (a.disconnections, a.minutes) == (0, 30.0), text
        assert domain.drop_is_current(dip, [joined, left, dip], T0, end, ended=False, rules=RULES), text
        zero = sig("c", "connection_quality", 35, value=0)  # stamped after it: no drop
        assert not domain.drop_is_current(zero, [joined, left, zero], T0, end, ended=False, rules=RULES), text
    for text in ("", " ", "."):
        assert domain.is_drop(sig("c", "participant_left", 30, text), RULES), text


# Zoom's participant_left `leave_reason` names the participant in "$name got disconnected from the
# meeting." (and may name them before "left the meeting. Reason :"): the display name is the
# client's own text. Matched as a substring, a name holding a normal reason made a lost connection
# a normal leave (no ConnectionDropped, no crisis alert). Each of these is a lost connection.
NAMED_LOST_CONNECTIONS = (
    "left the meeting. Reason : Eve left the meeting got disconnected from the meeting.",
    "left the meeting. Reason : left the meeting got disconnected from the meeting.",
    "left the meeting. Reason : Host ended the meeting got disconnected from the meeting.",
    "left the meeting. Reason : Removed by host got disconnected from the meeting.",
    "left the meeting. Reason : x. Reason : left the meeting got disconnected from the meeting.",
    "left the meeting. Reason : Eve left the meeting. Reason : left the meeting. got disconnected from the meeting.",
    "Eve left the meeting got disconnected from the meeting.",
    "Host ended the meeting got disconnected from the meeting.",
    # a name before Zoom's own words, and its reason after them
    "Eve. Reason : left the meeting. Eve left the meeting. Reason : Network connection error.",
    # Zoom's statement of a disconnection, whatever reason follows it
    "got disconnected from the meeting. Reason : Client Close.",
    "got disconnected from the meeting. Reason : left the meeting",
    "Eve got disconnected from the meeting. Reason : Host ended the meeting.",
    "got disconnected from the meeting. Reason : Eve left the meeting.",
)
# Zoom's own webhook wordings of a leave that is no lost connection (the part after "Reason :"
# matched whole, so the moves between breakout rooms, which "left the meeting" in them made normal
# leaves as a substring, are listed)
ZOOM_WEBHOOK_NORMAL_LEAVES = (
    ("left the meeting. Reason : left the meeting", True),
    ("left the meeting. Reason : left the meeting to join breakout room", False),
    ("left the meeting. Reason : left the meeting leave breakout room to join main meeting", False),
    ("left the meeting. Reason : Removed by host from waiting room.", False),
    ("Eve. Reason : Network connection error. Eve left the meeting. Reason : left the meeting", True),
    ("Eve left the meeting. Reason : Host ended the meeting.", False),
    # the client's own leave under their display name, "$name left the meeting." (one of Zoom's
    # reasons, so also after "Reason :"): matched whole, the name made it a drop in 2026-12-07.4
    ("Eve left the meeting.", True),
    ("c-1  Left The Meeting", True),
    ("left the meeting. Reason : Eve left the meeting.", True),
    ("Eve left the meeting. Reason : Eve left the meeting.", True),
    ("Eve got disconnected from the meeting left the meeting.", True),
)


def test_a_leave_reason_is_matched_whole_so_a_display_name_cannot_make_a_drop_a_normal_leave() -> None:
    """The reason itself (the part after Zoom's last "left the meeting. Reason :", or the whole
    text) must be one of the normal leave reasons, not contain one: a display name holding "left
    the meeting" (or any normal reason) made Zoom's "$name got disconnected from the meeting." a
    normal leave, and the client's lost connection raised nothing."""
    end = T0 + timedelta(minutes=60)
    joined = sig("c", "participant_joined", 0)
    for text in NAMED_LOST_CONNECTIONS:
        left = sig("c", "participant_left", 30, text)
        assert domain.is_drop(left, RULES) and not domain.is_normal_leave(left, RULES), text
        assert not domain.ends_dip(left, RULES), text
        assert domain.drop_is_current(left, [joined, left], T0, end, ended=False, rules=RULES), text
    for text, own in ZOOM_WEBHOOK_NORMAL_LEAVES:
        left = sig("c", "participant_left", 30, text)
        assert domain.is_normal_leave(left, RULES) and domain.ends_dip(left, RULES) is own, text
    # the rules' own lists are matched whole too
    raw = yaml.safe_load(RULES_PATH.read_text())
    raw["attendance"]["dip_ending_leave_reasons"] = ["left the meeting got disconnected from the meeting"]
    with pytest.raises(ValueError, match="dip_ending_leave_reasons"):
        parse_rules(raw)


def test_a_kept_leave_reason_holds_no_platform_text_and_is_judged_as_the_platform_text() -> None:
    """What the service keeps and publishes of a leave's reason (`kept_leave_reason`): a normal
    leave's reason in the rules' words, Zoom's leave without a reason as that, "" for a lost
    connection (its text can hold the display name: PHI). Judged again, a kept reason is a drop, a
    normal leave and the end of a dip exactly when the platform's text was, and is kept as it is."""
    texts = [
        *NAMED_LOST_CONNECTIONS,
        *(text for text, _ in ZOOM_WEBHOOK_NORMAL_LEAVES),
        "left the meeting. Reason :",
        "Left the meeting. Reason : ",
        "",
        "Connection lost",
        "Left the meeting",
    ]
    for text in texts:
        kept = domain.kept_leave_reason(text, RULES)
        assert "eve" not in kept.lower() and "disconnected" not in kept, (text, kept)
        assert domain.kept_leave_reason(kept, RULES) == kept, (text, kept)
        platform, ours = sig("c", "participant_left", 30, text), sig("c", "participant_left", 30, kept)
        for judge in (domain.is_drop, domain.is_normal_leave, domain.ends_dip):
            assert judge(ours, RULES) == judge(platform, RULES), (judge.__name__, text, kept)
    assert domain.kept_leave_reason("Eve got disconnected from the meeting.", RULES) == ""
    assert domain.kept_leave_reason("Eve left the meeting.", RULES) == "left the meeting"
    assert domain.kept_leave_reason("Eve left the meeting. Reason : Host ended the meeting.", RULES) == (
        "host ended the meeting"
    )


def test_drop_classification_and_currency() -> None:
    drop = sig("c", "participant_left", 20, "Connection lost")
    assert domain.is_drop(drop, RULES)
    assert not domain.is_drop(sig("c", "participant_left", 20, "Left the meeting"), RULES)
    assert domain.is_drop(sig("c", "connection_quality", 20, value=0), RULES)
    assert not domain.is_drop(sig("c", "connection_quality", 20, value=3), RULES)
    end = T0 + timedelta(hours=1)
    assert domain.drop_is_current(drop, [drop], T0, end, ended=False, rules=RULES)
    assert not domain.drop_is_current(drop, [drop], T0, end, ended=True, rules=RULES)
    rejoined = [drop, sig("c", "participant_joined", 21)]
    assert not domain.drop_is_current(drop, rejoined, T0, end, ended=False, rules=RULES)
    before = sig("c", "participant_left", -16, "Connection lost")
    assert not domain.drop_is_current(before, [before], T0, end, ended=False, rules=RULES)
    long_after = sig("c", "participant_left", 60 + RULES.drop_current_after_end_min + 1, "Connection lost")
    assert not domain.drop_is_current(long_after, [long_after], T0, end, ended=False, rules=RULES)


def test_a_drop_after_the_scheduled_end_of_a_session_still_running_is_current() -> None:
    """The reviewer's case: a session started 10 minutes late, running past its scheduled end, no
    SessionEnded yet. A drop 2 minutes after the scheduled end went unreported."""
    end = T0 + timedelta(hours=1)
    started = T0 + timedelta(minutes=10)
    drop = sig("c", "participant_left", 62, "Connection lost")
    signals = [sig("c", "participant_joined", 10), drop]
    assert domain.drop_is_current(drop, signals, T0, end, False, started, rules=RULES)
    assert domain.drop_is_current(drop, signals, T0, end, False, None, rules=RULES)  # SessionStarted not seen
    assert not domain.drop_is_current(drop, signals, T0, end, True, started, rules=RULES)  # ended: history
    # a late start moves the window: scheduled length after the actual start, plus the overrun
    late = sig("c", "participant_left", 10 + 60 + RULES.drop_current_after_end_min - 1, "Connection lost")
    assert domain.drop_is_current(late, [late], T0, end, False, started, rules=RULES)
    assert not domain.drop_is_current(late, [late], T0, end, False, None, rules=RULES)


def test_event_times_ahead_of_arrival_are_refused() -> None:
    received = T0
    assert domain.event_time_problem(T0 + timedelta(seconds=300), received, 300) is None
    assert domain.event_time_problem(T0 - timedelta(days=3), received, 300) is None
    problem = domain.event_time_problem(T0 + timedelta(days=2), received, 300)
    assert problem is not None and problem.startswith("EVENT_TIME_IN_FUTURE")

    def hook(event: str, event_ts: datetime, **participant: str) -> Webhook:
        body = {"customer_key": "c-1", **participant}
        return Webhook.model_validate(
            {
                "event": event,
                "event_ts": int(event_ts.timestamp() * 1000),
                "payload": {"object": {"id": "s-1", "participant": body}},
            }
        )

    joined, left = "meeting.participant_joined", "meeting.participant_left"
    ok = to_signal(hook(joined, T0, join_time=(T0 + timedelta(minutes=4)).isoformat()), "x", received, RULES)
    assert ok.occurred_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=4)
    for bad, field in (
        (hook(joined, T0, join_time=(T0 + timedelta(days=2)).isoformat()), "payload.object.participant.join_time"),
        (hook(joined, T0, join_time="9999-12-31T23:59:59Z"), "payload.object.participant.join_time"),
        (hook(left, T0, leave_time="9999-12-31T23:59:59"), "payload.object.participant.leave_time"),
        (hook("meeting.participant_video_on", T0 + timedelta(days=2)), "event_ts"),
    ):
        with pytest.raises(UnusableWebhook) as err:
            to_signal(bad, "x", received, RULES)
        assert err.value.field == field


def test_event_ts_beyond_what_a_datetime_holds_is_a_validation_error() -> None:
    for event_ts in (10**15, 10**20, 2**63):
        body = {
            "event": "meeting.participant_qos",
            "event_ts": event_ts,
            "payload": {"object": {"id": "s", "participant": {"customer_key": "c"}}},
        }
        with pytest.raises(ValidationError):
            Webhook.model_validate(body)


# --- outcomes ---


def test_outcome_validation_item_by_item_and_scoring() -> None:
    violations = domain.outcome_violations(RULES.phq9, [0, 4, 1, -1], RULES)
    assert [f for f, _ in violations] == ["item_scores", "item_scores[1]", "item_scores[3]"]
    assert domain.outcome_violations(None, [], RULES)[0][0] == "instrument"
    assert domain.outcome_violations(RULES.gad7, [3] * 7, RULES) == []
    phq = domain.score_outcome(RULES.phq9, [3, 3, 3, 3, 3, 2, 2, 1, 0])
    assert (phq.total, phq.severity, phq.item9_positive) == (20, "severe", False)
    assert domain.score_outcome(RULES.phq9, [0] * 8 + [1]).item9_positive
    assert domain.score_outcome(RULES.gad7, [2] * 7).severity == "moderate"
    assert not domain.score_outcome(RULES.gad7, [3] * 7).item9_positive


def test_outcome_trend() -> None:
    pts = [(T0, 20), (T0 + timedelta(days=7), 15), (T0 + timedelta(days=14), 10)]
    trend = domain.outcome_trend(pts, RULES.trend_min_change)
    assert trend is not None
    assert (trend.direction, trend.change, trend.slope_per_week) == ("improving", -10, -5.0)
    single = domain.outcome_trend(pts[:1], 5)
    assert single is not None and single.direction == "insufficient_data"
    stable = domain.outcome_trend([(T0, 10), (T0 + timedelta(days=7), 12)], 5)
    assert stable is not None and stable.direction == "stable"


# --- windows and the client score ---


def attendance_fact(day: int, status: str, speaking_min: float = 6, camera: float = 1.0) -> dict:
    at = (T0 + timedelta(days=day)).isoformat()
    return {
        "at": at,
        "day": at[:10],
        "status": status,
        "minutes": 0 if status == "absent" else 60,
        "disconnections": 0,
        "speaking_s": speaking_min * 60,
        "chat": 1,
        "camera_on_ratio": camera,
    }


def test_rolling_windows_use_event_time_and_replays_do_not_double_count() -> None:
    state = scoring.new_client()
    for day in range(28):
        scoring.apply_attendance(state, f"s{day}", attendance_fact(day, "absent" if day >= 25 else "on_time"))
    # out of order and a replay of the same fact: nothing changes twice
    scoring.apply_attendance(state, "s3", attendance_fact(3, "on_time"))
    w7, w28 = scoring.client_window(state, 7), scoring.client_window(state, 28)
    assert (w7["sessions_expected"], w7["absent"], w7["sessions_attended"]) == (7, 3, 4)
    assert (w28["sessions_expected"], w28["absent"]) == (28, 3)
    assert w7["attendance_rate"] == round(4 / 7, 4)
    # a fact from 40 days before the latest event is outside every window, and pruned
    scoring.apply_attendance(state, "old", attendance_fact(-20, "absent"))
    assert "old" not in state["sessions"]
    assert scoring.client_window(state, 28)["sessions_expected"] == 28


def test_check_ins_replace_per_day_and_feed_the_window() -> None:
    state = scoring.new_client()
    day = (T0 + timedelta(days=1)).date().isoformat()
    scoring.apply_check_in(state, day, {"mood": 2, "practice_done": False}, T0.isoformat())
    scoring.apply_check_in(state, day, {"mood": 7, "practice_done": True}, T0.isoformat())
    w = scoring.client_window(state, 7)
    assert (w["check_ins"], w["mean_mood"], w["practice_days"]) == (1, 7.0, 1)


def test_check_in_days_are_strict_dates_near_today() -> None:
    today = T0.date()

    def fields(day: str) -> list[str]:
        return [f for f, _ in domain.check_in_violations("c-1", day, 5, 0, today, RULES)]

    assert fields(today.isoformat()) == []
    assert fields((today + timedelta(days=1)).isoformat()) == []  # east of UTC it is tomorrow already
    assert fields((today - timedelta(days=90)).isoformat()) == []
    for bad in ("9999-01-01", "2026-1-5", "2026-W45-1", "20261102", "2026-02-30", "", "2026-11-03 ", "\u0662026-11-03"):
        assert fields(bad) == ["day"], bad
    assert fields((today + timedelta(days=2)).isoformat()) == ["day"]
    assert fields((today - timedelta(days=91)).isoformat()) == ["day"]
    assert [f for f, _ in domain.check_in_violations("c 1", today.isoformat(), 5, 0, today, RULES)] == ["client_id"]


def test_a_far_future_check_in_does_not_erase_the_client_history() -> None:
    """The reviewer's case: four sessions, then a check-in for 2099-01-01 recorded now. It moved the
    windows to 2099 and pruned every session."""
    state = scoring.new_client()
    for n, status in enumerate(["absent", "absent", "absent", "on_time"]):
        scoring.apply_attendance(state, f"s{n}", attendance_fact(n, status))
    before = scoring.score(scoring.client_factors(state, RULES))
    recorded = (T0 + timedelta(days=4)).isoformat()
    for day in ("2099-01-01", "2026-1-5", (T0 + timedelta(days=6)).date().isoformat()):
        problem = scoring.apply_check_in(state, day, {"mood": 9, "practice_done": True}, recorded)
        assert problem is not None and problem.split(":")[0] in ("DAY_IN_FUTURE", "MALFORMED_DAY"), problem
    assert len(state["sessions"]) == 4 and state["check_ins"] == {}
    assert scoring.client_window(state, 7)["sessions_expected"] == 4
    assert scoring.score(scoring.client_factors(state, RULES)) == before
    tomorrow = (T0 + timedelta(days=5)).date().isoformat()  # the client's day may be one ahead of UTC
    assert scoring.apply_check_in(state, tomorrow, {"mood": 9, "practice_done": True}, recorded) is None
    assert len(state["sessions"]) == 4 and tomorrow in state["check_ins"]


def test_engagement_risk_is_explainable_and_hysteresis_does_not_flap() -> None:
    good = scoring.new_client()
    for day in range(7):
        scoring.apply_attendance(good, f"s{day}", attendance_fact(day, "on_time"))
        scoring.apply_check_in(
            good, (T0 + timedelta(days=day)).date().isoformat(), {"mood": 8, "practice_done": True}, ""
        )
    assert scoring.score(scoring.client_factors(good, RULES)) == 0.0

    bad = scoring.new_client()
    for day in range(7):
        scoring.apply_attendance(bad, f"s{day}", attendance_fact(day, "absent" if day % 2 else "late", 0, 0.0))
    factors = {f.name: f for f in scoring.client_factors(bad, RULES)}
    assert factors["absence_rate_7d"].value == pytest.approx(3 / 7)
    assert factors["late_or_left_early_rate_7d"].value == pytest.approx(4 / 7)
    assert factors["missed_check_ins_7d"].value == 1.0
    assert "missed 3 of 7 sessions" in factors["absence_rate_7d"].explanation
    value = scoring.score(list(factors.values()))
    assert value == pytest.approx(sum(f.value * f.weight for f in factors.values()), abs=1e-3)
    assert value >= RULES.client_threshold_up

    risk: dict = {}
    up = scoring.apply_hysteresis(risk, 0.55, 0.5, 0.35)
    assert up is not None and up.direction == "up" and up.sequence == 1
    assert scoring.apply_hysteresis(risk, 0.45, 0.5, 0.35) is None  # inside the band: no flapping
    assert scoring.apply_hysteresis(risk, 0.52, 0.5, 0.35) is None
    down = scoring.apply_hysteresis(risk, 0.30, 0.5, 0.35)
    assert down is not None and down.direction == "down" and down.sequence == 2
    assert scoring.apply_hysteresis(risk, 0.40, 0.5, 0.35) is None


def test_nudge_after_consecutive_absences_once_per_day() -> None:
    state = scoring.new_client()
    scoring.apply_attendance(state, "a", attendance_fact(0, "on_time"))
    scoring.apply_attendance(state, "b", attendance_fact(1, "absent"))
    assert scoring.needs_nudge(state, RULES) is None
    scoring.apply_attendance(state, "c", attendance_fact(2, "absent"))
    assert scoring.needs_nudge(state, RULES) == (T0 + timedelta(days=2)).date().isoformat()
    assert scoring.needs_nudge(state, RULES) is None


# --- sessions: participation ---


def test_session_participation_and_offset_replay_guard() -> None:
    state = scoring.new_session()
    assert not scoring.already_applied(state, "signals", 10, "x")
    scoring.apply_signal(state, "c", "participant_joined", T0.isoformat(), 0)
    scoring.apply_signal(state, "c", "speaking", (T0 + timedelta(minutes=5)).isoformat(), 90)
    scoring.apply_signal(state, "c", "camera_off", (T0 + timedelta(minutes=30)).isoformat(), 0)
    scoring.mark_applied(state, "signals", 10, "x")
    assert scoring.already_applied(state, "signals", 9) and scoring.already_applied(state, "signals", 11, "x")
    assert not scoring.already_applied(state, "signals", 11, "y")
    summary = scoring.participation_summary(state, "c", 60, (T0 + timedelta(minutes=60)).isoformat())
    assert summary == {"speaking_s": 90.0, "chat": 0, "camera_on_ratio": 0.5}


# --- clinicians: load and burnout ---


def clinician_with_day(sessions: int, minutes: int = 75, gap: int = 5) -> scoring.State:
    state = scoring.new_clinician()
    start = T0.replace(hour=8)
    for i in range(sessions):
        s = start + timedelta(minutes=i * (minutes + gap))
        fact = {
            "start": s.isoformat(),
            "end": (s + timedelta(minutes=minutes)).isoformat(),
            "clients": [f"c{i}"],
            "status": "scheduled",
        }
        scoring.apply_clinician_session(state, f"s{i}", fact, s.isoformat())
    return state


def test_burnout_from_a_full_back_to_back_day() -> None:
    light = clinician_with_day(2, gap=60)
    load = scoring.clinician_load(light, RULES)
    assert load["back_to_back_today"] == 0 and load["peak_day_hours"] == 2.5
    assert scoring.score(scoring.burnout_factors(load, RULES)) < RULES.burnout_threshold_up

    full = clinician_with_day(6)
    load = scoring.clinician_load(full, RULES)
    assert (load["back_to_back_today"], load["peak_day_hours"], load["caseload"]) == (5, 7.5, 6)
    factors = scoring.burnout_factors(load, RULES)
    assert scoring.score(factors) >= RULES.burnout_threshold_up
    assert {f.name for f in factors if f.value == 1.0} == {"peak_day_on_screen_hours", "back_to_back_sessions"}
    # the same facts again (a replay) change nothing; a cancellation does
    scoring.apply_clinician_session(full, "s0", full["sessions"]["s0"], T0.isoformat())
    assert scoring.clinician_load(full, RULES) == load
    scoring.apply_clinician_session(full, "s5", None, T0.isoformat())
    assert scoring.clinician_load(full, RULES)["back_to_back_today"] == 4


def test_dashboard_overview_and_page() -> None:
    sessions = [
        {
            "program_id": "p1",
            "clinician_id": "k1",
            "entries": [{"client_id": "a", "status": "on_time"}, {"client_id": "b", "status": "absent"}],
        }
    ]
    outcomes = [{"client_id": "a", "instrument": "PHQ-9", "total": 12}]
    clients = [
        {
            "_id": "b",
            "risk": {"value": 0.7, "elevated": True, "factors": []},
            "windows": {"7": {"attendance_rate": 0.2}},
        }
    ]
    clinicians = [
        {"_id": "k1", "risk": {"value": 0.8, "elevated": True, "factors": []}, "load": {"peak_day_hours": 7.5}}
    ]
    overview = build_overview(sessions, outcomes, clients, clinicians)
    assert overview["programs"][0]["attendance_rate"] == 0.5 and overview["programs"][0]["mean_phq9"] == 12
    assert overview["clinicians_at_risk"] == ["k1"] and overview["clients_behind"][0]["client_id"] == "b"
    page = render_page(overview)
    assert 'id="burnout-risk"' in page and 'data-label="k1"' in page and "<svg" in page


def test_fhir_observation_references_the_patient_and_the_session_encounter() -> None:
    phq9 = load_rules().phq9
    at = datetime(2026, 12, 1, 15, tzinfo=UTC)
    obs = observation("sub-1", "client-1", phq9, [1] * 9, 9, at, session_id="session-1")
    assert obs.subject is not None and obs.subject.reference == "Patient/client-1"
    assert obs.encounter is not None and obs.encounter.reference == "Encounter/session-1"
    assert '"component"' in observation_json(obs)  # item 9 travels as a component
    outside = observation("sub-2", "client-1", phq9, [0] * 9, 0, at)
    assert outside.encounter is None  # not taken in a session: no encounter to reference


def test_fhir_observation_id_is_the_outcome_key_and_the_submission_id_its_identifier() -> None:
    """A submission id may hold characters a FHIR id may not (`_`, `:`): the Observation is built
    anyway (it used to fail validation, and the outcome and its crisis signal were lost with it)."""
    key = outcome_key("client-1", "sub_1:a")
    obs = observation(key, "client-1", load_rules().phq9, [0] * 8 + [3], 3, T0, submission_id="sub_1:a")
    assert obs.id == key and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", key)
    assert obs.identifier is not None and [i.value for i in obs.identifier] == ["sub_1:a"]
    assert outcome_key("client-1", "sub_1:a") == key != outcome_key("client-2", "sub_1:a")
    assert outcome_key("a:b", "c") != outcome_key("a", "b:c")  # no ambiguity where ids contain ":"


def test_opaque_ids() -> None:
    ok = {"submission_id": "sub_1:a.b-c", "client_id": "c-1", "session_id": "x" * 128}
    assert domain.opaque_id_violations(ok) == []
    bad = {"a": "s 1", "b": "x" * 129, "c": "ünï", "d": "s\n", "e": "-leading", "f": "a/b"}
    assert [f for f, _ in domain.opaque_id_violations(bad)] == ["a", "b", "c", "d", "e", "f"]
