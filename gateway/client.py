"""Submitting events as a unit's system does: batches over request/reply, replies decoded.

Used by `lienthong submit`, the demo and the benchmarks, so they all speak the contract the
same way an outside vendor would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import nats.errors
from nats.aio.client import Client

from gateway.refusals import Unavailable
from gateway.subjects import submit_subject
from schemas.replies import Reply, replies_from_json

DEFAULT_BATCH = 500


async def submit_batch(
    client: Client, unit: str, events: Sequence[bytes], timeout: float = 30.0
) -> list[Reply]:
    """Submit events (each a JSON object's bytes) as one array; one reply per event."""
    payload = b"[" + b",".join(events) + b"]"
    try:
        msg = await client.request(submit_subject(unit), payload, timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
        refusal = Unavailable(f"no answer from the gateway ({type(e).__name__}); retry").reply()
        return [refusal] * len(events)
    replies = replies_from_json(msg.data)
    if isinstance(replies, list):
        return list(replies)
    return [replies] * len(events)  # refused whole


async def submit_all(
    client: Client,
    unit: str,
    events: Sequence[bytes],
    *,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> list[Reply]:
    replies: list[Reply] = []
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        replies.extend(await submit_batch(client, unit, chunk))
        if on_progress is not None:
            on_progress(len(chunk))
    return replies
