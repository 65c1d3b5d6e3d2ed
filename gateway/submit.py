"""The submit service: `onestop.submit.<unit>` in, one reply per event out (CONTRACT section 4).

Decoding, validation and unit checks are done for the whole batch before anything is read or
written; then `Intake` records what passed. One log line per batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from gateway import metrics
from gateway.intake import Candidate, Intake
from gateway.refusals import (
    Invalid,
    Malformed,
    Refusal,
    Unavailable,
    UnitMismatch,
    UnknownUnit,
)
from schemas.codec import ENCODER, EVENT_DECODER, field_of, first_non_utf8_byte, plain_message
from schemas.registry import Registry
from schemas.replies import Accepted, Refused, Reply
from schemas.rules import field_problem, to_microseconds

MAX_EVENTS = 1000
MAX_BYTES = 4 * 1024 * 1024


class _EventIdOnly(msgspec.Struct):
    event_id: str | None = None


_EVENT_ID = msgspec.json.Decoder(_EventIdOnly)
_BATCH = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()


def split_submission(payload: bytes) -> tuple[list[msgspec.Raw], bool]:
    """The submitted items, and whether they came as an array; Malformed if refused whole."""
    if len(payload) > MAX_BYTES:
        raise Malformed(f"the submission is {len(payload)} bytes; at most {MAX_BYTES} are accepted")
    head = payload.lstrip()[:1]
    if head == b"[":
        items = _parse(_BATCH, payload)
        if len(items) > MAX_EVENTS:
            raise Malformed(
                f"the batch holds {len(items)} events; at most {MAX_EVENTS} per submission"
            )
        return items, True
    _parse(_ANY, payload)
    if head == b"{":
        return [msgspec.Raw(payload)], False
    raise Malformed("the submission must be one event (a JSON object) or an array of events")


def _parse(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    try:
        return decoder.decode(payload)
    # UnicodeDecodeError: a string that is not UTF-8, which msgspec reports as that, not as
    # its DecodeError; both are ValueErrors.
    except ValueError as e:
        raise Malformed(f"the submission is not valid JSON (UTF-8): {e}") from e


def event_id_of(raw: msgspec.Raw) -> str | None:
    try:
        return _EVENT_ID.decode(raw).event_id
    except ValueError:  # not an object, not a string, not UTF-8
        return None


def validate(raw: msgspec.Raw, unit: str, registry: Registry, now: datetime) -> Candidate:
    """A Candidate ready to record, or raise the Refusal that fits first."""
    text = bytes(raw)
    if not text.lstrip().startswith(b"{"):
        raise Malformed("each event must be a JSON object")
    # An array's elements are split out without reading their strings, so one may not be UTF-8.
    if (at := first_non_utf8_byte(text)) is not None:
        raise Malformed(f"the event is not valid JSON: its text must be UTF-8 (byte {at} is not)")
    try:
        event = EVENT_DECODER.decode(raw)
    except msgspec.ValidationError as e:
        field = field_of(e)
        raise Invalid(f"{field or 'event'}: {plain_message(e)}", field=field) from e
    event = to_microseconds(event, raw)
    if (problem := field_problem(event, now)) is not None:
        raise Invalid(problem.message, field=problem.field)
    if event.unit != unit:
        raise UnitMismatch(
            f"the event's unit {event.unit!r} differs from the subject's unit {unit!r}; "
            "a unit submits its own events on onestop.submit.<its code>",
            field="unit",
        )
    if unit not in registry:
        raise UnknownUnit(
            f"unit {unit!r} is not in the gateway's registry of units; ask the operator to add it",
            field="unit",
        )
    return Candidate(event, ENCODER.encode(event))


class SubmitService:
    def __init__(
        self,
        intake: Intake,
        registry: Registry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.intake = intake
        self.registry = registry
        self.clock = clock
        self.log = structlog.get_logger("lienthong.submit")

    async def submit(self, unit: str, payload: bytes) -> bytes:
        started = time.perf_counter()
        try:
            items, is_batch = split_submission(payload)
        except Malformed as refusal:
            self._log_batch(unit, 0, [refusal.reply()], started)
            return ENCODER.encode(refusal.reply())
        replies = await self.handle(unit, items)
        self._log_batch(unit, len(items), replies, started)
        return ENCODER.encode(replies if is_batch else replies[0])

    async def handle(self, unit: str, items: list[msgspec.Raw]) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(items)
        try:
            await self._judge(unit, items, replies)
        except Exception as e:
            # Last resort: whatever broke, every event still gets a contract reply. The type only
            # is logged: an error's text may quote the event, and events hold personal data.
            self.log.error("submit.failed", unit=unit, events=len(items), error=type(e).__name__)
            lost = Unavailable("the gateway could not finish this event; retry")
            for i, r in enumerate(replies):
                if r is None:
                    replies[i] = lost.reply(event_id_of(items[i]))
        return [r for r in replies if r is not None]

    async def _judge(
        self, unit: str, items: list[msgspec.Raw], replies: list[Reply | None]
    ) -> None:
        now = self.clock()
        candidates: list[Candidate] = []
        positions: list[int] = []
        for i, raw in enumerate(items):
            try:
                candidates.append(validate(raw, unit, self.registry, now))
                positions.append(i)
            except Refusal as refusal:
                replies[i] = refusal.reply(event_id_of(raw))
        for i, reply in zip(positions, await self.intake.record(candidates), strict=True):
            replies[i] = reply

    def _log_batch(self, unit: str, events: int, replies: list[Reply], started: float) -> None:
        metrics.count_submission(replies, time.perf_counter() - started)
        refused = Counter(r.error.code.value for r in replies if isinstance(r, Refused))
        accepted = [r for r in replies if isinstance(r, Accepted)]
        self.log.info(
            "submit.batch",
            unit=unit,
            events=events,
            accepted=sum(1 for r in accepted if not r.duplicate),
            duplicates=sum(1 for r in accepted if r.duplicate),
            refused=dict(refused),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
