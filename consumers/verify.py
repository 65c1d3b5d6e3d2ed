"""Verifying that the event log was not altered (CONTRACT section 7), against its seals.

The log is replayed from its first message (consumers.replay: it leaves nothing behind, so it
also works on a copied log) and the chain recomputed (consumers.log_chain); every
seal in ONESTOP_SEALS must name the same chain at its sequence. A changed, removed or inserted
event before a seal breaks that seal and every later one; a log shorter than a seal says lost
its tail. Events after the last seal are counted, not judged: nothing vouches for them yet.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from consumers.log_chain import Chain
from consumers.replay import replay
from gateway.jetstream import Delivery
from gateway.streams import SEALS_STREAM, SEALS_SUBJECT
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

    @property
    def intact(self) -> bool:
        return self.broken_seal_seq is None and not self.gaps


async def read_seals(client: Client) -> list[Seal]:
    """Every seal, oldest first."""
    js = client.jetstream()
    total = (await js.stream_info(SEALS_STREAM)).state.messages
    seals: list[Seal] = []
    if total == 0:
        return seals
    sub = await js.subscribe(
        SEALS_SUBJECT, stream=SEALS_STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while len(seals) < total:
            seals.append(_SEAL.decode((await sub.next_msg(timeout=10)).data))
    finally:
        await sub.unsubscribe()
    return seals


async def verify(client: Client) -> Verification:
    seals = await read_seals(client)
    chain = Chain()
    gaps: list[int] = []
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
        # A seal between the previous message and this one (a removed message) cannot match.
        judge_seals_up_to(delivery.seq - 1)
        if delivery.seq != chain.seq + 1 and len(gaps) < MAX_GAPS:
            gaps.extend(range(chain.seq + 1, min(delivery.seq, chain.seq + 1 + MAX_GAPS)))
        chain.add(delivery.seq, msg.subject, delivery.stored_ns, msg.headers, msg.data)
        judge_seals_up_to(delivery.seq)
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
    )
