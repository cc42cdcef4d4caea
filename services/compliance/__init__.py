"""Compliance service: licensure, coverage, consent, privacy, audit."""
