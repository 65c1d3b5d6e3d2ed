"""Every connection and stream option in one place (read from the environment by
`lienthong.environment`, the one reader).

Clustering, credentials and TLS are settings here, never code paths elsewhere: a gateway on a
three-node cluster differs from the embedded one only by these values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS. `servers` empty means: start the embedded nats-server."""

    servers: tuple[str, ...] = ()
    name: str = "lienthong"
    creds_file: Path | None = None
    """The party's credentials: an NKey seed file (`security init` writes one per party) or a
    `.creds` file (user JWT and seed)."""
    party: str | None = None
    """The party's name in its `parties.json`, found from `creds_file`: for error messages."""
    inbox_prefix: str | None = None
    """The party's private inbox prefix (replies to its requests arrive only under it); found in
    `parties.json` beside `creds_file` unless given."""
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    """How long a JetStream write or read may take before the event is `unavailable`."""


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Stream provisioning: replicas and limits, so a cluster is a change of values, not code."""

    replicas: int = 1
    duplicate_window_seconds: float = 600.0
    """JetStream's own msg-id window; resends older than this are caught by the event-id index."""
    events_max_bytes: int = -1
    reports_max_msgs_per_subject: int = -1
    """Every revision of a report is kept (the history is what 'as it stood on a day' reads)."""
