"""Every connection and stream option in one place, read from flags and `LIENTHONG_*` variables.

Clustering, credentials and TLS are settings here, never code paths elsewhere: a gateway on a
three-node cluster differs from the embedded one only by these values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

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

    @classmethod
    def from_env(
        cls, servers: str | None = None, *, creds: Path | None = None, tls_ca: Path | None = None
    ) -> NatsSettings:
        """Flags first (`servers`, `creds`, `tls_ca`), then `LIENTHONG_NATS_*` variables."""
        from gateway.parties import find_party

        env = os.environ.get
        urls = servers or env("LIENTHONG_NATS_URL") or ""

        def path(name: str) -> Path | None:
            value = env(name)
            return Path(value) if value else None

        creds_file = creds or path("LIENTHONG_NATS_CREDS")
        found = find_party(creds_file) if creds_file is not None else None
        party = found.party if found else None
        tls = party.tls if party else None

        def party_path(relative: str | None) -> Path | None:
            return found.path(relative) if found and relative else None

        return cls(
            servers=tuple(u.strip() for u in urls.split(",") if u.strip()),
            creds_file=creds_file,
            party=party.name if party else None,
            inbox_prefix=env("LIENTHONG_NATS_INBOX_PREFIX")
            or (party.inbox_prefix if party else None),
            tls_ca=tls_ca or path("LIENTHONG_NATS_TLS_CA") or party_path(tls.ca if tls else None),
            tls_cert=path("LIENTHONG_NATS_TLS_CERT") or party_path(tls.cert if tls else None),
            tls_key=path("LIENTHONG_NATS_TLS_KEY") or party_path(tls.key if tls else None),
            user=env("LIENTHONG_NATS_USER"),
            password=env("LIENTHONG_NATS_PASSWORD"),
            token=env("LIENTHONG_NATS_TOKEN"),
            request_timeout=float(env("LIENTHONG_NATS_REQUEST_TIMEOUT") or 5.0),
        )


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Stream provisioning: replicas and limits, so a cluster is a change of values, not code."""

    replicas: int = 1
    duplicate_window_seconds: float = 600.0
    """JetStream's own msg-id window; resends older than this are caught by the event-id index."""
    events_max_bytes: int = -1
    reports_max_msgs_per_subject: int = -1
    """Every revision of a report is kept (the history is what 'as it stood on a day' reads)."""

    @classmethod
    def from_env(cls) -> StreamSettings:
        env = os.environ.get
        return cls(
            replicas=int(env("LIENTHONG_REPLICAS") or 1),
            duplicate_window_seconds=float(env("LIENTHONG_DUPLICATE_WINDOW") or 600.0),
            events_max_bytes=int(env("LIENTHONG_EVENTS_MAX_BYTES") or -1),
        )


def data_home() -> Path:
    """Where the embedded nats-server keeps its store when no URL is given."""
    return Path(os.environ.get("LIENTHONG_HOME") or Path.cwd() / ".lienthong")


def from_env(cls: type[S], prefix: str) -> S:
    """`cls` with each field overridden by `<prefix><FIELD>` when that variable is set
    (e.g. LIENTHONG_PROJECTOR_COALESCE_SECONDS=0.5); values take the type of the default."""
    overrides: dict[str, Any] = {}
    for field, default in zip(cls.__struct_fields__, cls.__struct_defaults__, strict=True):
        if (value := os.environ.get(f"{prefix}{field.upper()}")) is not None:
            overrides[field] = type(default)(value)
    return cls(**overrides)
