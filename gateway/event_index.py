"""The event-id index: where each (unit, event_id) was appended, kept for ever.

JetStream's own duplicate window forgets; this index does not. It is a stream with one message
per subject `onestop.eventids.<unit>.<key>` (a KV bucket in all but name), written before the
event is appended, compare-and-set on the subject's last sequence. Its value, a `Claim`, says on
which log subject the event goes and after which sequence: the append carries that sequence as
its expectation, so if the event reached the log at all it is the very next message on that
subject. One read answers "was it stored?", also when the first answer was lost or
`unavailable`, and two instances racing on one event_id cannot both create the entry.

Cost per event: one message of about 100 bytes plus the subject (~40 bytes) on disk; in the
server's memory, its entry in the per-subject index (~100 bytes). Nothing in the gateway.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from plumbing.jetstream import JetStream, Outgoing, WrongLastSequence
from plumbing.streams import EVENT_IDS_PREFIX, EVENT_IDS_STREAM
from plumbing.subjects import EVENTS_PREFIX, encode_key


class Claim(msgspec.Struct, frozen=True, array_like=True):
    subject: str
    after_seq: int


RELEASED = Claim(f"{EVENTS_PREFIX}.released", 0)
"""The claim of a write the log refused, nothing else following: a subject no event is ever on,
so the event_id reads as never stored, and is free for the next claim at once."""


class Entry(NamedTuple):
    claim: Claim
    seq: int
    """Its index sequence (for `replace`)."""
    written_at: datetime
    """When the index stored it (JetStream's clock)."""


_CLAIM = msgspec.json.Decoder(Claim)
_ENCODE = msgspec.json.encode
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


class EventIndex:
    def __init__(self, js: JetStream) -> None:
        self._js = js

    @staticmethod
    def subject(unit: str, event_id: str) -> str:
        return f"{EVENT_IDS_PREFIX}.{unit}.{encode_key(event_id)}"

    async def create(self, unit: str, event_id: str, claim: Claim) -> int | None:
        """Record the claim if the event_id has none: its index sequence, or None if it has one."""
        return await self.replace(unit, event_id, claim, 0)

    async def create_all(self, claims: list[tuple[str, str, Claim]]) -> int:
        """Record every (unit, event_id, claim), none of which may have a claim yet, in one atomic
        write: the index sequence of the first, the others following in order. Raises
        BatchRefused (nothing written) if any has one."""
        ack = await self._js.publish_batch(
            [
                Outgoing(self.subject(unit, event_id), _ENCODE(claim), {}, 0)
                for unit, event_id, claim in claims
            ]
        )
        return ack.first_seq

    async def get(self, unit: str, event_id: str) -> Entry | None:
        msg = await self._js.last_on_subject(EVENT_IDS_STREAM, self.subject(unit, event_id))
        if msg is None:
            return None
        try:
            written_at = datetime.fromisoformat(msg.time)
        except ValueError:  # never from a server that answers direct gets
            written_at = _LONG_AGO
        return Entry(_CLAIM.decode(msg.data), msg.seq, written_at)

    async def replace(self, unit: str, event_id: str, claim: Claim, index_seq: int) -> int | None:
        """Overwrite the claim at `index_seq` (0: none yet): the new claim's index sequence, or
        None if someone else wrote first."""
        try:
            ack = await self._js.publish(
                self.subject(unit, event_id),
                _ENCODE(claim),
                {},
                expected_last_subject_seq=index_seq,
            )
        except WrongLastSequence:
            return None
        return ack.seq
