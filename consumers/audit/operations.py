"""Operators' actions on the gateway's state, audited: who ran what, when, on what.

Every command that changes state (`lienthong resume-delivery`, and any later one) appends one
record to stream ONESTOP_OPERATIONS (`onestop.operations.<command>`, deletes and purges denied):
never to the event log, so a record never counts in a report nor changes a lifecycle. Who is
the NATS user the server says the connection is (`$SYS.REQ.USER.INFO`), with its account, else
the operating-system user running the command. `history` shows the records that touched a
dossier, `status` the latest ones.
"""

from __future__ import annotations

import getpass
from datetime import datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from plumbing.settings import StreamSettings
from plumbing.streams import OPERATIONS_PREFIX, OPERATIONS_STREAM, operations_config
from schemas.periods import now_vn


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One thing an action changed: a dossier's delivery, by its message."""

    unit: str
    dossier_id: str
    message_id: str | None = None


class OperatorAction(msgspec.Struct, frozen=True, kw_only=True):
    command: str
    """The command as typed, its options included (`resume-delivery --unit 21550`)."""
    who: str
    """The NATS user of the connection if the server names one, else the OS user."""
    nats_user: str | None
    nats_account: str | None
    os_user: str
    at: datetime
    changed: list[Target]
    """What the action changed (nothing, when it found nothing to do)."""


class _UserInfo(msgspec.Struct):
    user: str = ""
    account: str = ""


class _UserInfoReply(msgspec.Struct):
    data: _UserInfo | None = None


_USER_INFO = msgspec.json.Decoder(_UserInfoReply)
_ACTION = msgspec.json.Decoder(OperatorAction)


async def connection_user(client: Client) -> tuple[str | None, str | None]:
    """(user, account) the server says this connection is, or (None, None) if it does not say."""
    try:
        reply = await client.request("$SYS.REQ.USER.INFO", b"", timeout=2.0)
        info = _USER_INFO.decode(reply.data).data
    except (nats.errors.Error, msgspec.DecodeError):  # an older server, or no right to ask
        return None, None
    if info is None:
        return None, None
    return info.user or None, info.account or None


class OperationsLog:
    """Appends operator actions. `ready()` before changing anything: an action that could not
    be recorded is an action not taken."""

    def __init__(self, client: Client, settings: StreamSettings | None = None) -> None:
        self.client = client
        self.settings = settings or StreamSettings()

    async def ready(self) -> None:
        js = self.client.jetstream()
        try:
            await js.stream_info(OPERATIONS_STREAM)
        except NotFoundError:
            await js.add_stream(operations_config(self.settings))

    async def record(self, command: str, changed: list[Target]) -> OperatorAction:
        user, account = await connection_user(self.client)
        os_user = getpass.getuser()
        action = OperatorAction(
            command=command,
            who=user or os_user,
            nats_user=user,
            nats_account=account,
            os_user=os_user,
            at=now_vn(),
            changed=changed,
        )
        verb = command.split()[0]
        await self.client.jetstream().publish(
            f"{OPERATIONS_PREFIX}.{verb}", msgspec.json.encode(action), stream=OPERATIONS_STREAM
        )
        return action


async def operator_actions(client: Client) -> list[OperatorAction]:
    """Every recorded action, oldest first (none when no action was ever recorded)."""
    js = client.jetstream()
    try:
        total = (await js.stream_info(OPERATIONS_STREAM)).state.messages
    except NotFoundError:
        return []
    if total == 0:
        return []
    sub = await js.subscribe(
        f"{OPERATIONS_PREFIX}.>",
        stream=OPERATIONS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    actions: list[OperatorAction] = []
    try:
        while len(actions) < total:
            msg = await sub.next_msg(timeout=10)
            actions.append(_ACTION.decode(msg.data))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return actions


def touching(actions: list[OperatorAction], unit: str, dossier_id: str) -> list[OperatorAction]:
    return [
        a for a in actions if any(t.unit == unit and t.dossier_id == dossier_id for t in a.changed)
    ]


def describe(action: OperatorAction) -> str:
    """One line: when, who, what, on what."""
    account = (
        f" (account {action.nats_account})" if action.nats_user and action.nats_account else ""
    )
    source = "NATS user" if action.nats_user else "OS user"
    changed = ", ".join(
        f"{t.unit} {t.dossier_id!r}" + (f" {t.message_id}" if t.message_id else "")
        for t in action.changed
    )
    return (
        f"{action.at.isoformat(timespec='seconds')} {source} {action.who}{account} ran "
        f"`lienthong {action.command}`: {len(action.changed)} changed"
        + (f" ({changed})" if changed else "")
    )
