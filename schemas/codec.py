"""Decoding the wire: one decoder per union, built once; errors that name the field."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from schemas.events import Event
from schemas.interconnect import Body, EnvelopeKind, NoteBody, ResultBody, TransferBody

EVENT_DECODER: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
ENCODER = msgspec.json.Encoder()

_BODY_TYPES: dict[EnvelopeKind, type[Body]] = {
    EnvelopeKind.TRANSFER: TransferBody,
    EnvelopeKind.RESULT: ResultBody,
    EnvelopeKind.STATUS: NoteBody,
    EnvelopeKind.RECEIPT: NoteBody,
    EnvelopeKind.SUPPLEMENT_REQUEST: NoteBody,
    EnvelopeKind.REJECTED: NoteBody,
}
_BODY_DECODERS: dict[EnvelopeKind, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(t) for kind, t in _BODY_TYPES.items()
}

_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")


def field_of(error: msgspec.ValidationError) -> str | None:
    """The dotted path of the field a msgspec error is about (`due_at`, `applicant.name`)."""
    text = str(error)
    path = ""
    if at := _AT.search(text):
        path = at.group(1).lstrip(".").replace("[", ".").replace("]", "")
    if missing := _MISSING.search(text):
        return f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def plain_message(error: msgspec.ValidationError) -> str:
    """msgspec's message without its `- at $...` suffix (the field is reported on its own)."""
    return _AT.sub("", str(error))


def decode_body(kind: EnvelopeKind, raw: msgspec.Raw) -> Body:
    body: Body = _BODY_DECODERS[kind].decode(raw)
    return body


def first_non_utf8_byte(data: bytes) -> int | None:
    """Where `data` stops being UTF-8, or None: decided here rather than by whichever exception a
    msgspec version raises for a string that is not UTF-8 (0.23 changed it)."""
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return None
