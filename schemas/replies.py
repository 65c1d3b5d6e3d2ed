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


class Accepted(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Stored (`duplicate: false`) or stored before (`duplicate: true`, original `seq`)."""

    ok: Literal[True] = True
    seq: int
    duplicate: bool
    event_id: str | None = None


class Refused(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: Literal[False] = False
    error: ErrorDetail
    event_id: str | None = None


Reply: TypeAlias = Accepted | Refused
