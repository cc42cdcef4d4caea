"""Engagement service: attendance, participation, outcomes and burnout signals."""
