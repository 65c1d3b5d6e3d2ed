"""CONTRACT section 4: replies and errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.aio.client import Client
from structlog.testing import capture_logs

from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing.errors import LogUnavailable
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings
from plumbing.subjects import event_subject
from schemas.events import Entity
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import connected, faulty_jetstream, log_size, submit, submit_service


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


# --- unexpected errors: every event still answered ----------------------------------------------

CONNECTION_TROUBLE = [
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
]


def _failing_publish(
    error: type[Exception], real: Callable[..., Awaitable[None]], prefixes: tuple[str, ...]
) -> Callable[..., Awaitable[None]]:
    async def publish(subject: str, *args: Any, **kwargs: Any) -> None:
        if subject.startswith(prefixes):
            raise error()
        await real(subject, *args, **kwargs)

    return publish


@pytest.mark.parametrize("error", CONNECTION_TROUBLE)
async def test_connection_trouble_on_the_event_log_is_unavailable(
    nats_server: NatsServer, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(nats_server.url) as nc:
        monkeypatch.setattr(nc, "publish", _failing_publish(error, nc.publish, ("",)))
        js = JetStream(nc, 1.0)
        with pytest.raises(LogUnavailable, match=error.__name__):
            await js.publish("onestop.events.x", b"{}", {})
        with pytest.raises(LogUnavailable, match=error.__name__):
            await js.last_on_subject("ONESTOP_EVENTS", "onestop.events.x")


@pytest.mark.parametrize("error", CONNECTION_TROUBLE)
async def test_connection_trouble_is_answered_unavailable_event_by_event(
    gateway: Gateway,
    nats_server: NatsServer,
    error: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [ev.received("HS-1"), ev.received("HS-2", channel="online"), ev.copy("SC-1")]
    # Only the gateway's JetStream requests fail; the submission and its reply still travel.
    stores = ("onestop.events.", "onestop.eventids.", "$JS.API.DIRECT.")
    failing = _failing_publish(error, gateway.client.publish, stores)
    monkeypatch.setattr(gateway.client, "publish", failing)
    async with connected(nats_server.url) as client:
        replies = await submit(client, ev.WARD, events)
        monkeypatch.undo()
        assert [r["event_id"] for r in replies] == [e["event_id"] for e in events]
        assert [r["error"]["code"] for r in replies] == ["unavailable", "invalid", "unavailable"]
        assert error.__name__ in replies[0]["error"]["message"]
        assert await log_size(client) == 0
        # nothing was stored, so a resend is accepted
        again = await submit(client, ev.WARD, [events[0], events[2]])
        assert [(r["ok"], r["duplicate"]) for r in again] == [(True, False)] * 2, again


async def _a_bug_on_one_document(subject: str) -> None:
    """Writes to one entity fail with an error nothing maps (a bug)."""
    if subject == event_subject(ev.WARD, Entity.DOCUMENT, "VB-1"):
        raise KeyError("a bug")


async def test_unexpected_error_on_one_entity_is_unavailable_for_its_events_only(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    service, nc = await submit_service(
        nats_settings.servers[0], registry, faulty_jetstream(before=_a_bug_on_one_document)
    )
    events = [ev.copy("SC-1"), ev.document("VB-1"), ev.document("VB-1"), ev.received("HS-1")]
    try:
        with capture_logs() as logged:
            replies = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(events)))
    finally:
        await nc.close()
    assert [r["event_id"] for r in replies] == [e["event_id"] for e in events]
    assert [r["ok"] for r in replies] == [True, False, False, True], replies
    assert [r["error"]["code"] for r in replies[1:3]] == ["unavailable", "unavailable"]
    assert {"event": "intake.failed", "error": "KeyError", "log_level": "error"} in logged
    assert await log_size(client) == 2


async def test_unexpected_error_leaves_no_event_unanswered(
    gateway: Gateway,
    nats_settings: NatsSettings,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last resort: the refusals already found stand, every other event is unavailable."""
    service, nc = await submit_service(nats_settings.servers[0], registry)

    async def broken(candidates: Any) -> Any:
        raise RuntimeError(f"a bug quoting {candidates}")

    monkeypatch.setattr(service.intake, "record", broken)
    applicant = {"name": "Nguyễn Văn A", "id_number": "052090000001"}
    good, bad = ev.received("HS-1", applicant=applicant), ev.copy("SC-1", electronic="yes")
    try:
        with capture_logs() as logged:
            batch = msgspec.json.decode(await service.submit(ev.WARD, ev.wire([good, bad, 42])))
            one = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(good)))
    finally:
        await nc.close()
    assert [r["event_id"] for r in batch] == [good["event_id"], bad["event_id"], None]
    assert [r["error"]["code"] for r in batch] == ["unavailable", "invalid", "malformed"]
    assert one == batch[0]
    failures = [e for e in logged if e["event"] == "submit.failed"]
    assert failures == [
        {"event": "submit.failed", "log_level": "error", "unit": ev.WARD, "events": n,
         "error": "RuntimeError"}
        for n in (3, 1)
    ]  # fmt: skip
    assert "Nguyễn" not in repr(logged)
