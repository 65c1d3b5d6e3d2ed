"""What a command says when it fails for an expected reason: one plain line and exit code 2.

No server at the URL, credentials refused, a right missing, a stream that is not there, an
unknown unit, a malformed period, a file that cannot be read: each is a condition an operator
meets and can fix, so each gets a sentence naming it and what to do, never a traceback.
Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
import nats.js.errors

from gateway.refusals import Unavailable
from gateway.registry import RegistryError
from gateway.settings import SettingsError

USAGE_EXIT = 2
"""The exit code of every expected failure, as argparse's own for a bad argument."""


class CommandError(Exception):
    """An expected failure found by the command itself (an unknown unit, a malformed period)."""


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    return [error]


def denied(error: BaseException | str | None) -> bool:
    """Whether NATS refused a right (a permissions violation), as nats-py words it."""
    text = str(error).lower() if error is not None else ""
    return "permission" in text or "authorization" in text


def explain(error: BaseException, servers: Sequence[str]) -> str | None:
    """The line to print for an expected failure; None for anything else (a bug)."""
    leaves = _leaves(error)
    lines = [_explain_one(e, servers) for e in leaves]
    if not leaves or any(line is None for line in lines):
        return None
    return lines[0]


def _explain_one(error: BaseException, servers: Sequence[str]) -> str | None:
    where = ", ".join(servers) or "the embedded server's address"
    reach = (
        f"cannot reach NATS at {where}: start it (`lienthong serve` runs an embedded one) or "
        "give the right --nats-url / LIENTHONG_NATS_URL"
    )
    match error:
        case CommandError() | RegistryError():
            return str(error)
        case SettingsError():
            return f"the setting {error} (unset it, or give a value of that type)"
        case nats.errors.AuthorizationError():
            return (
                f"NATS at {where} refused these credentials: check LIENTHONG_NATS_CREDS "
                "(or the user, password or token settings)"
            )
        case nats.js.errors.NotFoundError():
            what = error.description or "not found"
            return (
                f"JetStream at {where}: {what}: has a gateway run against this server "
                "(`lienthong serve`), and is this the city's server?"
            )
        case nats.js.errors.APIError():
            what = error.description or f"error {error.err_code}"
            if error.code == 403 or denied(what):
                return (
                    f"permission denied by NATS at {where}: {what}; ask the operator for the right"
                )
            return f"JetStream at {where} refused: {what}"
        case nats.errors.NoRespondersError():
            return (
                f"nothing answered at {where}: JetStream is not enabled there, or these "
                "credentials may not use it"
            )
        case nats.errors.Error() if denied(str(error)):
            return f"permission denied by NATS at {where}: {error}; ask the operator for it"
        case (
            nats.errors.NoServersError()
            | nats.errors.ConnectionClosedError()
            | nats.errors.StaleConnectionError()
            | nats.errors.UnexpectedEOF()
            | ConnectionError()
        ):
            return reach
        case asyncio.TimeoutError() | Unavailable():
            return f"NATS at {where} did not answer in time: is JetStream up and has it a leader?"
        case OSError() if error.filename is not None:
            return f"cannot use {error.filename}: {error.strerror or error}"
        case OSError():
            return reach
    return None
