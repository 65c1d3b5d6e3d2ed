"""CONTRACT sections 3-4: an event_id names one event for ever; batches and whole refusals.

`duplicate: true` must hold however late an event is resent: inside JetStream's own duplicate
window and long after it (here a window of 0.5 s, waited out), also when the first answer was
lost or was `unavailable` although the event had been stored.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from gateway.service import Gateway
from gateway.submit import MAX_BYTES, MAX_EVENTS
from plumbing.settings import NatsSettings
from plumbing.subjects import encode_key, event_subject, submit_subject
from schemas.events import Entity
from schemas.registry import Registry
from tests import events as ev
from tests import helpers
from tests.helpers import (
    ACK_LOST,
    SHORT_WINDOW,
    WRITE_LOST,
    error_of,
    log_size,
    log_subjects,
    submit,
    submit_service,
)


async def outlive_the_window(client: Client, event: dict[str, Any]) -> None:
    """Wait until JetStream itself has forgotten the event's msg id."""
    subject = event_subject(event["unit"], Entity(event["type"].split(".")[0]), _entity_id(event))
    await helpers.outlive_the_window(client, event["unit"], event["event_id"], subject)


def _entity_id(event: dict[str, Any]) -> str:
    for key in ("dossier_id", "document_id", "certification_id"):
        if key in event:
            value: str = event[key]
            return value
    raise AssertionError(event)


# --- resends ------------------------------------------------------------------------------------


async def test_resent_duplicate_is_acknowledged_within_the_window(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1")
    first = await submit(client, ev.WARD, event)
    for _ in range(3):
        assert await submit(client, ev.WARD, event) == {**first, "duplicate": True}
    assert await log_size(client) == 1


async def test_resent_duplicate_is_acknowledged_after_the_window(
    short_window: Gateway, client: Client
) -> None:
    info = await client.jetstream().stream_info("ONESTOP_EVENTS")
    assert info.config.duplicate_window == SHORT_WINDOW
    event = ev.received("HS-1")
    first = await submit(client, ev.WARD, event)
    assert first["ok"] is True, first
    await outlive_the_window(client, event)
    assert await submit(client, ev.WARD, event) == {**first, "duplicate": True}
    assert await log_size(client) == 1


async def test_resends_of_every_kind_of_event_are_duplicates_after_the_window(
    short_window: Gateway, client: Client
) -> None:
    events = [
        ev.received("HS-1"),
        ev.dossier_event("deadline_changed", "HS-1"),
        ev.dossier_event("transferred", "HS-1"),
        ev.dossier_event("resolved", "HS-1"),
        ev.dossier_event("result_returned", "HS-1"),
        ev.document("VB-1"),
        ev.copy("SC-1"),
    ]
    firsts = await submit(client, ev.WARD, events)
    assert all(r["ok"] and not r["duplicate"] for r in firsts), firsts
    await outlive_the_window(client, events[0])
    again = await submit(client, ev.WARD, list(reversed(events)))
    assert again == [{**r, "duplicate": True} for r in reversed(firsts)]
    assert await log_size(client) == len(events)


async def test_same_event_id_with_different_content_is_refused_conflict(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1")
    assert (await submit(client, ev.WARD, event))["ok"] is True
    changed = {**event, "procedure_code": "1.000001"}
    reply = await submit(client, ev.WARD, changed)
    assert error_of(reply)[0] == "conflict"
    assert reply["event_id"] == event["event_id"]
    # even as the next, valid event of the dossier: the id is taken
    reused = ev.dossier_event("resolved", "HS-1", event_id=event["event_id"])
    assert error_of(await submit(client, ev.WARD, reused))[0] == "conflict"
    assert await log_size(client) == 1


async def test_same_event_id_with_different_content_is_conflict_after_the_window(
    short_window: Gateway, client: Client
) -> None:
    event = ev.document("VB-1")
    assert (await submit(client, ev.WARD, event))["ok"] is True
    await outlive_the_window(client, event)
    changed = {**event, "sent_via_axis": False}
    assert error_of(await submit(client, ev.WARD, changed))[0] == "conflict"
    reused = ev.copy("SC-1", event_id=event["event_id"])
    assert error_of(await submit(client, ev.WARD, reused))[0] == "conflict"
    assert await log_size(client) == 1


async def test_same_content_written_differently_is_still_the_same_event(
    gateway: Gateway, client: Client
) -> None:
    """A resend whose JSON differs only in key order or spacing is a duplicate, not a conflict."""
    event = ev.received("HS-1")
    first = await submit(client, ev.WARD, event)
    reordered = dict(reversed(list(event.items())))
    spaced = msgspec.json.format(msgspec.json.encode(reordered), indent=4)
    assert await submit(client, ev.WARD, spaced) == {**first, "duplicate": True}
    assert await log_size(client) == 1


async def test_duplicate_of_dossier_received_is_a_duplicate_not_a_conflict(
    gateway: Gateway, client: Client
) -> None:
    received = ev.received("HS-1")
    first = await submit(client, ev.WARD, received)
    assert await submit(client, ev.WARD, received) == {**first, "duplicate": True}
    # while a second, different receipt of the same dossier is a conflict
    second = ev.received("HS-1")
    assert error_of(await submit(client, ev.WARD, second))[0] == "conflict"
    assert await log_size(client) == 1


async def test_duplicate_of_dossier_received_after_the_window_and_after_closing(
    short_window: Gateway, client: Client
) -> None:
    received, resolved = ev.received("HS-1"), ev.dossier_event("resolved", "HS-1")
    firsts = await submit(client, ev.WARD, [received, resolved])
    returned = await submit(client, ev.WARD, ev.dossier_event("result_returned", "HS-1"))
    assert returned["ok"] is True, returned
    await outlive_the_window(client, received)
    assert await submit(client, ev.WARD, received) == {**firsts[0], "duplicate": True}
    assert await submit(client, ev.WARD, resolved) == {**firsts[1], "duplicate": True}
    assert await log_size(client) == 3


# Header values lose surrounding whitespace (incl. U+00A0) and CR/LF on the way through nats-py:
# ids differing only there must still be different events, in the window and after it.
WHITESPACE_IDS = ["E", "E ", " E", "E\u00a0", "E\t", "a b", "a\nb", "a\rb", "a\r\nb"]


async def test_event_ids_differing_only_in_whitespace_are_different_events(
    gateway: Gateway, client: Client
) -> None:
    events = [ev.document(f"VB-{i}", event_id=eid) for i, eid in enumerate(WHITESPACE_IDS)]
    for event in events:  # one by one, so each is judged against the window holding the others
        reply = await submit(client, ev.WARD, event)
        assert (reply["ok"], reply["duplicate"]) == (True, False), (event["event_id"], reply)
    assert await log_size(client) == len(events)


async def test_whitespace_event_ids_in_one_batch_are_different_events(
    gateway: Gateway, client: Client
) -> None:
    events = [ev.copy(f"SC-{i}", event_id=eid) for i, eid in enumerate(WHITESPACE_IDS)]
    replies = await submit(client, ev.WARD, events)
    assert [(r["ok"], r["duplicate"]) for r in replies] == [(True, False)] * len(events), replies
    assert [r["event_id"] for r in replies] == WHITESPACE_IDS
    assert await log_size(client) == len(events)


async def test_repeatable_event_with_whitespace_id_resent_after_the_window_is_stored_once(
    short_window: Gateway, client: Client
) -> None:
    received = ev.received("HS-1")
    repeatable = [
        ev.dossier_event("supplement_requested", "HS-1", event_id="E1 "),
        ev.dossier_event("deadline_changed", "HS-1", event_id="\u00a0E2"),
        ev.dossier_event("transferred", "HS-1", event_id="E\n3"),
    ]
    firsts = await submit(client, ev.WARD, [received, *repeatable])
    assert all(r["ok"] and not r["duplicate"] for r in firsts), firsts
    await outlive_the_window(client, repeatable[0])
    for event, first in zip(repeatable, firsts[1:], strict=True):
        assert await submit(client, ev.WARD, event) == {**first, "duplicate": True}
    assert await log_size(client) == 1 + len(repeatable)


# --- lost answers ---------------------------------------------------------------------------------


async def test_concurrent_identical_submissions_store_the_event_once(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1")
    replies = await asyncio.gather(*(submit(client, ev.WARD, event) for _ in range(20)))
    assert all(r["ok"] for r in replies), replies
    assert sum(not r["duplicate"] for r in replies) == 1
    assert len({r["seq"] for r in replies}) == 1
    assert await log_size(client) == 1


async def test_resend_after_a_lost_answer_is_a_duplicate(gateway: Gateway, client: Client) -> None:
    event = ev.received("HS-1")
    # Submitted with no reply subject: the gateway stores it and its answer goes nowhere.
    await client.publish(submit_subject(ev.WARD), ev.wire(event))
    deadline = time.monotonic() + 10
    while await log_size(client) == 0:
        assert time.monotonic() < deadline, "the unanswered submission was never stored"
        await asyncio.sleep(0.01)
    replies = await asyncio.gather(*(submit(client, ev.WARD, event) for _ in range(20)))
    assert all(r["ok"] and r["duplicate"] for r in replies), replies
    assert len({r["seq"] for r in replies}) == 1
    assert await log_size(client) == 1


async def test_resend_after_unavailable_of_a_stored_event_is_a_duplicate(
    short_window: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    service, nc = await submit_service(nats_settings.servers[0], registry, ACK_LOST)
    try:
        event = ev.received("HS-1")
        first = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(event)))
        assert error_of(first)[0] == "unavailable"
    finally:
        await nc.close()
    assert await log_size(client) == 1
    again = await submit(client, ev.WARD, event)
    assert again["ok"] is True, again
    assert again["duplicate"] is True
    await outlive_the_window(client, event)
    assert await submit(client, ev.WARD, event) == again
    assert await log_size(client) == 1


async def test_resend_after_unavailable_of_an_event_never_stored_is_accepted(
    gateway: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    service, nc = await submit_service(nats_settings.servers[0], registry, WRITE_LOST)
    try:
        events = [ev.received("HS-1"), ev.document("VB-1")]
        firsts = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(events)))
        assert [error_of(r)[0] for r in firsts] == ["unavailable", "unavailable"]
    finally:
        await nc.close()
    assert await log_size(client) == 0
    again = await submit(client, ev.WARD, events)
    assert [(r["ok"], r["duplicate"]) for r in again] == [(True, False), (True, False)], again
    assert await submit(client, ev.WARD, events) == [{**r, "duplicate": True} for r in again]
    # and the dossier goes on as if the lost attempt had never been
    assert (await submit(client, ev.WARD, ev.dossier_event("resolved", "HS-1")))["ok"] is True
    assert await log_size(client) == 3


async def test_event_id_of_a_lost_write_can_be_judged_against_what_came_since(
    gateway: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    """An attempt that never reached the log does not make a later resend a 'duplicate'."""
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"] is True
    resolved = ev.dossier_event("resolved", "HS-1")
    service, nc = await submit_service(nats_settings.servers[0], registry, WRITE_LOST)
    try:
        lost = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(resolved)))
        assert error_of(lost)[0] == "unavailable"
    finally:
        await nc.close()
    withdrawn = await submit(client, ev.WARD, ev.dossier_event("withdrawn", "HS-1"))
    assert withdrawn["ok"] is True, withdrawn
    assert error_of(await submit(client, ev.WARD, resolved))[0] == "conflict"
    assert await log_size(client) == 2


# --- batches --------------------------------------------------------------------------------------


async def test_same_event_id_twice_in_one_batch_identical_is_a_duplicate(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1")
    first, second = await submit(client, ev.WARD, [event, event])
    assert first["duplicate"] is False
    assert second == {**first, "duplicate": True}
    assert await log_size(client) == 1


async def test_same_event_id_twice_in_one_batch_with_different_content_is_conflict(
    gateway: Gateway, client: Client
) -> None:
    event = ev.document("VB-1")
    other = ev.copy("SC-1", event_id=event["event_id"])
    first, second = await submit(client, ev.WARD, [event, other])
    assert first["ok"] is True, first
    assert error_of(second)[0] == "conflict"
    assert second["event_id"] == event["event_id"]
    assert await log_subjects(client) == {f"onestop.events.{ev.WARD}.document.VB-1": 1}


async def test_batch_mixing_good_and_bad_events_stores_exactly_the_good_ones(
    gateway: Gateway, client: Client
) -> None:
    assert (await submit(client, ev.WARD, ev.document("VB-0")))["ok"] is True
    batch: list[Any] = [
        ev.received("HS-1"),  # good
        ev.received("HS-2", channel="online"),  # invalid
        ev.copy("SC-1"),  # good
        ev.received("HS-3", unit=ev.OTHER_WARD),  # unit_mismatch
        ev.dossier_event("resolved", "HS-9"),  # unknown_entity
        ev.document("VB-0"),  # conflict: issued twice
        42,  # malformed element
        ev.dossier_event("resolved", "HS-1"),  # good: after its receipt in this batch
        ev.dossier_event("withdrawn", "HS-1"),  # conflict: already resolved
        ev.document("VB-1"),  # good
    ]
    replies = await submit(client, ev.WARD, batch)
    assert [r["ok"] for r in replies] == [
        True, False, True, False, False, False, False, True, False, True
    ]  # fmt: skip
    assert [r["error"]["code"] for r in replies if not r["ok"]] == [
        "invalid",
        "unit_mismatch",
        "unknown_entity",
        "conflict",
        "malformed",
        "conflict",
    ]
    assert await log_subjects(client) == {
        f"onestop.events.{ev.WARD}.document.VB-0": 1,
        f"onestop.events.{ev.WARD}.dossier.HS-1": 2,
        f"onestop.events.{ev.WARD}.copy.SC-1": 1,
        f"onestop.events.{ev.WARD}.document.VB-1": 1,
    }


async def test_batch_of_1000_events_is_accepted_whole(gateway: Gateway, client: Client) -> None:
    batch = [ev.copy(f"SC-{i}") for i in range(MAX_EVENTS)]
    replies = await submit(client, ev.WARD, batch, timeout=60)
    assert len(replies) == 1000
    assert all(r["ok"] and not r["duplicate"] for r in replies)
    assert [r["event_id"] for r in replies] == [e["event_id"] for e in batch]
    assert len({r["seq"] for r in replies}) == 1000
    assert await log_size(client) == 1000


async def test_batch_of_1001_events_is_refused_whole(gateway: Gateway, client: Client) -> None:
    batch = [ev.copy(f"SC-{i}") for i in range(MAX_EVENTS + 1)]
    reply = await submit(client, ev.WARD, batch)
    assert isinstance(reply, dict)
    assert error_of(reply)[0] == "malformed"
    assert reply["event_id"] is None
    assert await log_size(client) == 0


@pytest.mark.parametrize("payload", [b"42", b'"x"', b"null", b"true", b"1.5", b"", b"   "])
async def test_json_neither_object_nor_array_is_one_malformed_refusal(
    gateway: Gateway, client: Client, payload: bytes
) -> None:
    reply = await submit(client, ev.WARD, payload)
    assert isinstance(reply, dict)
    assert error_of(reply)[0] == "malformed"
    assert reply["event_id"] is None
    assert await log_size(client) == 0


@pytest.mark.parametrize(
    "payload", [b"[1, 2", b'{"type": "copy.certified"', b"\xff\xfe", b"[{}]]", b"{}{}"]
)
async def test_submission_that_is_not_json_is_one_malformed_refusal(
    gateway: Gateway, client: Client, payload: bytes
) -> None:
    reply = await submit(client, ev.WARD, payload)
    assert isinstance(reply, dict)
    assert error_of(reply)[0] == "malformed"
    assert await log_size(client) == 0


def _with_bad_utf8(event: dict[str, Any]) -> bytes:
    """The event's JSON with a byte that is not UTF-8 inside a string (JSON must be UTF-8)."""
    return ev.wire({**event, "procedure_code": "1.00161X"}).replace(b"1.00161X", b"1.00161\xff")


@pytest.mark.parametrize("where", ["occurred_at", "procedure_code", "key"])
async def test_event_that_is_not_utf8_is_one_malformed_refusal(
    gateway: Gateway, client: Client, where: str
) -> None:
    wire = ev.wire(ev.received("HS-1"))
    payload = {
        "occurred_at": wire.replace(b"+07:00", b"+07:0\xc3", 1),
        "procedure_code": _with_bad_utf8(ev.received("HS-1")),
        "key": wire.replace(b'"channel"', b'"chan\xe1nel"'),
    }[where]
    reply = await submit(client, ev.WARD, payload)
    assert isinstance(reply, dict)
    assert error_of(reply)[0] == "malformed"
    assert await log_size(client) == 0


async def test_batch_element_that_is_not_utf8_is_refused_malformed_alone(
    gateway: Gateway, client: Client
) -> None:
    good, bad = ev.copy("SC-1"), ev.received("HS-1")
    payload = b"[" + ev.wire(good) + b"," + _with_bad_utf8(bad) + b', "\xff"]'
    replies = await submit(client, ev.WARD, payload)
    assert [r["ok"] for r in replies] == [True, False, False], replies
    assert [error_of(r)[0] for r in replies[1:]] == ["malformed", "malformed"]
    assert [r["event_id"] for r in replies] == [good["event_id"], bad["event_id"], None]
    assert await log_size(client) == 1


async def test_array_element_that_is_not_an_object_is_refused_malformed_alone(
    gateway: Gateway, client: Client
) -> None:
    good = [ev.copy("SC-1"), ev.copy("SC-2")]
    batch: list[Any] = [good[0], 42, "x", None, [ev.copy("SC-3")], True, good[1]]
    replies = await submit(client, ev.WARD, batch)
    assert len(replies) == len(batch)
    assert [r["ok"] for r in replies] == [True, False, False, False, False, False, True]
    assert {error_of(r)[0] for r in replies[1:-1]} == {"malformed"}
    assert [r["event_id"] for r in replies] == [
        good[0]["event_id"],
        *[None] * 5,
        good[1]["event_id"],
    ]
    assert await log_size(client) == 2


@pytest.mark.parametrize("shape", ["object", "array"])
async def test_submission_larger_than_the_gateway_limit_is_refused_whole(
    gateway: Gateway, client: Client, shape: str
) -> None:
    event = ev.wire(ev.copy("SC-1"))
    body = event if shape == "object" else b"[" + event + b"]"
    payload = body + b" " * (MAX_BYTES + 1 - len(body))
    assert len(payload) == MAX_BYTES + 1
    reply = await submit(client, ev.WARD, payload)
    assert isinstance(reply, dict)
    assert error_of(reply)[0] == "malformed"
    assert await log_size(client) == 0


async def test_submission_at_the_gateway_limit_is_accepted(
    gateway: Gateway, client: Client
) -> None:
    event = ev.wire(ev.copy("SC-1"))
    payload = event + b" " * (MAX_BYTES - len(event))
    reply = await submit(client, ev.WARD, payload)
    assert reply["ok"] is True, reply
    assert await log_size(client) == 1


async def test_event_id_is_in_each_reply_when_readable_and_null_when_not(
    gateway: Gateway, client: Client
) -> None:
    good = ev.copy("SC-1")
    invalid = ev.copy("SC-2", electronic="yes")
    unknown = ev.dossier_event("resolved", "HS-9")
    no_id = ev.copy("SC-3")
    del no_id["event_id"]
    numeric_id = ev.copy("SC-4", event_id=7)
    too_long_id = ev.copy("SC-5", event_id="x" * 129)
    batch: list[Any] = [good, invalid, unknown, no_id, numeric_id, 42, too_long_id, good]
    replies = await submit(client, ev.WARD, batch)
    assert [r["ok"] for r in replies] == [True, False, False, False, False, False, False, True]
    assert [r.get("event_id", "missing") for r in replies[:6]] == [
        good["event_id"],
        invalid["event_id"],
        unknown["event_id"],
        None,
        None,
        None,
    ]
    assert replies[6]["event_id"] in ("x" * 129, None)
    assert replies[7]["event_id"] == good["event_id"]


async def test_refused_whole_reply_carries_event_id_null(gateway: Gateway, client: Client) -> None:
    reply = await submit(client, ev.WARD, b"not json")
    assert reply["event_id"] is None
    assert set(reply) == {"ok", "error", "event_id"}


async def test_resend_lands_on_the_key_of_its_entity(gateway: Gateway, client: Client) -> None:
    """A duplicate answer names the seq of the very message holding the event."""
    event = ev.received("HS/1 ồ")
    await submit(client, ev.WARD, event)
    again = await submit(client, ev.WARD, event)
    js = client.jetstream()
    stored = await js.get_msg("ONESTOP_EVENTS", again["seq"])
    assert stored.subject == f"onestop.events.{ev.WARD}.dossier.{encode_key('HS/1 ồ')}"
    assert stored.data is not None
    assert msgspec.json.decode(stored.data)["event_id"] == event["event_id"]
