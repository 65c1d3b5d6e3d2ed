"""What a command says when it fails for an expected reason: one plain line and exit code 2.

No server at the URL, credentials refused, a right missing, a stream that is not there, an
unknown unit, a malformed period, a file that cannot be read: each is a condition an operator
meets and can fix, so each gets a sentence naming it and what to do, never a traceback.
Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence

import nats.errors
import nats.js.errors

from gateway.refusals import Unavailable
from lienthong.embedded import NatsServerFailed
from lienthong.environment import SettingsError
from lienthong.parties import PartiesError
from lienthong.security import SecurityError
from plumbing.errors import LogUnavailable
from schemas.registry import RegistryError

USAGE_EXIT = 2
"""The exit code of every expected failure, as argparse's own for a bad argument."""


class CommandError(Exception):
    """An expected failure found by the command itself (an unknown unit, a malformed period)."""


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    return [error]


def denied(error: BaseException | str | None) -> bool:
    """Whether NATS refused a right (a permissions violation), as nats-py words it; refused
    credentials (an authorization violation) are not a missing right."""
    text = str(error).lower() if error is not None else ""
    return "permission" in text


_VIOLATION = re.compile(
    r"permissions violation for (publish|subscription) to \"?([^\"']+)\"?", re.IGNORECASE
)
_API_WORDS = frozenset(
    [
        "js",
        "api",
        "kv",
        "o",
        "stream",
        "consumer",
        "info",
        "create",
        "durable",
        "direct",
        "get",
        "names",
        "list",
        "msg",
        "delete",
        "purge",
        "update",
        "ack",
        "fc",
        "next",
    ]
)
_BUCKET_STREAM = re.compile(r"(onestop|kv|obj)_[a-z0-9_]+")


def _recase(subject: str) -> str:
    """nats-py lowercases the server's error, subject and all; JetStream's own subjects are
    upper case (`$JS.API.STREAM.INFO.ONESTOP_EVENTS`), so put theirs back for the reader."""
    if not subject.startswith("$"):
        return subject
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        word = token.lstrip("$")
        if word in _API_WORDS or _BUCKET_STREAM.fullmatch(word):
            tokens[i] = token.upper()
        elif i > 0:
            break
    return ".".join(tokens)


def permission_line(party: str | None, violation: BaseException | str) -> str:
    """The right a refused operation needed, and whose it was, in the operator's words."""
    who = f"party {party}" if party else "these credentials"
    text = str(violation)
    if match := _VIOLATION.search(text):
        verb = "publish to" if match.group(1).lower() == "publish" else "subscribe to"
        what = f"{verb} {_recase(match.group(2).strip())}"
    else:
        what = text.removeprefix("nats: ")
    return (
        f"permission denied: {who} may not {what}; ask the operator for that right "
        "(parties.json lists every party's)"
    )


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
        case CommandError() | RegistryError() | PartiesError() | SecurityError():
            return str(error)
        case ssl.SSLError():
            return (
                f"TLS with NATS at {where} failed ({error.reason or error}): check --tls-ca / "
                "LIENTHONG_NATS_TLS_CA and the party's certificate"
            )
        case SettingsError():
            return f"the setting {error} (unset it, or give a value of that type)"
        case NatsServerFailed():
            said = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
            why = f" ({said[-1]})" if said else ""
            return (
                f"the embedded nats-server did not start{why}: is another server using its "
                "port? stop it, or give --nats-url / LIENTHONG_NATS_URL to use a running one"
            )
        case nats.errors.AuthorizationError() | nats.errors.Error() if (
            isinstance(error, nats.errors.AuthorizationError)
            or "authorization violation" in str(error).lower()
        ):
            return (
                f"NATS at {where} refused these credentials: give --creds FILE, a party's key "
                "from `lienthong security init` (or $LIENTHONG_NATS_CREDS; or the user, "
                "password or token settings)"
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
        case LogUnavailable():
            return f"JetStream at {where}: {error}: is JetStream up and has it a leader?"
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
