"""Topics the crisis service publishes."""

from services.plumbing.bus import Topic

RISK = Topic(
    name="iop.crisis.risk.v1",
    key="client_id",
    description="Client risk-level changes (iop.events.v1.RiskLevelChanged), ordered per client.",
    partner_facing=True,
)
