"""Connecting to NATS with the options of `NatsSettings`, for nats-py and for faststream alike."""

from __future__ import annotations

import ssl
from typing import Any

import nats
from faststream.nats import NatsBroker
from nats.aio.client import Client

from plumbing.settings import NatsSettings


def _tls(settings: NatsSettings) -> ssl.SSLContext | None:
    if settings.tls_ca is None and settings.tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
    if settings.tls_cert is not None:
        context.load_cert_chain(
            str(settings.tls_cert), str(settings.tls_key) if settings.tls_key else None
        )
    return context


def connect_options(settings: NatsSettings, *, service: bool = True) -> dict[str, Any]:
    """The keyword arguments both nats-py's `connect` and faststream's `NatsBroker` take.

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
        options["user_credentials"] = str(settings.creds_file)
    if (tls := _tls(settings)) is not None:
        options["tls"] = tls
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password
    if settings.token is not None:
        options["token"] = settings.token
    return options


async def connect(settings: NatsSettings, *, service: bool = True) -> Client:
    async def quiet(_: Exception) -> None:  # nats-py prints tracebacks by default
        return None

    client: Client = await nats.connect(
        **connect_options(settings, service=service), error_cb=quiet
    )
    return client


def broker(settings: NatsSettings) -> NatsBroker:
    """A faststream broker (subscribers, AsyncAPI) on the same servers with the same options."""
    options = connect_options(settings)
    options.pop("connect_timeout", None)
    return NatsBroker(**options, logger=None)
