"""Crisis service: safety plans, risk state, alerts and the escalation ladder."""
