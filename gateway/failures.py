"""Expected failures of a command, in one line: NATS unreachable, credentials refused, a right
the party lacks. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import re
import ssl

import nats.errors

from gateway import connection
from gateway.refusals import Unavailable
from gateway.settings import NatsSettings

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


def permission_line(settings: NatsSettings) -> str | None:
    """The right the last refused operation needed, if the server refused one."""
    if not connection.PERMISSION_DENIED:
        return None
    last = connection.PERMISSION_DENIED[-1]
    who = f"party {settings.party}" if settings.party else "these credentials"
    if match := _VIOLATION.search(last):
        verb = "publish to" if match.group(1).lower() == "publish" else "subscribe to"
        what = f"{verb} {_recase(match.group(2).strip())}"
    else:
        what = last
    return (
        f"permission denied: {who} may not {what}; ask the operator for that right "
        "(parties.json lists every party's)"
    )


def one_line(error: BaseException, settings: NatsSettings) -> str | None:
    """What to tell the user instead of a traceback, or None when `error` is not expected."""
    where = ", ".join(settings.servers) or "the embedded server's address"
    if (denied := permission_line(settings)) is not None:
        return denied
    text = str(error)
    if isinstance(error, nats.errors.AuthorizationError) or "authorization violation" in (
        text.lower()
    ):
        return (
            f"NATS at {where} refused these credentials: give --creds FILE, a party's key "
            "from `lienthong security init` (or $LIENTHONG_NATS_CREDS)"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the server at {where} presented a certificate not signed by the CA given "
            f"(--tls-ca, $LIENTHONG_NATS_TLS_CA): {error.verify_message}"
        )
    if isinstance(error, connection.ConnectionStalled):
        return str(error)
    if isinstance(error, nats.errors.NoServersError | ConnectionRefusedError):
        return (
            f"cannot reach NATS at {where}: start the server (or `lienthong serve`), "
            "or give --nats-url"
        )
    if isinstance(error, Unavailable | nats.errors.Error | TimeoutError):
        return f"NATS at {where} did not answer in time: {text or type(error).__name__}"
    return None
