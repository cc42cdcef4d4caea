"""Topics the scheduler publishes, and the ones it consumes."""

from services.plumbing.bus import Topic

SESSIONS = Topic(
    name="iop.scheduling.sessions.v1",
    key="session_id",
    description="Session lifecycle facts (iop.events.v1.SessionScheduled, SessionCheckedIn, SessionStarted, "
    "SessionEnded, SessionInterrupted, SessionCancelled, SessionRescheduled, SessionRosterChanged, "
    "RescheduleProposed, FatigueOverrideApplied), ordered per session; CareSessionScheduled and "
    "CareSessionAttended keyed by care_session_id.",
    partner_facing=True,
)
FHIR = Topic(
    name="iop.scheduling.fhir.v1",
    key="session_id",
    description="FHIR R4B Appointment and Encounter JSON of every session state (iop.events.v1.FhirResourcePublished).",
    partner_facing=True,
)

# Consumed (published by compliance and engagement; declared here so the topics exist before we subscribe).
PRIVACY = Topic(
    name="iop.compliance.privacy.v1",
    key="session_id",
    description="PrivacyCompromised attestations (published by compliance).",
    partner_facing=True,
)
ATTENDANCE = Topic(
    name="iop.engagement.attendance.v1",
    key="session_id",
    description="ConnectionDropped, AttendanceRecorded (published by engagement).",
    partner_facing=True,
)
