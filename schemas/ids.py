"""Ids lienthong derives from another id: `<prefix>:<id>`, or `<prefix>:sha256:<hex>` when that
would exceed the contract's 128 characters. Deterministic, so a resend derives the same id."""

from __future__ import annotations

import hashlib

MAX_ID = 128
"""The contract's bound on an event_id or a message_id."""


def derived_id(prefix: str, id_: str) -> str:
    candidate = f"{prefix}:{id_}"
    if len(candidate) <= MAX_ID:
        return candidate
    return f"{prefix}:sha256:{hashlib.sha256(id_.encode()).hexdigest()}"
