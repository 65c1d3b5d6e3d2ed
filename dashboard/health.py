"""/healthz (the process answers) and /readyz: connected to NATS, the leases readable and the
projector's held, and the projector caught up with the log within a bound."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from dashboard.operations import Operations, read_operations
from plumbing.errors import LogUnavailable
from plumbing.lease import PROJECTOR_LEASE


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    reasons: list[str]
    """Why not ready (empty when ready)."""
    projector_lag_sequences: int | None = None
    projector_lag_seconds: float | None = None
    leases: dict[str, str | None] = msgspec.field(default_factory=dict)


async def readiness(client: Client, max_lag_seconds: float) -> Readiness:
    if not client.is_connected:
        return Readiness(ready=False, reasons=["not connected to NATS"])
    try:
        o: Operations = await read_operations(client)
    except LogUnavailable as e:
        return Readiness(ready=False, reasons=[str(e)])
    reasons = []
    if o.leases.get(PROJECTOR_LEASE) is None:
        reasons.append("no process holds the projector's lease")
    if not o.projector.known:
        reasons.append("the report projector has never run on this log")
    elif o.projector.seconds > max_lag_seconds:
        reasons.append(
            f"the projector is {o.projector.sequences} events behind the log, the oldest "
            f"waiting {o.projector.seconds:.1f} s (bound: {max_lag_seconds:g} s)"
        )
    return Readiness(
        ready=not reasons,
        reasons=reasons,
        projector_lag_sequences=o.projector.sequences if o.projector.known else None,
        projector_lag_seconds=o.projector.seconds if o.projector.known else None,
        leases=o.leases,
    )
