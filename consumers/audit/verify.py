"""Verifying that the event log was not altered (CONTRACT section 7), against its seals.

The log is replayed from its first message (plumbing.replay: it leaves nothing behind, so it
also works on a copied log) and the chain recomputed (consumers.audit.log_chain); every
seal in ONESTOP_SEALS must name the same chain at its sequence. A changed, removed or inserted
event before a seal breaks that seal and every later one; a log shorter than a seal says lost
its tail. Events after the last seal are counted, not judged: nothing vouches for them yet.

Every message is also read as an event: one that is not is reported (sequence, subject, why)
and the verification goes on; one not written by the gateway (consumers.audit.provenance) is
evidence of tampering, sealed or not. The seals may come from elsewhere than the city's own
stream (`lienthong verify --witness`: the province's copy, consumers.audit.witness), which whoever
controls the city's servers cannot rewrite together with the log.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from consumers.audit.log_chain import Chain
from consumers.audit.provenance import not_the_gateways
from plumbing.jetstream import Delivery
from plumbing.replay import Unreadable, read_event, replay
from plumbing.streams import SEALS_STREAM, SEALS_SUBJECT
from schemas.seal import Seal

_SEAL = msgspec.json.Decoder(Seal)
MAX_GAPS = 100


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    """Messages in the log (up to the last one when the verification started)."""
    last_seq: int
    seals: int
    """Seals checked."""
    verified_seq: int
    """The sequence of the latest seal the log still matches (0: none)."""
    broken_seal_seq: int | None
    """The sequence of the first seal the log no longer matches: altered at or before it."""
    gaps: list[int]
    """Sequences missing from the log (removed messages), at most the first 100."""
    unsealed: int
    """Events after the last seal: not covered by any seal yet."""
    unreadable: list[Unreadable] = []
    """Messages that are not events this version reads, at most the first 100."""
    foreign: list[Unreadable] = []
    """Messages not written by the gateway (evidence of tampering), at most the first 100."""
    foreign_count: int = 0
    bad_seals: list[Unreadable] = []
    """Messages of the seals' stream that are not seals (evidence of tampering)."""

    @property
    def intact(self) -> bool:
        return (
            self.broken_seal_seq is None
            and not self.gaps
            and not self.foreign_count
            and not self.bad_seals
        )


async def read_seals(
    client: Client, stream: str = SEALS_STREAM
) -> tuple[list[Seal], list[Unreadable]]:
    """Every seal of `stream` (the city's own, or a witness's copy), oldest first, and the
    messages in it that are not seals."""
    js = client.jetstream()
    total = (await js.stream_info(stream)).state.messages
    seals: list[Seal] = []
    bad: list[Unreadable] = []
    if total == 0:
        return seals, bad
    # A witness's mirror has no subjects of its own: it keeps the city's `onestop.seals`.
    sub = await js.subscribe(
        SEALS_SUBJECT, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while len(seals) + len(bad) < total:
            msg = await sub.next_msg(timeout=10)
            try:
                seals.append(_SEAL.decode(msg.data))
            except msgspec.DecodeError as e:
                seq = msg.metadata.sequence.stream
                bad.append(Unreadable(seq=seq, subject=msg.subject, why=f"not a seal: {e}"))
    finally:
        await sub.unsubscribe()
    return seals, bad


async def verify(
    client: Client, seals_from: Client | None = None, stream: str = SEALS_STREAM
) -> Verification:
    """The log of `client` held against the seals in `stream` of `seals_from` (default: the
    city's own seals, on the same connection)."""
    seals, bad_seals = await read_seals(seals_from or client, stream)
    chain = Chain()
    gaps: list[int] = []
    unreadable: list[Unreadable] = []
    foreign: list[Unreadable] = []
    foreign_count = 0
    due = iter(seals)
    next_seal = next(due, None)
    verified = checked = 0
    broken: int | None = None

    def judge_seals_up_to(seq: int) -> None:
        """Judge every seal at or before `seq` against the chain as it stood at its sequence."""
        nonlocal next_seal, verified, checked, broken
        while next_seal is not None and next_seal.seq <= seq:
            checked += 1
            matches = (
                next_seal.seq == chain.seq
                and next_seal.chain == chain.hex
                and next_seal.events == chain.events
            )
            if broken is None:
                if matches:
                    verified = next_seal.seq
                else:
                    broken = next_seal.seq
            next_seal = next(due, None)

    def on_event(delivery: Delivery, msg: Msg) -> bool:
        nonlocal foreign_count
        # A seal between the previous message and this one (a removed message) cannot match.
        judge_seals_up_to(delivery.seq - 1)
        if delivery.seq != chain.seq + 1 and len(gaps) < MAX_GAPS:
            gaps.extend(range(chain.seq + 1, min(delivery.seq, chain.seq + 1 + MAX_GAPS)))
        chain.add(delivery.seq, msg.subject, delivery.stored_ns, msg.headers, msg.data)
        judge_seals_up_to(delivery.seq)
        event = read_event(delivery, msg)
        if isinstance(event, Unreadable) and len(unreadable) < MAX_GAPS:
            unreadable.append(event)
        why = not_the_gateways(msg, None if isinstance(event, Unreadable) else event)
        if why is not None:
            foreign_count += 1
            if len(foreign) < MAX_GAPS:
                foreign.append(Unreadable(seq=delivery.seq, subject=msg.subject, why=why))
        return True

    await replay(client, on_event)
    # Seals beyond the log's end: the log lost events it once held.
    judge_seals_up_to(1 << 62)
    last_sealed = seals[-1].seq if seals else 0
    return Verification(
        events=chain.events,
        last_seq=chain.seq,
        seals=checked,
        verified_seq=verified,
        broken_seal_seq=broken,
        gaps=gaps[:MAX_GAPS],
        unsealed=max(0, chain.seq - last_sealed),
        unreadable=unreadable,
        foreign=foreign,
        foreign_count=foreign_count,
        bad_seals=bad_seals,
    )


def first_disagreement(own: list[Seal], witness: list[Seal]) -> int | None:
    """The event-log sequence of the first seal the witness holds that the city's own seals
    lack or contradict (None: the city's seals agree with every seal the witness holds)."""
    by_seq = {s.seq: s for s in own}
    for seal in witness:
        mine = by_seq.get(seal.seq)
        if mine is None or (mine.chain, mine.events) != (seal.chain, seal.events):
            return seal.seq
    return None
