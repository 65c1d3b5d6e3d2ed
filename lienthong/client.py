"""Submitting events as a unit's system does: batches over request/reply, replies decoded.

Used by `lienthong submit`, the demo and the benchmarks, so they all speak the contract the
same way an outside vendor would.

Each event is checked here to be one JSON object before it joins a batch: a bad line sent
along would get its whole batch refused (not JSON), or shift the replies (two objects on one
line). Batches are cut by count and by bytes, so none is refused whole for its size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from gateway.refusals import Malformed, Unavailable
from gateway.submit import MAX_BYTES, MAX_EVENTS
from plumbing.subjects import submit_subject
from schemas.replies import Refused, Reply, replies_from_json

DEFAULT_BATCH = 500
BATCH_BYTES = 512 * 1024
"""A batch's size at most (one event larger than this goes alone): well under the gateway's
4 MiB, and under the 1 MB a NATS server accepts by default."""

_OBJECT = msgspec.json.Decoder(dict[str, Any])


def local_refusal(event: bytes, max_bytes: int = MAX_BYTES) -> Refused | None:
    """Why `event` cannot be submitted as one event (a `malformed` refusal), or None."""
    if len(event) + 2 > max_bytes:  # sent as `[event]`
        return Malformed(
            f"the event is {len(event)} bytes; the gateway accepts at most {max_bytes - 2}"
        ).reply()
    try:
        _OBJECT.decode(event)
    except msgspec.ValidationError:
        return Malformed("each event must be a JSON object").reply()
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        return Malformed(
            f"not valid JSON ({e}); each line must hold exactly one event, a JSON object"
        ).reply()
    return None


def batches(
    events: Sequence[bytes], indices: Sequence[int], max_events: int, max_bytes: int
) -> Iterator[list[int]]:
    """`indices` of `events` in order, cut into runs of at most max_events and max_bytes."""
    run: list[int] = []
    size = 2  # the array's brackets
    for i in indices:
        grown = size + len(events[i]) + (1 if run else 0)  # and a comma
        if run and (len(run) == max_events or grown > max_bytes):
            yield run
            run, grown = [], 2 + len(events[i])
        run.append(i)
        size = grown
    if run:
        yield run


async def submit_batch(
    client: Client, unit: str, events: Sequence[bytes], timeout: float = 30.0
) -> list[Reply]:
    """Submit events (each a JSON object's bytes) as one array; one reply per event."""
    payload = b"[" + b",".join(events) + b"]"
    try:
        msg = await client.request(submit_subject(unit), payload, timeout=timeout)
    except nats.errors.MaxPayloadError:
        refusal = Malformed(
            f"the batch of {len(payload)} bytes is larger than the NATS server accepts; "
            "submit fewer events at once"
        ).reply()
        return [refusal] * len(events)
    except nats.errors.Error as e:
        refusal = Unavailable(f"no answer from the gateway ({type(e).__name__}); retry").reply()
        return [refusal] * len(events)
    replies = replies_from_json(msg.data)
    if not isinstance(replies, list):
        return [replies] * len(events)  # refused whole
    if len(replies) != len(events):  # never from a gateway keeping the contract
        refusal = Unavailable(
            f"the gateway answered {len(replies)} replies for {len(events)} events; retry"
        ).reply()
        return [refusal] * len(events)
    return list(replies)


async def submit_all(
    client: Client,
    unit: str,
    events: Sequence[bytes],
    *,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> list[Reply]:
    """One reply per event, in order: refused here if it is not one JSON object, nothing sent
    for it; otherwise the gateway's reply."""
    max_bytes = min(MAX_BYTES, client.max_payload)
    replies: list[Reply | None] = [None] * len(events)
    sendable: list[int] = []
    for i, event in enumerate(events):
        if (refusal := local_refusal(event, max_bytes)) is not None:
            replies[i] = refusal
        else:
            sendable.append(i)
    if on_progress is not None and len(sendable) < len(events):
        on_progress(len(events) - len(sendable))
    max_events = max(1, min(batch_size, MAX_EVENTS))
    for run in batches(events, sendable, max_events, min(BATCH_BYTES, max_bytes)):
        answered = await submit_batch(client, unit, [events[i] for i in run])
        for i, reply in zip(run, answered, strict=True):
            replies[i] = reply
        if on_progress is not None:
            on_progress(len(run))
    return [r for r in replies if r is not None]
