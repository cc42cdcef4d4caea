"""Topics the scheduler publishes, and the ones it consumes."""

from services.compliance import topics as compliance_topics
from services.engagement import topics as engagement_topics
from services.plumbing.bus import Topic

SESSIONS = Topic(
    name="iop.scheduling.sessions.v1",
    key="session_id",
    description="Session lifecycle facts (iop.events.v1.SessionScheduled, SessionCheckedIn, SessionStarted, "
    "SessionEnded, SessionInterrupted, SessionAttendanceRecorded, SessionCancelled, SessionRescheduled, "
    "SessionRosterChanged, RescheduleProposed, FatigueOverrideApplied), ordered per session; CareSessionScheduled and "
    "CareSessionAttended keyed by care_session_id.",
    partner_facing=True,
)
FHIR = Topic(
    name="iop.scheduling.fhir.v1",
    key="the resource's id: session_id (Appointment, Encounter), client_id (Patient), clinician_id (Practitioner)",
    description="FHIR R4B Appointment and Encounter JSON of every session state, and the Patient and "
    "Practitioner they reference (opaque ids only), as iop.events.v1.FhirResourcePublished.",
    partner_facing=True,
)

# Consumed: declared once, by the services that publish them (the contract is theirs).
PRIVACY = compliance_topics.PRIVACY
ATTENDANCE = engagement_topics.ATTENDANCE
