"""The deadline of the gRPC call being served, for the calls it makes on its behalf.

The server bootstrap records each call's deadline when its handler starts; the client channels
(`grpc_client.service_channel`) cap every outgoing call's timeout at what is left of it. Without
this, a service whose caller had given up went on waiting for its own dependency for the whole
of its default timeout, working for nobody and holding a place that a live call could use.
"""

from __future__ import annotations

import contextvars
import time

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("iop_call_deadline", default=None)

NO_DEADLINE_S = 1e6  # grpc reports a call without a deadline as one this far off (or as None)


def enter_call(time_remaining_s: float | None) -> contextvars.Token[float | None]:
    """Record the deadline of the call this task now serves (time.monotonic())."""
    if time_remaining_s is None or time_remaining_s >= NO_DEADLINE_S:
        return _deadline.set(None)
    return _deadline.set(time.monotonic() + time_remaining_s)


def leave_call(token: contextvars.Token[float | None]) -> None:
    _deadline.reset(token)


def capped_timeout(timeout_s: float | None) -> float | None:
    """`timeout_s`, or less: what is left of the served call's deadline (never below 1 ms, so a
    call past it fails at once with DEADLINE_EXCEEDED instead of waiting)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout_s
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout_s is None else min(timeout_s, left)
