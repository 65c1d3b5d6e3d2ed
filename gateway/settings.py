"""Every connection and stream option in one place, read from flags and `LIENTHONG_*` variables.

Clustering, credentials and TLS are settings here, never code paths elsewhere: a gateway on a
three-node cluster differs from the embedded one only by these values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS. `servers` empty means: start the embedded nats-server."""

    servers: tuple[str, ...] = ()
    name: str = "lienthong"
    creds_file: Path | None = None  # per-party credentials (a unit may speak only for itself)
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
    def from_env(cls, servers: str | None = None) -> NatsSettings:
        """From `LIENTHONG_NATS_*` (see NATS_VARIABLES); `servers`, a flag's value, comes first."""
        settings = read(cls, NATS_VARIABLES)
        if servers:
            settings = msgspec.structs.replace(settings, servers=_split(servers))
        return settings


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
        return read(cls, STREAM_VARIABLES)


def data_home() -> Path:
    """Where the embedded nats-server keeps its store when no URL is given."""
    return Path(os.environ.get("LIENTHONG_HOME") or Path.cwd() / ".lienthong")


NATS_VARIABLES = {
    "LIENTHONG_NATS_URL": "servers",
    "LIENTHONG_NATS_CREDS": "creds_file",
    "LIENTHONG_NATS_TLS_CA": "tls_ca",
    "LIENTHONG_NATS_TLS_CERT": "tls_cert",
    "LIENTHONG_NATS_TLS_KEY": "tls_key",
    "LIENTHONG_NATS_USER": "user",
    "LIENTHONG_NATS_PASSWORD": "password",
    "LIENTHONG_NATS_TOKEN": "token",
    "LIENTHONG_NATS_CONNECT_TIMEOUT": "connect_timeout",
    "LIENTHONG_NATS_REQUEST_TIMEOUT": "request_timeout",
}
STREAM_VARIABLES = {
    "LIENTHONG_REPLICAS": "replicas",
    "LIENTHONG_DUPLICATE_WINDOW": "duplicate_window_seconds",
    "LIENTHONG_EVENTS_MAX_BYTES": "events_max_bytes",
    "LIENTHONG_REPORTS_MAX_MSGS_PER_SUBJECT": "reports_max_msgs_per_subject",
}


class SettingsError(ValueError):
    """A variable's value is not of its setting's type: said with the variable's name."""


def prefixed(cls: type[msgspec.Struct], prefix: str) -> dict[str, str]:
    """`<prefix><FIELD>` for every field of `cls` (LIENTHONG_PROJECTOR_COALESCE_SECONDS, ...)."""
    return {f"{prefix}{name.upper()}": name for name in cls.__struct_fields__}


def _split(urls: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in urls.split(",") if u.strip())


def _decode(type_: type, value: Any) -> Any:
    if type_ is Path:
        return Path(value)
    raise NotImplementedError(type_)


def read(cls: type[S], variables: dict[str, str], environ: Mapping[str, str] | None = None) -> S:
    """`cls` from the environment: each variable set (and not empty) overrides its field.

    The one way settings are read. msgspec converts the strings to each field's type
    (`"0.5"` to a float, `"false"` to False, a comma-separated list to a tuple), and a value that
    is not of its type is a SettingsError naming the variable, never silently the default.
    """
    env = os.environ if environ is None else environ
    given = {field: env[name] for name, field in variables.items() if env.get(name)}
    fields = dict(zip(cls.__struct_fields__, msgspec.structs.fields(cls), strict=True))
    raw: dict[str, Any] = {
        field: _split(value) if _is_tuple(fields[field].type) else value
        for field, value in given.items()
    }
    try:
        return msgspec.convert(raw, cls, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as e:
        names = {field: name for name, field in variables.items()}
        # msgspec says `... - at `$.field``: name the variable instead.
        message, _, where = str(e).rpartition(" - at `$.")
        field = where.rstrip("`").split(".")[0].split("[")[0]
        name = names.get(field, field)
        raise SettingsError(f"{name}={given.get(field, '')!r}: {message or e}") from e


def _is_tuple(type_: Any) -> bool:
    return getattr(type_, "__origin__", None) is tuple or type_ is tuple
