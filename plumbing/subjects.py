"""The subjects of CONTRACT section 2, and the key encoding of entity ids.

Entity ids may hold dots, slashes, spaces and Vietnamese letters; a subject token may not hold
dots or spaces. The key is quoted-printable style: ASCII letters, digits, `-` and `_` stand for
themselves, every other byte of the id's UTF-8 is `=` followed by two upper-case hex digits.
`=` itself is escaped, so the encoding is reversible and two different ids never share a key.
The same key is valid as a NATS subject token and as a JetStream KV key.

    HS-2021/04.001  ->  HS-2021=2F04=2E001
    Hồ sơ 1         ->  H=E1=BB=93=20s=C6=A1=201
"""

from __future__ import annotations

import re

from schemas.events import Entity

SUBMIT_PREFIX = "onestop.submit"
EVENTS_PREFIX = "onestop.events"
REPORTS_PREFIX = "onestop.reports"
INBOUND_PREFIX = "onestop.inbound"

_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_BYTE = re.compile(rb"[^A-Za-z0-9_-]")
_ESCAPE = re.compile(r"=([0-9A-F]{2})")


def encode_key(entity_id: str) -> str:
    """The subject-safe, reversible key of an entity id (see the module docstring)."""
    if _ALL_SAFE.fullmatch(entity_id):
        return entity_id  # the common case costs one regex match
    return _UNSAFE_BYTE.sub(_escape, entity_id.encode("utf-8")).decode("ascii")


def _escape(match: re.Match[bytes]) -> bytes:
    return b"=%02X" % match.group()[0]


def decode_key(key: str) -> str:
    """The entity id a key stands for; `decode_key(encode_key(x)) == x`."""
    raw = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "=":
            raw.append(int(key[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(key[i]))
            i += 1
    return raw.decode("utf-8")


def submit_subject(unit: str) -> str:
    return f"{SUBMIT_PREFIX}.{unit}"


def event_subject(unit: str, entity: Entity, entity_id: str) -> str:
    return f"{EVENTS_PREFIX}.{unit}.{entity.value}.{encode_key(entity_id)}"


def report_subject(unit: str, period: str) -> str:
    return f"{REPORTS_PREFIX}.{unit}.{period}"


def inbound_subject(unit: str) -> str:
    return f"{INBOUND_PREFIX}.{unit}"


def province_inbox_subject(province: str, unit: str) -> str:
    return f"province.{province}.inbox.{unit}"


def last_token(subject: str, prefix: str) -> str | None:
    """`<unit>` of `prefix.<unit>`, or None when the subject is not one token under prefix."""
    head, _, tail = subject.rpartition(".")
    return tail if head == prefix and tail else None
