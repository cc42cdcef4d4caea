"""Topics the crisis service publishes."""

from services.plumbing.bus import Topic

RISK = Topic(
    name="iop.crisis.risk.v1",
    key="client_id",
    description="Client risk-level changes (iop.events.v1.RiskLevelChanged), ordered per client.",
    partner_facing=True,
)
ALERTS_TOPIC = Topic(
    name="iop.crisis.alerts.v1",
    key="alert_id",
    description="Every alert transition: AlertOpened, AlertEscalated (each ladder rung), AlertAcknowledged, "
    "AlertContactAttempted, AlertContactMade, AlertResolved; ordered per alert.",
    partner_facing=True,
)
TASKS_TOPIC = Topic(
    name="iop.crisis.tasks.v1",
    key="client_id",
    description="Tasks for people (CrisisTaskCreated): callbacks on the backup phone, on-call notifications, "
    "emergency-contact and emergency-services calls, reconnect/reschedule tasks.",
)
LOCATIONS_TOPIC = Topic(
    name="iop.crisis.locations.v1",
    key="client_id",
    description="LocalResourcesMissing: a verified client location with no crisis reference data.",
)
FHIR_TOPIC = Topic(
    name="iop.crisis.fhir.v1",
    key="client_id",
    description="FHIR R4B projections (CrisisFhirResource): Flag (alert), RiskAssessment (risk), "
    "CarePlan (safety plan).",
    partner_facing=True,
)
ALL = [RISK, ALERTS_TOPIC, TASKS_TOPIC, LOCATIONS_TOPIC, FHIR_TOPIC]

# Topics consumed (owned by the scheduler and engagement services).
SESSIONS_IN = "iop.scheduling.sessions.v1"
ATTENDANCE_IN = "iop.engagement.attendance.v1"
OUTCOMES_IN = "iop.engagement.outcomes.v1"
