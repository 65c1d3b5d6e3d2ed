"""Section 4 of CONTRACT.md: the answer to each submitted event."""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias

import msgspec


class ErrorCode(enum.StrEnum):
    MALFORMED = "malformed"
    INVALID = "invalid"
    UNIT_MISMATCH = "unit_mismatch"
    UNKNOWN_UNIT = "unknown_unit"
    UNKNOWN_ENTITY = "unknown_entity"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: ErrorCode
    message: str
    field: str | None = None


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """Stored (`duplicate: false`) or stored before (`duplicate: true`, original `seq`)."""

    ok: Literal[True] = True
    seq: int
    duplicate: bool
    event_id: str | None = None


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    ok: Literal[False] = False
    error: ErrorDetail
    event_id: str | None = None
    """null when no event_id could be read (the submission refused whole, or unreadable)."""


Reply: TypeAlias = Accepted | Refused


def reply_from(obj: object) -> Reply:
    """A decoded reply object as Accepted or Refused (told apart by `ok`, a bool, not a tag)."""
    if isinstance(obj, dict) and obj.get("ok") is True:
        return msgspec.convert(obj, Accepted)
    return msgspec.convert(obj, Refused)


def replies_from_json(data: bytes) -> list[Reply] | Reply:
    """The reply to a submission: a list for a batch, one object otherwise."""
    decoded = msgspec.json.decode(data)
    if isinstance(decoded, list):
        return [reply_from(item) for item in decoded]
    return reply_from(decoded)
