"""The hash chain over the event log: pure, the same for the sealer and for verification.

h(0) = SHA-256("lienthong event log v1"); h(n) = SHA-256(h(n-1) || record(n)), where record(n) is
the msgpack array [stream sequence, subject, stored time in ns, sorted headers, data] of the
n-th stored message. Every part of what JetStream stored is covered: changing an event's bytes,
headers, subject or stored time, removing one (a gap in the sequences) or inserting one gives a
different chain from there on.
"""

from __future__ import annotations

import hashlib

import msgspec

GENESIS = hashlib.sha256(b"lienthong event log v1").digest()
_RECORD = msgspec.msgpack.Encoder()


class Chain:
    """The running chain: `add` each stored message in sequence order."""

    __slots__ = ("events", "head", "seq")

    def __init__(self, seq: int = 0, head: bytes = GENESIS, events: int = 0) -> None:
        self.seq = seq
        self.head = head
        self.events = events

    def add(
        self,
        seq: int,
        subject: str,
        stored_ns: int,
        headers: dict[str, str] | None,
        data: bytes,
    ) -> None:
        record = _RECORD.encode([seq, subject, stored_ns, sorted((headers or {}).items()), data])
        self.head = hashlib.sha256(self.head + record).digest()
        self.seq = seq
        self.events += 1

    @property
    def hex(self) -> str:
        return self.head.hex()
