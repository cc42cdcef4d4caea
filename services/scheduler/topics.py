"""Topics the scheduler publishes."""

from services.plumbing.bus import Topic

SESSIONS = Topic(
    name="iop.scheduling.sessions.v1",
    key="session_id",
    description="Session lifecycle facts (iop.events.v1.SessionScheduled, ...), ordered per session.",
    partner_facing=True,
)
