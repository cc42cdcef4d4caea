"""The video platform's webhook payloads (Zoom's shape) and their mapping to VideoSignal.

Zoom sends `{"event": "meeting.participant_joined", "event_ts": <ms>, "payload":
{"account_id": ..., "object": {"id": <meeting id>, "participant": {...}}}}`.
The meeting id is the platform's id of our session (meetings are provisioned
per session with the session id); the participant's `customer_key` is our
opaque client or clinician id. Names and e-mails the platform sends are PHI:
they are never read, stored or published (nor the platform's wording of a lost
connection, which can name the participant: `domain.kept_leave_reason`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from iop.events.v1 import engagement_pb2 as ev
from services.engagement import domain
from services.engagement.rules import Rules
from services.plumbing.protos import to_timestamp

EVENT_KINDS = {
    "meeting.participant_joined": domain.JOINED,
    "meeting.participant_left": domain.LEFT,
    "meeting.participant_video_on": domain.CAMERA_ON,
    "meeting.participant_video_off": domain.CAMERA_OFF,
    "meeting.participant_speaking": domain.SPEAKING,
    "meeting.chat_message_sent": domain.CHAT,
    "meeting.participant_qos": domain.QUALITY,
}
URL_VALIDATION = "endpoint.url_validation"
# 9999-12-31T23:59:59.999Z: the last millisecond a datetime can hold (larger values raised
# ValueError or OSError in datetime.fromtimestamp: a 500)
MAX_EVENT_TS_MS = 253_402_300_799_999


class Participant(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    join_time: datetime | None = None
    leave_time: datetime | None = None
    leave_reason: str | None = Field(default=None, max_length=200)
    speaking_seconds: float | None = Field(default=None, ge=0, le=86400)
    chat_messages: int | None = Field(default=None, ge=1, le=10000)
    connection_quality: float | None = Field(default=None, ge=0, le=5)
    modality: Literal["video", "audio_only"] | None = None


class MeetingObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    participant: Participant


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    account_id: str | None = None
    object: MeetingObject


class Webhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: str
    event_ts: int = Field(gt=0, le=MAX_EVENT_TS_MS)
    payload: Payload


class UnusableWebhook(ValueError):
    """Well-formed JSON that does not describe a signal we can use (422)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _aware(value: datetime) -> datetime:
    """A platform time without an offset is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_signal(hook: Webhook, signal_id: str, received_at: datetime, rules: Rules) -> ev.VideoSignal:
    """The signal a webhook reports. Event times more than `rules.max_event_ahead_s` after
    `received_at` are refused (UnusableWebhook): the platform's clock is not that far ahead of ours.
    A leave's reason is the one the service keeps (`domain.kept_leave_reason`: no display name)."""
    max_ahead_s = rules.max_event_ahead_s
    kind = EVENT_KINDS.get(hook.event)
    if kind is None:
        raise UnusableWebhook("event", f"unsupported event {hook.event!r}; supported: {sorted(EVENT_KINDS)}")
    p = hook.payload.object.participant
    ahead = f"more than {max_ahead_s:g} s in the future"
    if hook.event_ts > (received_at.timestamp() + max_ahead_s) * 1000:
        raise UnusableWebhook("event_ts", ahead)
    occurred = datetime.fromtimestamp(hook.event_ts / 1000, UTC)
    value = 0.0
    if kind == domain.JOINED and p.join_time:
        occurred = _aware(p.join_time)
        if domain.event_time_problem(occurred, received_at, max_ahead_s):
            raise UnusableWebhook("payload.object.participant.join_time", ahead)
    elif kind == domain.LEFT and p.leave_time:
        occurred = _aware(p.leave_time)
        if domain.event_time_problem(occurred, received_at, max_ahead_s):
            raise UnusableWebhook("payload.object.participant.leave_time", ahead)
    elif kind == domain.SPEAKING:
        if p.speaking_seconds is None:
            raise UnusableWebhook("payload.object.participant.speaking_seconds", "required for speaking")
        value = p.speaking_seconds
    elif kind == domain.CHAT:
        value = float(p.chat_messages or 1)
    elif kind == domain.QUALITY:
        if p.connection_quality is None:
            raise UnusableWebhook("payload.object.participant.connection_quality", "required for participant_qos")
        value = p.connection_quality
    return ev.VideoSignal(
        signal_id=signal_id,
        session_id=hook.payload.object.id,
        participant_id=p.customer_key,
        kind=kind,
        occurred_at=to_timestamp(occurred),
        value=value,
        leave_reason=domain.kept_leave_reason(p.leave_reason or "", rules) if kind == domain.LEFT else "",
        modality=p.modality or "",
        received_at=to_timestamp(received_at),
    )
