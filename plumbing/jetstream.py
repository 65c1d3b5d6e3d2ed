"""The few JetStream requests the gateway makes, on nats-py's raw request path.

nats-py's JetStream context hides status replies behind generic errors and costs a JSON parse
per call; here every answer becomes a typed result or one of two named errors: `LogUnavailable`
(nothing answered in time, no stream leader, no responders, any trouble of the connection:
safe to retry) and
`WrongLastSequence` (another writer appended first: re-read and re-judge).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from typing import NamedTuple

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from plumbing.errors import LogUnavailable

JS_API = "$JS.API"
ERR_WRONG_LAST_SEQUENCE = 10071


class Delivery(NamedTuple):
    """Where a JetStream delivery stands, read from its reply subject."""

    seq: int
    """The message's stream sequence."""
    pending: int
    """Messages still to be delivered to this consumer after it."""
    stored_ns: int
    """When the stream stored it, nanoseconds since the epoch."""


def delivery_of(reply: str) -> Delivery:
    """`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>`, or with domain
    and account hash after `ACK` (and a random token at the end). nats-py's `msg.metadata` parses
    all of it into objects: a cost per event a projector can do without."""
    t = reply.split(".")
    if len(t) == 9:
        return Delivery(int(t[5]), int(t[8]), int(t[7]))
    return Delivery(int(t[7]), int(t[10]), int(t[9]))


class WrongLastSequence(Exception):
    """The subject's last sequence was not the one expected: someone else appended first."""


TIMER_GRAIN = 0.1
"""Requests whose deadlines fall in the same tenth of a second share one timer."""


def _connection_trouble(error: nats.errors.Error, what: str) -> str:
    name = type(error).__name__
    return f"the gateway's connection could not carry a {what} to the event log ({name}); retry"


class _ApiError(msgspec.Struct, frozen=True):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct, frozen=True):
    stream: str = ""
    seq: int = 0
    """The message's sequence; of an atomic batch, its last message's."""
    duplicate: bool = False
    count: int = 0
    """Of an atomic batch: how many messages it stored, at sequences first_seq .. seq."""
    error: _ApiError | None = None

    @property
    def first_seq(self) -> int:
        """Of an atomic batch: its first message's sequence (the others follow in order)."""
        return self.seq - self.count + 1


class Outgoing(NamedTuple):
    """One message of an atomic batch, with the last sequence its subject must have."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    expected_last_subject_seq: int


class BatchRefused(Exception):
    """An atomic batch was not stored, none of it: a message's expectation failed, or the batch
    was refused as a whole (a duplicate message id, too many batches at once). Nothing to undo."""


_PUBACK = msgspec.json.Decoder(PubAck)


class _StreamConfig(msgspec.Struct, frozen=True):
    duplicate_window: int = 0
    """Nanoseconds."""


class _StreamInfo(msgspec.Struct, frozen=True):
    config: _StreamConfig | None = None
    error: _ApiError | None = None


_STREAM_INFO = msgspec.json.Decoder(_StreamInfo)


class StoredMessage(msgspec.Struct, frozen=True):
    subject: str
    seq: int
    data: bytes
    headers: dict[str, str]
    time: str


class JetStream:
    """Publish with expectations, and direct gets, with one timeout for all."""

    def __init__(self, client: Client, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self._inbox = client.new_inbox()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        self._subscribed = asyncio.Lock()
        self._sub: Subscription | None = None
        self._expiring: dict[int, list[str]] = {}  # tick -> tokens whose deadline it is

    async def _request(self, subject: str, payload: bytes, headers: dict[str, str] | None) -> Msg:
        """One request on a shared reply subscription: a future, no task or timer of its own.

        nats-py's own `request` wraps each call in `wait_for`, a cost per event that a batch of
        a thousand pays a thousand times; a timer per request still costs a heap insert and a
        cancel each. Deadlines are rounded up to `TIMER_GRAIN` and share one timer. Raises
        nats.errors.TimeoutError when no reply comes in time.
        """
        if self._sub is None:
            async with self._subscribed:
                if self._sub is None:
                    self._sub = await self.client.subscribe(f"{self._inbox}.*", cb=self._reply)
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = waiter
        self._expire_at(loop, token)
        try:
            await self.client.publish(
                subject, payload, reply=f"{self._inbox}.{token}", headers=headers
            )
            return await waiter
        finally:
            self._waiting.pop(token, None)

    def _expire_at(self, loop: asyncio.AbstractEventLoop, token: str) -> None:
        tick = math.ceil((loop.time() + self.timeout) / TIMER_GRAIN)
        tokens = self._expiring.get(tick)
        if tokens is None:
            tokens = self._expiring[tick] = []
            loop.call_at(tick * TIMER_GRAIN, self._expire_tick, tick)
        tokens.append(token)  # a token, not the future: answered ones keep nothing alive

    def _expire_tick(self, tick: int) -> None:
        for token in self._expiring.pop(tick, ()):
            waiter = self._waiting.get(token)
            if waiter is not None and not waiter.done():
                waiter.set_exception(nats.errors.TimeoutError())

    async def _reply(self, msg: Msg) -> None:
        waiter = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    async def _ask(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, what: str
    ) -> Msg:
        """`_request`, with every way it can fail as `LogUnavailable` (safe to retry); `what` is
        "write" or "read", for the message."""
        try:
            return await self._request(subject, payload, headers)
        except nats.errors.NoRespondersError as e:
            raise LogUnavailable("the event log is not reachable (no JetStream responder)") from e
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError) as e:
            done = "confirm the write" if what == "write" else "answer a read"
            raise LogUnavailable(f"the event log did not {done} in time") from e
        except nats.errors.Error as e:  # reconnecting, draining, buffer full, ...: a resend tells
            raise LogUnavailable(_connection_trouble(e, what)) from e

    async def publish(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        expected_last_subject_seq: int | None = None,
    ) -> PubAck:
        if expected_last_subject_seq is not None:
            headers = {
                **headers,
                "Nats-Expected-Last-Subject-Sequence": str(expected_last_subject_seq),
            }
        reply = await self._ask(subject, payload, headers, "write")
        if reply.headers and reply.headers.get("Status") == "503":
            raise LogUnavailable("the event log is not reachable (no JetStream responder)")
        ack = _PUBACK.decode(reply.data)
        if ack.error is not None:
            if ack.error.err_code == ERR_WRONG_LAST_SEQUENCE:
                raise WrongLastSequence(ack.error.description)
            raise LogUnavailable(f"the event log refused the write: {ack.error.description}")
        return ack

    async def publish_batch(self, messages: list[Outgoing]) -> PubAck:
        """Store all of `messages` or none, with one acknowledgement (JetStream atomic batch
        publish, on streams with `allow_atomic`): one request/reply instead of one per message.

        Raises BatchRefused when the server stored none of them, LogUnavailable when it did not
        answer (then the batch may or may not be stored: read before writing again).
        """
        if not messages:
            raise ValueError("an atomic batch needs at least one message")
        batch = uuid.uuid4().hex
        last = len(messages)
        for n, m in enumerate(messages, 1):
            headers = {
                **m.headers,
                "Nats-Expected-Last-Subject-Sequence": str(m.expected_last_subject_seq),
                "Nats-Batch-Id": batch,
                "Nats-Batch-Sequence": str(n),
            }
            if n < last:
                try:
                    await self.client.publish(m.subject, m.payload, headers=headers)
                except nats.errors.Error as e:
                    raise LogUnavailable(_connection_trouble(e, "write")) from e
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await self._ask(m.subject, m.payload, headers, "write")
        if reply.headers and reply.headers.get("Status") == "503":
            raise LogUnavailable("the event log is not reachable (no JetStream responder)")
        ack = _PUBACK.decode(reply.data)
        if ack.error is not None or ack.count != last:
            raise BatchRefused(ack.error.description if ack.error else "incomplete batch")
        return ack

    async def duplicate_window(self, stream: str) -> float:
        """The stream's msg-id duplicate window, in seconds."""
        reply = await self._ask(f"{JS_API}.STREAM.INFO.{stream}", b"", None, "read")
        info = _STREAM_INFO.decode(reply.data)
        if info.config is None:
            problem = info.error.description if info.error else "no configuration"
            raise LogUnavailable(f"the event log could not be read ({problem})")
        return info.config.duplicate_window / 1e9

    async def last_on_subject(self, stream: str, subject: str) -> StoredMessage | None:
        return await self._direct_get(f"{JS_API}.DIRECT.GET.{stream}.{subject}", b"")

    async def next_on_subject(
        self, stream: str, subject: str, from_seq: int
    ) -> StoredMessage | None:
        """The first message on `subject` with sequence >= from_seq."""
        request = msgspec.json.encode({"seq": from_seq, "next_by_subj": subject})
        return await self._direct_get(f"{JS_API}.DIRECT.GET.{stream}", request)

    async def by_seq(self, stream: str, seq: int) -> StoredMessage | None:
        request = msgspec.json.encode({"seq": seq})
        return await self._direct_get(f"{JS_API}.DIRECT.GET.{stream}", request)

    async def _direct_get(self, api_subject: str, request: bytes) -> StoredMessage | None:
        reply = await self._ask(api_subject, request, None, "read")
        headers: dict[str, str] = dict(reply.headers or {})
        status = headers.get("Status")
        if status == "404":
            return None
        if status is not None:
            raise LogUnavailable(f"the event log could not be read ({status})")
        return StoredMessage(
            subject=headers.get("Nats-Subject", ""),
            seq=int(headers.get("Nats-Sequence", "0")),
            data=reply.data,
            headers=headers,
            time=headers.get("Nats-Time-Stamp", ""),
        )
