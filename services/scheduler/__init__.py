"""Scheduler service: IOP programs, sessions and bookings."""
