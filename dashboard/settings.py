"""The dashboard's settings (`LIENTHONG_DASHBOARD_<FIELD>`, read by the command line)."""

from __future__ import annotations

import msgspec


class DashboardSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    ready_lag_seconds: float = 30.0
    """/readyz is not ready while the projector's oldest unapplied event waited longer."""
