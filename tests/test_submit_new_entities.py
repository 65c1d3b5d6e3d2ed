"""Large batches of new entities go to the log in one atomic write (gateway.intake's fast path),
and every rule of CONTRACT sections 3 and 4 holds as on the per-event path: each event its own
sequence, duplicates for ever, a refusal for the one event that breaks a rule and none for the
others, nothing stored twice."""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.client import Client

from gateway.intake import NEW_ENTITIES_AT_ONCE
from gateway.service import Gateway
from plumbing.jetstream import JetStream, Outgoing, PubAck
from plumbing.settings import NatsSettings
from plumbing.streams import EVENTS_STREAM
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import (
    error_of,
    last_on_subject,
    log_size,
    outlive_the_window,
    submit,
    submit_service,
)

N = NEW_ENTITIES_AT_ONCE + 50


def receipts(prefix: str, n: int = N) -> list[dict[str, Any]]:
    return [ev.received(f"{prefix}-{k:04d}") for k in range(n)]


class Counting(JetStream):
    """Counts single writes and atomic batches."""

    writes = 0
    batches = 0

    async def publish(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        expected_last_subject_seq: int | None = None,
    ) -> PubAck:
        Counting.writes += 1
        return await super().publish(
            subject, payload, headers, expected_last_subject_seq=expected_last_subject_seq
        )

    async def publish_batch(self, messages: list[Outgoing]) -> PubAck:
        Counting.batches += 1
        return await super().publish_batch(messages)


async def test_new_entities_go_in_two_atomic_writes_each_event_with_its_own_sequence(
    gateway: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    service, nc = await submit_service(nats_settings.servers[0], registry, Counting)
    events = receipts("HS-F")
    try:
        replies = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(events)))
    finally:
        await nc.close()
    assert (Counting.batches, Counting.writes) == (2, 0)
    assert [(r["ok"], r["duplicate"], r["event_id"]) for r in replies] == [
        (True, False, e["event_id"]) for e in events
    ]
    seqs = [r["seq"] for r in replies]
    assert seqs == list(range(1, N + 1))
    js = client.jetstream()
    for seq, event in zip(seqs[:: N // 7], events[:: N // 7], strict=True):
        stored = await js.get_msg(EVENTS_STREAM, seq)
        assert stored.data is not None
        assert msgspec.json.decode(stored.data)["event_id"] == event["event_id"]
        assert stored.subject == f"onestop.events.{ev.WARD}.dossier.{event['dossier_id']}"
    state = await last_on_subject(client, f"onestop.events.{ev.WARD}.dossier.HS-F-0003")
    assert state["dossier_id"] == "HS-F-0003"


async def test_a_batch_of_new_entities_resent_after_the_window_is_all_duplicates(
    short_window: Gateway, client: Client
) -> None:
    events = receipts("HS-W")
    first = await submit(client, ev.WARD, events, timeout=30)
    assert all(r["ok"] and not r["duplicate"] for r in first)
    subject = f"onestop.events.{ev.WARD}.dossier.HS-W-0000"
    await outlive_the_window(client, ev.WARD, events[-1]["event_id"], subject)
    again = await submit(client, ev.WARD, events, timeout=30)
    assert again == [{**r, "duplicate": True} for r in first]
    assert await log_size(client) == N


async def test_an_entity_that_exists_is_refused_alone_and_its_event_id_stays_free(
    gateway: Gateway, client: Client
) -> None:
    assert (await submit(client, ev.WARD, ev.received("HS-E-0007")))["ok"] is True
    events = receipts("HS-E")  # HS-E-0007 received twice: its event alone is a conflict
    replies = await submit(client, ev.WARD, events, timeout=30)
    assert [error_of(r)[0] for r in replies if not r["ok"]] == ["conflict"]
    assert not replies[7]["ok"]
    assert sum(r["ok"] for r in replies) == N - 1
    assert await log_size(client) == 1 + N - 1
    # The refused event's id was claimed by the batch's first write: freed, it is usable at once.
    reused = ev.received("HS-E-NEW", event_id=events[7]["event_id"])
    assert (await submit(client, ev.WARD, reused))["ok"] is True


async def test_an_event_id_stored_before_is_a_duplicate_among_new_entities(
    gateway: Gateway, client: Client
) -> None:
    events = receipts("HS-D")
    earlier = await submit(client, ev.WARD, events[3])
    replies = await submit(client, ev.WARD, events, timeout=30)
    assert replies[3] == {**earlier, "duplicate": True}
    assert [r["ok"] and not r["duplicate"] for r in replies].count(True) == N - 1
    assert await log_size(client) == N
