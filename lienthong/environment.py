"""The environment, read in one place: every `LIENTHONG_*` variable a process reads, into the
settings it fills, judged before anything starts.

msgspec converts each variable's string to its field's type (`"0.5"` to a float, `"false"` to
False, a comma-separated list to a tuple); a value that is not of its type is a SettingsError
naming the variable, never silently the default. An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from consumers.audit.sealer import SealerSettings
from consumers.interconnect.settings import ForwarderSettings, OutboxSettings
from consumers.reports.projector import ProjectorSettings
from dashboard.settings import DashboardSettings
from gateway.site_catchup import CatchUpSettings
from plumbing.settings import NatsSettings, StreamSettings

S = TypeVar("S", bound=msgspec.Struct)


def kek_dir() -> Path:
    """Where the key-encryption keys lie: `LIENTHONG_KEK_DIR`, else `$LIENTHONG_HOME/kek`."""
    configured = os.environ.get("LIENTHONG_KEK_DIR")
    return Path(configured) if configured else data_home() / "kek"


def data_home() -> Path:
    """Where the embedded nats-server keeps its store when no URL is given."""
    return Path(os.environ.get("LIENTHONG_HOME") or Path.cwd() / ".lienthong")


NATS_VARIABLES = {
    "LIENTHONG_NATS_URL": "servers",
    "LIENTHONG_NATS_CREDS": "creds_file",
    "LIENTHONG_NATS_INBOX_PREFIX": "inbox_prefix",
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


def nats_settings(
    servers: str | None = None, *, creds: Path | None = None, tls_ca: Path | None = None
) -> NatsSettings:
    """Flags first (`servers`, `creds`, `tls_ca`), then `LIENTHONG_NATS_*`; a party's name, inbox
    prefix and TLS files come from the `parties.json` beside its credentials unless given."""
    from lienthong.parties import find_party

    settings = read(NatsSettings, NATS_VARIABLES)
    if servers:
        settings = msgspec.structs.replace(settings, servers=_split(servers))
    if creds is not None:
        settings = msgspec.structs.replace(settings, creds_file=creds)
    if tls_ca is not None:
        settings = msgspec.structs.replace(settings, tls_ca=tls_ca)
    found = find_party(settings.creds_file) if settings.creds_file is not None else None
    if found is None:
        return settings
    party, tls = found.party, found.party.tls

    def party_path(relative: str | None) -> Path | None:
        return found.path(relative) if relative else None

    return msgspec.structs.replace(
        settings,
        party=party.name,
        inbox_prefix=settings.inbox_prefix or party.inbox_prefix,
        tls_ca=settings.tls_ca or party_path(tls.ca if tls else None),
        tls_cert=settings.tls_cert or party_path(tls.cert if tls else None),
        tls_key=settings.tls_key or party_path(tls.key if tls else None),
    )


def stream_settings() -> StreamSettings:
    return read(StreamSettings, STREAM_VARIABLES)


FORWARDER_VARIABLES = {
    name: field
    for name, field in prefixed(ForwarderSettings, "LIENTHONG_FORWARDER_").items()
    if field != "outbox"  # a stage of its own, not a value
}
PROJECTOR_VARIABLES = prefixed(ProjectorSettings, "LIENTHONG_PROJECTOR_")
SEALER_VARIABLES = prefixed(SealerSettings, "LIENTHONG_SEALER_")
SITES_VARIABLES = prefixed(CatchUpSettings, "LIENTHONG_SITES_")


class LeafSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A ward site's leaf connection to the city (`serve --site`, `site init`)."""

    city_leaf: tuple[str, ...] = ()
    """The city's leaf-node URL(s)."""
    leaf_creds: Path | None = None
    """The site's credentials on the city's leaf port (issue 10's parties)."""


LEAF_VARIABLES = {"LIENTHONG_CITY_LEAF": "city_leaf", "LIENTHONG_LEAF_CREDS": "leaf_creds"}
DASHBOARD_VARIABLES = prefixed(DashboardSettings, "LIENTHONG_DASHBOARD_")
ENVIRONMENT: tuple[tuple[type[msgspec.Struct], dict[str, str]], ...] = (
    (NatsSettings, NATS_VARIABLES),
    (StreamSettings, STREAM_VARIABLES),
    (ForwarderSettings, FORWARDER_VARIABLES),
    (ProjectorSettings, PROJECTOR_VARIABLES),
    (SealerSettings, SEALER_VARIABLES),
    (CatchUpSettings, SITES_VARIABLES),
    (LeafSettings, LEAF_VARIABLES),
    (DashboardSettings, DASHBOARD_VARIABLES),
)
"""Every `LIENTHONG_*` variable a process reads, with the settings it fills (and
`LIENTHONG_HOME`, the embedded server's folder: `data_home`)."""


def forwarder_settings() -> ForwarderSettings:
    """`LIENTHONG_FORWARDER_<FIELD>`; the outbox stage redelivers after the same ack wait."""
    settings = read(ForwarderSettings, FORWARDER_VARIABLES)
    return msgspec.structs.replace(settings, outbox=OutboxSettings(ack_wait=settings.ack_wait))


def projector_settings() -> ProjectorSettings:
    return read(ProjectorSettings, PROJECTOR_VARIABLES)


def sealer_settings() -> SealerSettings:
    return read(SealerSettings, SEALER_VARIABLES)


def catch_up_settings() -> CatchUpSettings:
    """`LIENTHONG_SITES_<FIELD>`: how the city takes in its ward sites' logs."""
    return read(CatchUpSettings, SITES_VARIABLES)


def leaf_settings() -> LeafSettings:
    return read(LeafSettings, LEAF_VARIABLES)


def dashboard_settings() -> DashboardSettings:
    return read(DashboardSettings, DASHBOARD_VARIABLES)
