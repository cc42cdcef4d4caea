"""Topics the engagement service (and its faust worker) publishes."""

from services.plumbing.bus import Topic

SIGNALS = Topic(
    name="iop.engagement.signals.v1",
    key="session_id",
    description="Video-platform signals accepted by the webhook (iop.events.v1.VideoSignal), ordered per session.",
)
ATTENDANCE = Topic(
    name="iop.engagement.attendance.v1",
    key="session_id",
    description="iop.events.v1.ConnectionDropped (a drop during an active session) and "
    "iop.events.v1.AttendanceRecorded (final attendance per client at session end).",
    partner_facing=True,
)
OUTCOMES = Topic(
    name="iop.engagement.outcomes.v1",
    key="client_id",
    description="iop.events.v1.OutcomeRecorded (PHQ-9 / GAD-7) and iop.events.v1.CrisisSignal (positive PHQ-9 item 9).",
    partner_facing=True,
)
SCORES = Topic(
    name="iop.engagement.scores.v1",
    key="client_id or clinician_id",
    description="iop.events.v1.ScoreThresholdCrossed and iop.events.v1.OutreachTaskCreated, from the faust worker.",
    partner_facing=True,
)
ACTIVITY = Topic(
    name="iop.engagement.activity.v1",
    key="client_id",
    description="iop.events.v1.CheckInRecorded: daily check-ins (mood, practice done).",
)
FHIR = Topic(
    name="iop.engagement.fhir.v1",
    key="client_id",
    description="FHIR R4B Observation JSON (PHQ-9 / GAD-7), content-type application/fhir+json.",
    partner_facing=True,
)
ALL = [SIGNALS, ATTENDANCE, OUTCOMES, SCORES, ACTIVITY, FHIR]
