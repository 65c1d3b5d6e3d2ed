"""The event log (stream ONESTOP_EVENTS): reading an entity's state, appending its next event.

Every append expects the entity subject's last sequence, so two gateway instances racing on one
dossier can never both append: the loser gets `WrongLastSequence` and re-judges.
"""

from __future__ import annotations

import msgspec

from gateway.lifecycle import EntityState
from plumbing.headers import DOSSIER_STATE, MSG_ID
from plumbing.jetstream import JetStream, Outgoing, StoredMessage
from plumbing.streams import EVENTS_STREAM
from schemas.lifecycle import DossierState

_STATE = msgspec.json.Decoder(DossierState)


def dossier_state(message: StoredMessage) -> DossierState | None:
    raw = message.headers.get(DOSSIER_STATE)
    return _STATE.decode(raw) if raw else None


class AppendResult(msgspec.Struct, frozen=True):
    seq: int
    duplicate: bool


class EventLog:
    def __init__(self, js: JetStream) -> None:
        self.js = js
        self._window: float | None = None

    async def duplicate_window(self) -> float:
        """JetStream's msg-id window on the log, in seconds (read once: it is rarely needed)."""
        if self._window is None:
            self._window = await self.js.duplicate_window(EVENTS_STREAM)
        return self._window

    async def entity_state(self, subject: str) -> EntityState:
        last = await self.js.last_on_subject(EVENTS_STREAM, subject)
        if last is None:
            return EntityState()
        return EntityState(last_seq=last.seq, dossier=dossier_state(last))

    async def next_after(self, subject: str, seq: int) -> StoredMessage | None:
        return await self.js.next_on_subject(EVENTS_STREAM, subject, seq + 1)

    async def by_seq(self, seq: int) -> StoredMessage | None:
        return await self.js.by_seq(EVENTS_STREAM, seq)

    async def append_new(self, events: list[tuple[str, bytes, str, DossierState | None]]) -> int:
        """Append the first event of each of several new entities, (subject, payload, message_id,
        state), in one atomic write: the sequence of the first, the others following in order.
        Raises BatchRefused (nothing appended) if any entity has an event already."""
        ack = await self.js.publish_batch(
            [
                Outgoing(subject, payload, _headers(message_id, state, None), 0)
                for subject, payload, message_id, state in events
            ]
        )
        return ack.first_seq

    async def append(
        self,
        subject: str,
        payload: bytes,
        *,
        message_id: str,
        expected_last_seq: int,
        state: DossierState | None,
        extra_headers: dict[str, str] | None = None,
    ) -> AppendResult:
        headers = _headers(message_id, state, extra_headers)
        ack = await self.js.publish(
            subject, payload, headers, expected_last_subject_seq=expected_last_seq
        )
        return AppendResult(seq=ack.seq, duplicate=ack.duplicate)


def _headers(
    message_id: str, state: DossierState | None, extra: dict[str, str] | None
) -> dict[str, str]:
    headers = {MSG_ID: message_id, **(extra or {})}
    if state is not None:
        headers[DOSSIER_STATE] = msgspec.json.encode(state).decode()
    return headers
