"""Talking to the gateway as a unit's system does, and reading the log as an auditor does."""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.client import Client

from gateway.streams import EVENTS_STREAM
from gateway.subjects import submit_subject


async def submit(client: Client, unit: str, payload: Any, timeout: float = 10.0) -> Any:
    """Submit an event (dict), a batch (list) or raw bytes; the decoded JSON reply."""
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    reply = await client.request(submit_subject(unit), data, timeout=timeout)
    return msgspec.json.decode(reply.data)


async def log_size(client: Client) -> int:
    info = await client.jetstream().stream_info(EVENTS_STREAM)
    messages: int = info.state.messages
    return messages


async def log_subjects(client: Client) -> dict[str, int]:
    info = await client.jetstream().stream_info(EVENTS_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})
