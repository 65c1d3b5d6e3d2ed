"""CONTRACT section 5, inbound: the province's messages to a unit on onestop.inbound.<unit>."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from gateway.inbound import inbound_event_id
from gateway.service import Gateway
from plumbing.headers import ORIGIN
from plumbing.records import RECORDS_BUCKET, record_key
from plumbing.streams import EVENTS_STREAM
from plumbing.subjects import event_subject, inbound_subject
from schemas.events import Entity
from tests import events as ev
from tests import helpers
from tests.helpers import last_on_subject, log_size, submit


def envelope(kind: str, dossier_id: str, message_id: str, **body: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "kind": kind,
        "unit": ev.WARD,
        "dossier_id": dossier_id,
        "sent_at": "2021-05-06T09:00:00+07:00",
        "body": body,
    }


async def send(client: Client, message: dict[str, Any], unit: str = ev.WARD) -> Any:
    reply = await client.request(inbound_subject(unit), msgspec.json.encode(message), timeout=10)
    return msgspec.json.decode(reply.data)


async def received_dossier(client: Client, dossier_id: str) -> None:
    reply = await submit(client, ev.WARD, ev.received(dossier_id))
    assert reply["ok"] is True


async def test_result_resolves_the_dossier_at_resolved_at(gateway: Gateway, client: Client) -> None:
    await received_dossier(client, "HS-IN-1")
    result = envelope(
        "result",
        "HS-IN-1",
        "52-result-1",
        outcome="approved",
        resolved_at="2021-05-06T08:30:00+07:00",
    )
    assert await send(client, result) == {"ok": True}
    last = await client.jetstream().get_last_msg(
        EVENTS_STREAM, event_subject(ev.WARD, Entity.DOSSIER, "HS-IN-1")
    )
    assert last.data is not None
    stored = msgspec.json.decode(last.data)
    assert stored["type"] == "dossier.resolved"
    assert stored["occurred_at"] == "2021-05-06T08:30:00+07:00"
    assert last.headers is not None
    assert last.headers[ORIGIN] == "province"
    # The unit may not resolve it again: the province's result closed it.
    again = await submit(client, ev.WARD, ev.dossier_event("resolved", "HS-IN-1"))
    assert again["error"]["code"] == "conflict"


async def test_inbound_resend_is_acknowledged_again_and_stored_once(
    gateway: Gateway, client: Client
) -> None:
    await received_dossier(client, "HS-IN-2")
    result = envelope(
        "result",
        "HS-IN-2",
        "52-result-2",
        outcome="refused",
        resolved_at="2021-05-06T08:30:00+07:00",
    )
    before = await log_size(client)
    assert await send(client, result) == {"ok": True}
    assert await send(client, result) == {"ok": True}
    assert await log_size(client) == before + 1


async def test_result_for_a_dossier_never_received_is_unknown_entity(
    gateway: Gateway, client: Client
) -> None:
    result = envelope(
        "result",
        "HS-NEVER",
        "52-result-3",
        outcome="approved",
        resolved_at="2021-05-06T08:30:00+07:00",
    )
    reply = await send(client, result)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unknown_entity"
    assert await log_size(client) == 0


async def test_result_on_a_closed_dossier_is_a_conflict(gateway: Gateway, client: Client) -> None:
    await received_dossier(client, "HS-IN-4")
    assert (await submit(client, ev.WARD, ev.dossier_event("withdrawn", "HS-IN-4")))["ok"]
    result = envelope(
        "result",
        "HS-IN-4",
        "52-result-4",
        outcome="approved",
        resolved_at="2021-05-06T08:30:00+07:00",
    )
    before = await log_size(client)
    reply = await send(client, result)
    assert reply["error"]["code"] == "conflict"
    assert await log_size(client) == before


async def test_malformed_envelope_is_invalid_and_names_the_field(
    gateway: Gateway, client: Client
) -> None:
    await received_dossier(client, "HS-IN-5")
    bad = envelope("result", "HS-IN-5", "52-result-5", outcome="approved")  # no resolved_at
    reply = await send(client, bad)
    assert reply["error"]["code"] == "invalid"
    assert reply["error"]["field"] == "body.resolved_at"
    wrong_way = envelope("transfer", "HS-IN-5", "52-x")
    assert (await send(client, wrong_way))["error"]["field"] == "kind"
    other_unit = {**envelope("receipt", "HS-IN-5", "52-y"), "unit": ev.OTHER_WARD}
    assert (await send(client, other_unit))["error"]["code"] == "unit_mismatch"


async def test_supplement_request_becomes_a_dossier_event(gateway: Gateway, client: Client) -> None:
    await received_dossier(client, "HS-IN-6")
    request = envelope("supplement_request", "HS-IN-6", "52-supp-1", note="thiếu giấy tờ")
    assert await send(client, request) == {"ok": True}
    last = await client.jetstream().get_last_msg(
        EVENTS_STREAM, event_subject(ev.WARD, Entity.DOSSIER, "HS-IN-6")
    )
    assert last.data is not None
    assert msgspec.json.decode(last.data)["type"] == "dossier.supplement_requested"


async def test_receipt_is_recorded_on_the_dossier_not_in_the_log(
    gateway: Gateway, client: Client
) -> None:
    await received_dossier(client, "HS-IN-7")
    before = await log_size(client)
    receipt = envelope("receipt", "HS-IN-7", "52-receipt-1", note="đã tiếp nhận")
    assert await send(client, receipt) == {"ok": True}
    assert await send(client, receipt) == {"ok": True}
    assert await log_size(client) == before
    kv = await client.jetstream().key_value(RECORDS_BUCKET)
    entry = await kv.get(record_key(ev.WARD, "HS-IN-7", "in", "52-receipt-1"))
    assert entry.value is not None
    assert msgspec.json.decode(entry.value)["kind"] == "receipt"


async def test_a_receipt_for_a_dossier_never_received_is_unknown_entity(
    gateway: Gateway, client: Client
) -> None:
    receipt = envelope("receipt", "HS-NEVER-R", "52-receipt-never", note="đã tiếp nhận")
    reply = await send(client, receipt)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unknown_entity"
    kv = await client.jetstream().key_value(RECORDS_BUCKET)
    with pytest.raises(KeyNotFoundError):
        await kv.get(key_of(receipt))


@pytest.mark.parametrize(
    "payload", [b"not json", b"[1, 2]", b'"a string"', b"42", b"{", b'{"message_id": "\xff"}']
)
async def test_an_envelope_that_is_not_a_json_object_is_malformed(
    gateway: Gateway, client: Client, payload: bytes
) -> None:
    reply = await client.request(inbound_subject(ev.WARD), payload, timeout=10)
    answer = msgspec.json.decode(reply.data)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "malformed"


async def outlive_the_window(client: Client, dossier_id: str, message_id: str) -> None:
    subject = event_subject(ev.WARD, Entity.DOSSIER, dossier_id)
    await helpers.outlive_the_window(client, ev.WARD, inbound_event_id(message_id), subject)


@pytest.mark.parametrize("after_the_window", [False, True])
async def test_a_resend_a_day_later_is_acknowledged_and_stored_once(
    short_window: Gateway, client: Client, after_the_window: bool
) -> None:
    d = "HS-IN-8"
    await received_dossier(client, d)
    supplement = envelope("supplement_request", d, "52-supp-8", note="thiếu giấy tờ")
    result = envelope(
        "result", d, "52-result-8", outcome="approved", resolved_at="2021-05-07T08:30:00+07:00"
    )
    records = [envelope(kind, d, f"52-{kind}-8", note="ghi chú") for kind in NOTE_KINDS]
    first = [supplement, result, *records]
    for message in first:
        assert await send(client, message) == {"ok": True}, message["kind"]
    before = await log_size(client)
    kv = await client.jetstream().key_value(RECORDS_BUCKET)
    kept = {m["message_id"]: (await kv.get(key_of(m))).value for m in records}
    if after_the_window:
        await outlive_the_window(client, d, "52-supp-8")
        await outlive_the_window(client, d, "52-result-8")
    for message in first:
        again = {**message, "sent_at": "2021-05-07T09:00:00+07:00"}
        assert await send(client, again) == {"ok": True}, message["kind"]
    assert await log_size(client) == before
    for m in records:
        assert (await kv.get(key_of(m))).value == kept[m["message_id"]]  # the first, untouched
    stored = await client.jetstream().get_last_msg(
        EVENTS_STREAM, event_subject(ev.WARD, Entity.DOSSIER, d)
    )
    assert stored.data is not None
    assert msgspec.json.decode(stored.data)["type"] == "dossier.resolved"


NOTE_KINDS = ("receipt", "status", "rejected")


def key_of(message: dict[str, Any]) -> str:
    return record_key(ev.WARD, message["dossier_id"], "in", message["message_id"])


async def test_timestamps_finer_than_microseconds_are_cut_not_rounded(
    gateway: Gateway, client: Client
) -> None:
    await received_dossier(client, "HS-T")
    receipt = {**envelope("receipt", "HS-T", "52-t-1"), "sent_at": "2021-05-06T09:00:00.1234567Z"}
    assert await send(client, receipt) == {"ok": True}
    # Rounded, .9999996 s would be 17:00:00Z on 30 April: 1 May in Vietnam, the wrong report.
    result = envelope(
        "result", "HS-T", "52-t-2", outcome="approved", resolved_at="2021-04-30T16:59:59.9999996Z"
    )
    assert await send(client, result) == {"ok": True}
    stored = await last_on_subject(client, event_subject(ev.WARD, Entity.DOSSIER, "HS-T"))
    assert stored["type"] == "dossier.resolved"
    assert stored["occurred_at"] == "2021-04-30T16:59:59.999999Z"
