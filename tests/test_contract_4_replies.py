"""CONTRACT section 4: replies and errors."""

from __future__ import annotations

from nats.aio.client import Client

from gateway.service import Gateway
from tests import events as ev
from tests.helpers import log_size, submit


async def test_accepted_reply_carries_seq_and_event_id(gateway: Gateway, client: Client) -> None:
    event = ev.received("HS-1")
    reply = await submit(client, ev.WARD, event)
    assert reply == {"ok": True, "seq": 1, "duplicate": False, "event_id": event["event_id"]}


async def test_resent_event_is_a_duplicate_with_its_original_seq(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1")
    first = await submit(client, ev.WARD, event)
    again = await submit(client, ev.WARD, event)
    assert again == {**first, "duplicate": True}
    assert await log_size(client) == 1


async def test_batch_is_answered_event_by_event_in_order(gateway: Gateway, client: Client) -> None:
    good = ev.received("HS-2")
    bad = ev.received("HS-3", occurred_at="2021-04-05T08:00:00")  # no offset
    unknown = ev.dossier_event("resolved", "HS-never")
    replies = await submit(client, ev.WARD, [good, bad, unknown])
    assert [r["ok"] for r in replies] == [True, False, False]
    assert [r["event_id"] for r in replies] == [
        good["event_id"],
        bad["event_id"],
        unknown["event_id"],
    ]
    assert replies[1]["error"]["code"] == "invalid"
    assert replies[1]["error"]["field"] == "occurred_at"
    assert replies[2]["error"]["code"] == "unknown_entity"
    assert await log_size(client) == 1


async def test_more_than_1000_events_are_refused_whole(gateway: Gateway, client: Client) -> None:
    batch = [ev.copy(f"C-{i}") for i in range(1001)]
    reply = await submit(client, ev.WARD, batch)
    assert isinstance(reply, dict)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "malformed"
    assert await log_size(client) == 0


async def test_not_json_is_refused_whole_as_malformed(gateway: Gateway, client: Client) -> None:
    reply = await submit(client, ev.WARD, b'{"type": "dossier.received", ')
    assert reply["ok"] is False
    assert reply["error"]["code"] == "malformed"


async def test_resent_received_then_next_event_in_one_batch(
    gateway: Gateway, client: Client
) -> None:
    """A system resending a dossier's received with its next event: judged against the log."""
    received = ev.received("HS-RESEND")
    assert (await submit(client, ev.WARD, received))["ok"] is True
    resolved = ev.dossier_event("resolved", "HS-RESEND")
    replies = await submit(client, ev.WARD, [received, resolved])
    assert replies[0]["duplicate"] is True
    assert replies[1]["ok"] is True, replies[1]
    assert replies[1]["duplicate"] is False
