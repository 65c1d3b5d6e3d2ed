"""Recording validated events in the log exactly once, in each entity's order.

A batch is split by entity: each entity's events are judged and appended one after another
(each append expects the previous one's sequence), while all entities of the batch proceed at
once, so their reads and writes are pipelined on the connection instead of one round trip per
event. What one entity's refusal or failure does never stops another's.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import msgspec
import structlog

from gateway import lifecycle
from gateway.event_index import RELEASED, Claim, Entry, EventIndex
from gateway.event_log import EventLog
from gateway.lifecycle import EntityState
from gateway.refusals import Conflict, Refusal, Unavailable
from plumbing.dossier_keys import DossierKeys, KeyState, KeyStoreError
from plumbing.errors import LogUnavailable
from plumbing.headers import MSG_ID, msg_id
from plumbing.jetstream import BatchRefused, StoredMessage, WrongLastSequence
from plumbing.key_encryption import KekError
from plumbing.personal_data import comparable, sealed_event
from plumbing.subjects import event_subject
from schemas.codec import ENCODER, EVENT_DECODER
from schemas.events import CopyCertified, DocumentIssued, DossierReceived, Event
from schemas.lifecycle import DossierState
from schemas.replies import Accepted, Reply

RACE_RETRIES = 5
NEW_ENTITIES_AT_ONCE = 200
"""From this many new entities in a batch on, their first events go in one atomic write. Below,
the per-event path is as fast: an atomic batch costs the broker a fixed time of its own
(measured with bench.submit on 2 cores: no gain at 100 events, half the time at 300 and more)."""
CREATION_EVENTS = (DossierReceived, DocumentIssued, CopyCertified)


class Candidate(msgspec.Struct, frozen=True):
    """A valid event, its canonical bytes (what is stored, and compared on resend; with an
    applicant, the intake seals it first: plumbing.personal_data)."""

    event: Event
    body: bytes
    headers: dict[str, str] | None = None


class Intake:
    def __init__(self, log: EventLog, index: EventIndex, keys: DossierKeys | None = None) -> None:
        self.log = log
        self.index = index
        self.keys = keys or DossierKeys(log.js)
        self.logger = structlog.get_logger("lienthong.intake")

    async def record(self, candidates: list[Candidate]) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(candidates)
        try:
            candidates = await self._seal(candidates)
        except Unavailable as u:
            return [u.reply(c.event.event_id) for c in candidates]
        except (KeyStoreError, KekError) as failure:  # nothing appended without its seal
            self.logger.error("intake.sealing_failed", error=str(failure))
            return [_lost_error().reply(c.event.event_id) for c in candidates]
        by_entity: dict[str, list[int]] = defaultdict(list)
        first_of: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        for i, c in enumerate(candidates):
            e = c.event
            if (first := first_of.setdefault(e.event_id, i)) != i:
                repeats.append((i, first))  # the same event_id twice in one batch
                continue
            by_entity[event_subject(e.unit, e.entity, e.entity_id)].append(i)
        new = [
            (subject, idx[0])
            for subject, idx in by_entity.items()
            if len(idx) == 1
            and isinstance(candidates[idx[0]].event, CREATION_EVENTS)
            and candidates[idx[0]].headers is None
        ]
        claimed: dict[int, int] = {}
        if len(new) >= NEW_ENTITIES_AT_ONCE:
            claimed = await self._create_new(new, candidates, replies)
            by_entity = {s: idx for s, idx in by_entity.items() if replies[idx[0]] is None}
        await asyncio.gather(
            *(
                self._entity(subject, idx, candidates, replies, claimed)
                for subject, idx in by_entity.items()
            )
        )
        for i, first in repeats:
            replies[i] = _repeat(replies[first], candidates[first], candidates[i])
        return [r if r is not None else _lost() for r in replies]

    async def _seal(self, candidates: list[Candidate]) -> list[Candidate]:
        """Every applicant sealed under its dossier's key (made now for a new dossier) before
        anything is appended: the log never holds one in the clear."""
        personal = [
            i
            for i, c in enumerate(candidates)
            if isinstance(c.event, DossierReceived) and c.event.applicant is not None
        ]
        if not personal:
            return candidates
        made: dict[tuple[str, str], bytes] = {}
        if len(personal) >= NEW_ENTITIES_AT_ONCE:
            dossiers = [(candidates[i].event.unit, candidates[i].event.entity_id) for i in personal]
            made = await self.keys.create_all(dossiers)

        async def sealed(c: Candidate) -> Candidate:
            event = c.event
            assert isinstance(event, DossierReceived)
            key = made.get((event.unit, event.dossier_id))
            if key is None:
                key = await self.keys.get_or_create(event.unit, event.dossier_id)
            stored = sealed_event(event, key)
            return Candidate(stored, ENCODER.encode(stored), c.headers)

        out = list(candidates)
        done = await asyncio.gather(*(sealed(out[i]) for i in personal))
        for i, c in zip(personal, done, strict=True):
            out[i] = c
        return out

    async def _same(self, stored_data: bytes, c: Candidate) -> bool:
        """Whether the stored event is the candidate's: the same bytes, or, with a sealed
        applicant, the same but for the sealing (and for the applicant once it was erased)."""
        if stored_data == c.body:
            return True
        event = c.event
        if not isinstance(event, DossierReceived):
            return False
        try:
            stored = EVENT_DECODER.decode(stored_data)
        except msgspec.DecodeError:
            return False
        if not isinstance(stored, DossierReceived):
            return False
        erased = (
            stored.sealed_applicant is not None
            and event.sealed_applicant is None
            and await self.keys.state(event.unit, event.dossier_id) is KeyState.ERASED
        )
        return comparable(stored, erased=erased) == comparable(event, erased=erased)

    async def _create_new(
        self, new: list[tuple[str, int]], candidates: list[Candidate], replies: list[Reply | None]
    ) -> dict[int, int]:
        """The fast path for what most large batches are: new entities' first events. All their
        claims in one atomic write, then all the events in one: two round trips for the lot
        instead of two per event. When either write does not go through whole (an event_id or
        an entity that exists, a race), nothing is answered and the per-event path judges each;
        returned are the index sequences of the claims written here, so that it goes on from
        them as its own (and frees those of events it refuses).
        """
        appends: list[tuple[str, bytes, str, DossierState | None]] = []
        for subject, i in new:
            c = candidates[i]
            try:
                dossier = lifecycle.apply(EntityState(), c.event)
            except Refusal:
                return {}
            appends.append((subject, c.body, msg_id(c.event.unit, c.event.event_id), dossier))
        claims = [
            (candidates[i].event.unit, candidates[i].event.event_id, Claim(subject, 0))
            for subject, i in new
        ]
        try:
            first_claim = await self.index.create_all(claims)
        except (BatchRefused, LogUnavailable, Unavailable):
            return {}  # none written (or not known: the per-event path reads before it writes)
        try:
            first = await self.log.append_new(appends)
        except (BatchRefused, LogUnavailable, Unavailable):
            return {i: first_claim + k for k, (_, i) in enumerate(new)}
        for k, (_, i) in enumerate(new):
            event_id = candidates[i].event.event_id
            replies[i] = Accepted(seq=first + k, duplicate=False, event_id=event_id)
        return {}

    async def _entity(
        self,
        subject: str,
        indices: list[int],
        candidates: list[Candidate],
        replies: list[Reply | None],
        claimed: dict[int, int],
    ) -> None:
        # None: not read yet. A creation event's entity is then assumed new (its append expects
        # sequence 0; if the entity exists after all, `_one` re-reads and re-judges), which saves
        # a read for most events. A refusal leaves the state as it was: still unread after a
        # refused creation, whose assumption proved nothing about the entity.
        state: EntityState | None = None
        for n, i in enumerate(indices):
            c = candidates[i]
            try:
                if state is None and not isinstance(c.event, CREATION_EVENTS):
                    state = await self.log.entity_state(subject)
                reply, state = await self._one(subject, state or EntityState(), c, claimed.get(i))
            except Unavailable as u:
                return _answer_rest(u, indices[n:], candidates, replies)
            except LogUnavailable as e:  # the transport's error, as the contract's reply
                return _answer_rest(Unavailable(str(e)), indices[n:], candidates, replies)
            except Refusal as r:
                replies[i] = r.reply(c.event.event_id)
                continue
            except Exception as e:  # a bug or an error nothing maps: still answer every event
                self.logger.error("intake.failed", error=type(e).__name__)
                return _answer_rest(_lost_error(), indices[n:], candidates, replies)
            replies[i] = reply

    async def _one(
        self, subject: str, state: EntityState, c: Candidate, mine: int | None = None
    ) -> tuple[Accepted, EntityState]:
        """`mine`: the index sequence of the claim this request wrote for the event, if any."""
        event = c.event
        unit, event_id = event.unit, event.event_id
        for _ in range(RACE_RETRIES):
            try:
                dossier = lifecycle.apply(state, event)
            except Refusal:
                if (dup := await self._stored(c)) is not None:
                    return dup, await self.log.entity_state(subject)
                if mine is not None:
                    # Our claim's write was refused (another event came first) and this event
                    # is refused now: free its event_id rather than hold it for the window.
                    await self.index.replace(unit, event_id, RELEASED, mine)
                raise
            claim = Claim(subject, state.last_seq)
            if (written := await self.index.create(unit, event_id, claim)) is None:
                found = await self.index.get(unit, event_id)
                if found is None:
                    raise Unavailable("the event-id index changed during the write; retry")
                if (dup := await self._stored(c, found.claim)) is not None:
                    # The state may have been assumed (a creation event): learn the real one.
                    return dup, await self.log.entity_state(subject)
                written = await self._take_over(unit, event_id, claim, found, mine)
            mine = written
            try:
                result = await self.log.append(
                    subject,
                    c.body,
                    message_id=msg_id(unit, event_id),
                    expected_last_seq=state.last_seq,
                    state=dossier,
                    extra_headers=c.headers,
                )
            except WrongLastSequence:
                state = await self.log.entity_state(subject)  # another instance appended first
                continue
            if result.duplicate:  # caught by JetStream's own window: a resend still in flight
                stored = await self.log.by_seq(result.seq)
                if stored is None or not await self._same(stored.data, c):
                    raise _reused(event_id)
                dup = Accepted(seq=result.seq, duplicate=True, event_id=event_id)
                return dup, await self.log.entity_state(subject)
            return (
                Accepted(seq=result.seq, duplicate=False, event_id=event_id),
                EntityState(last_seq=result.seq, dossier=dossier),
            )
        raise Unavailable("the dossier is being changed by many writers at once; retry")

    async def _take_over(
        self, unit: str, event_id: str, claim: Claim, found: Entry, mine: int | None
    ) -> int | None:
        """Make `claim` the event_id's claim in place of `found`, whose write is not in the log.

        That write may still be in flight: replaced now, the index would not point where it
        lands, and a resend after JetStream's window would be stored again. So `found` is kept
        when it says what `claim` says (whichever write lands, it is where both point), and
        replaced only when it is this call's own (its write was refused), released, or older
        than the window (a write is given up long before: it can no longer land).
        """
        if found.claim == claim:
            return mine
        if found.seq != mine and found.claim != RELEASED:
            age = (datetime.now(UTC) - found.written_at).total_seconds()
            if age < await self.log.duplicate_window():
                raise Unavailable("this event_id is being submitted concurrently; retry")
        written = await self.index.replace(unit, event_id, claim, found.seq)
        if written is None:
            raise Unavailable("this event_id is being submitted concurrently; retry")
        return written

    async def stored(
        self, unit: str, event_id: str, claim: Claim | None = None
    ) -> StoredMessage | None:
        """The event stored under this event_id, or None: the message right after its claim
        (read from the index unless given), when it carries the event_id's msg id."""
        if claim is None:
            found = await self.index.get(unit, event_id)
            if found is None:
                return None
            claim = found.claim
        stored = await self.log.next_after(claim.subject, claim.after_seq)
        if stored is None or stored.headers.get(MSG_ID) != msg_id(unit, event_id):
            return None
        return stored

    async def _stored(self, c: Candidate, claim: Claim | None = None) -> Accepted | None:
        """The original reply if this event_id is in the log already; Conflict if it differs."""
        event = c.event
        stored = await self.stored(event.unit, event.event_id, claim)
        if stored is None:
            return None
        if not await self._same(stored.data, c):
            raise _reused(event.event_id)
        return Accepted(seq=stored.seq, duplicate=True, event_id=event.event_id)


def _answer_rest(
    u: Unavailable, indices: list[int], candidates: list[Candidate], replies: list[Reply | None]
) -> None:
    """An entity's later events cannot be judged without knowing how this one ended."""
    for j in indices:
        replies[j] = u.reply(candidates[j].event.event_id)


def _reused(event_id: str) -> Conflict:
    return Conflict(
        f"event_id {event_id!r} was already used for a different event; "
        "an event_id names one event for ever",
        field="event_id",
    )


def _repeat(first_reply: Reply | None, first: Candidate, again: Candidate) -> Reply:
    event_id = again.event.event_id
    if comparable(first.event, erased=False) != comparable(again.event, erased=False):
        return _reused(event_id).reply(event_id)
    if isinstance(first_reply, Accepted):
        return Accepted(seq=first_reply.seq, duplicate=True, event_id=event_id)
    return first_reply if first_reply is not None else _lost()


def _lost_error() -> Unavailable:
    return Unavailable("the gateway could not finish this event; retry")


def _lost() -> Reply:
    return _lost_error().reply()
