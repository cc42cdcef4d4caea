"""Topics the compliance service publishes, and the one it consumes."""

from services.plumbing.bus import Topic

DECISIONS = Topic(
    name="iop.compliance.decisions.v1",
    key="clinician_id, client_id or session_id (opaque ids)",
    description="Licensure re-checks at session start (LicensureChecked, key session_id), expiry "
    "warnings (CredentialExpiring, key = the owner's opaque id), board actions on a clinician's "
    "license or compact credential (CredentialStatusChanged, key clinician_id) and consents recorded "
    "or revoked (ConsentChanged, key client_id).",
    partner_facing=True,
)
PRIVACY = Topic(
    name="iop.compliance.privacy.v1",
    key="session_id",
    description="PrivacyCompromised: a client attested their privacy is compromised; scheduler and clinician act.",
    partner_facing=True,
)
BILLING = Topic(
    name="iop.compliance.billing.v1",
    key="client_id",
    description="BillingReady: one attended day of one client with codes, modifiers, POS and problems.",
    partner_facing=True,
)
FHIR = Topic(
    name="iop.compliance.fhir.v1",
    key="client_id",
    description="FHIR R4B Consent JSON of every consent state (iop.events.v1.FhirResourcePublished).",
    partner_facing=True,
)
PUBLISHED = [DECISIONS, PRIVACY, BILLING, FHIR]

# Consumed (owned by the scheduler; named here so this service does not import the scheduler's code).
SCHEDULING_SESSIONS = "iop.scheduling.sessions.v1"
