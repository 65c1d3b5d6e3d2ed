"""Where the broker is: the URLs given, or an embedded nats-server started for this run."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec

from lienthong.embedded import NatsServer
from plumbing.settings import NatsSettings

EMBEDDED_PORT = 4222


@contextlib.contextmanager
def nats_available(
    settings: NatsSettings,
    *,
    store_dir: Path,
    port: int = EMBEDDED_PORT,
    name: str = "lienthong-embedded",
    domain: str | None = None,
    extra_config: str = "",
    config_file: Path | None = None,
) -> Iterator[NatsSettings]:
    """The settings to connect with; with no servers given, an embedded server for the duration
    (a JetStream `domain` and `extra_config`, e.g. leaf nodes, for a city or a ward site; on
    loopback only, or as `config_file` says: `security init`'s, with every party's rights)."""
    if settings.servers:
        yield settings
        return
    with NatsServer(
        store_dir,
        port=port,
        name=name,
        domain=domain,
        extra_config=extra_config,
        config_file=config_file,
    ) as server:
        guard = (
            f"authorization from {config_file}"
            if config_file
            else "loopback only and no credentials, for trials: `lienthong serve --security DIR` "
            "for every party on its own key"
        )
        print(
            f"embedded nats-server with JetStream at {server.url}, data in {store_dir} ({guard})",
            file=sys.stderr,
        )
        yield msgspec.structs.replace(settings, servers=(server.url,))
