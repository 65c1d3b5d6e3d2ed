"""A one-shot command's connection to NATS, and the one plain line for a right it was refused.

nats-py reports a permission violation on the side (`Client.last_error`, and the error callback
as it comes), and the request it refused only times out: every command opens its connection here
so that such a time-out is said as the refusal it was, naming the party."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import nats.errors
from nats.aio.client import Client

from gateway.refusals import Unavailable
from lienthong.command_errors import CommandError, denied, permission_line
from plumbing import connection
from plumbing.errors import LogUnavailable
from plumbing.settings import NatsSettings


@contextlib.asynccontextmanager
async def connected(
    settings: NatsSettings, on_denied: Callable[[str], None] | None = None
) -> AsyncIterator[Client]:
    """The connection, closed however the command ends; a failure that a refused right caused
    becomes that refusal's CommandError."""
    client = await connection.connect(settings, service=False, on_denied=on_denied)
    try:
        yield client
    except (TimeoutError, nats.errors.Error, LogUnavailable, Unavailable) as e:
        said_if_denied(client, settings, e)
        raise
    finally:
        await client.close()


def said_if_denied(
    client: Client, settings: NatsSettings, cause: BaseException | None = None
) -> None:
    """CommandError if NATS refused this connection a right (what timed out was refused)."""
    if denied(client.last_error):
        assert client.last_error is not None
        raise CommandError(permission_line(settings.party, client.last_error)) from cause
