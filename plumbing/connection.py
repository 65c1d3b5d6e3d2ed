"""Connecting to NATS with the options of `NatsSettings`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.errors
import structlog
from nats.aio.client import Client

from plumbing.settings import NatsSettings

PERMISSION_DENIED: deque[str] = deque(maxlen=64)
"""The server's latest permission violations seen by this process's connections, newest last:
a refused publish or subscribe is reported only asynchronously, so a command that then times
out can say which right it lacked (lienthong.cli)."""


def _tls(settings: NatsSettings) -> ssl.SSLContext | None:
    if settings.tls_ca is None and settings.tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
    if settings.tls_cert is not None:
        context.load_cert_chain(
            str(settings.tls_cert), str(settings.tls_key) if settings.tls_key else None
        )
    return context


def is_nkey_seed(path: Path) -> bool:
    """An NKey seed file (what `security init` writes: one `SU...` line) rather than `.creds`."""
    try:
        return path.read_text(errors="replace").lstrip().startswith("SU")
    except OSError:  # nats-py will say the file cannot be read
        return path.suffix == ".nk"


def connect_options(settings: NatsSettings, *, service: bool = True) -> dict[str, Any]:
    """The keyword arguments of nats-py's `connect`.

    A service reconnects for ever (the broker will come back); a one-shot command gives up soon
    with a clear error instead of hanging.
    """
    options: dict[str, Any] = {
        "servers": list(settings.servers),
        "name": settings.name,
        "connect_timeout": int(max(1, settings.connect_timeout)),
        "max_reconnect_attempts": -1 if service else 2,
        "allow_reconnect": service,
    }
    if settings.creds_file is not None:
        key = "nkeys_seed" if is_nkey_seed(settings.creds_file) else "user_credentials"
        options[key] = str(settings.creds_file)
    if settings.inbox_prefix is not None:
        options["inbox_prefix"] = settings.inbox_prefix
    if (tls := _tls(settings)) is not None:
        options["tls"] = tls
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password
    if settings.token is not None:
        options["token"] = settings.token
    return options


async def connect(
    settings: NatsSettings,
    *,
    service: bool = True,
    on_denied: Callable[[str], None] | None = None,
) -> Client:
    """A nats-py client; `on_denied` hears each permission violation the server reports."""

    async def note(error: Exception) -> None:  # nats-py prints tracebacks by default
        if "permissions violation" in str(error).lower():
            PERMISSION_DENIED.append(str(error).removeprefix("nats: "))
            if service:  # a service's missing right is a misconfiguration to see in its logs
                structlog.get_logger("lienthong.nats").warning(
                    "nats.permission_denied", party=settings.party, error=PERMISSION_DENIED[-1]
                )
            if on_denied is not None:
                on_denied(PERMISSION_DENIED[-1])

    client = Client()
    options = connect_options(settings, service=service)
    # nats-py waits for ever for a TLS connection whose certificate it refused to close
    # (nats.py issue 718): every close of a connection that failed is bounded, and so is a
    # one-shot command's first connection (a service's waits for its server as long as needed).
    bound = None if service else options["connect_timeout"] * 2 + 1
    try:
        await asyncio.wait_for(client.connect(**options, error_cb=note), bound)
    except BaseException as e:
        # A refused connection's socket is left open (credentials refused, a wrong CA): close
        # it, or it lingers until garbage collection.
        # Closing what never connected may itself fail in older nats-py (2.14 asserts or trips
        # on a missing transport): the connection is gone either way, the first error counts.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), CLOSE_BOUND)
        if isinstance(e, TimeoutError):
            raise ConnectionStalled(
                f"the connection to NATS at {', '.join(settings.servers)} did not complete"
                + ("; is --tls-ca the deployment's CA?" if settings.tls_ca else "")
            ) from e
        raise
    return client


CLOSE_BOUND = 2.0
"""Seconds a failed connection may take to close."""


class ConnectionStalled(nats.errors.Error):
    """The first connection neither completed nor failed in time (a TLS certificate refused)."""
