"""The table `lienthong status` prints: per unit, what is owed to the province, the oldest,
parked deliveries and the latest error."""

from __future__ import annotations

from datetime import datetime

import msgspec
from nats.aio.client import Client

from consumers.interconnect.pending import PendingDossier, pending_dossiers
from plumbing.records import DeliveryStatus
from schemas.periods import now_vn
from schemas.registry import Registry


class UnitDeliveryStatus(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    pending: int
    dossiers: int
    oldest_stored_at: datetime
    parked: int
    last_error: str | None
    last_error_at: datetime | None


async def delivery_status(client: Client) -> list[UnitDeliveryStatus]:
    """Per unit: messages owed to the province, the oldest, parked ones, the latest error."""
    by_unit: dict[str, list[PendingDossier]] = {}
    for p in await pending_dossiers(client):
        by_unit.setdefault(p.unit, []).append(p)
    rows: list[UnitDeliveryStatus] = []
    for unit, dossiers in sorted(by_unit.items()):
        heads = [p.head for p in dossiers if p.head is not None]
        failing = [r for r in heads if r.last_error and r.last_attempt_at]
        latest = max(failing, key=lambda r: r.last_attempt_at or now_vn(), default=None)
        rows.append(
            UnitDeliveryStatus(
                unit=unit,
                pending=sum(p.pending for p in dossiers),
                dossiers=len(dossiers),
                oldest_stored_at=min(p.oldest_stored_at for p in dossiers),
                parked=sum(r.status is DeliveryStatus.PARKED for r in heads),
                last_error=latest.last_error if latest else None,
                last_error_at=latest.last_attempt_at if latest else None,
            )
        )
    return rows


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600:02d}h"


def status_table(rows: list[UnitDeliveryStatus], registry: Registry, now: datetime) -> str:
    """The plain table `lienthong status` prints."""
    if not rows:
        return "Nothing is waiting for delivery to the province.\n"
    header = f"{'unit':<6} {'name':<28} {'pending':>7} {'dossiers':>8} {'oldest':>9} {'parked':>6}"
    lines = [header + "  last error", "-" * (len(header) + 12)]
    for r in rows:
        name = registry[r.unit].name if r.unit in registry else ""
        age = _age((now - r.oldest_stored_at).total_seconds())
        error = "-"
        if r.last_error:
            when = r.last_error_at.strftime("%Y-%m-%d %H:%M") if r.last_error_at else ""
            error = f"{when} {r.last_error}".strip()
        lines.append(
            f"{r.unit:<6} {name[:28]:<28} {r.pending:>7} {r.dossiers:>8} {age:>9} {r.parked:>6}"
            f"  {error}"
        )
    return "\n".join(lines) + "\n"
