"""CONTRACT section 3: events, their fields, and the lifecycle of dossiers, documents and copies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client

from gateway.service import Gateway
from plumbing.subjects import encode_key
from tests import events as ev
from tests.helpers import error_of, last_on_subject, log_size, log_subjects, submit

Event = dict[str, Any]
CHANGES = ["deadline_changed", "supplement_requested", "transferred", "resolved", "withdrawn"]


async def accepted(client: Client, *events: Event, unit: str = ev.WARD) -> list[Any]:
    """Submit events that must be accepted (as new); their replies."""
    replies = await submit(client, unit, list(events))
    assert all(r["ok"] and not r["duplicate"] for r in replies), replies
    return list(replies)


async def refused(client: Client, event: Event | bytes, unit: str = ev.WARD) -> tuple[str, Any]:
    """Submit one event that must be refused and leave the log as it was: (code, field)."""
    before = await log_subjects(client)
    reply = await submit(client, unit, event)
    assert await log_subjects(client) == before, "a refused event changed the log"
    return error_of(reply)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize("naive", ["2021-04-05T08:00:00", "2021-04-05T08:00:00.250", "2021-04-05"])
async def test_timestamp_without_offset_is_refused_invalid_occurred_at(
    gateway: Gateway, client: Client, naive: str
) -> None:
    assert await refused(client, ev.received("HS-1", occurred_at=naive)) == (
        "invalid",
        "occurred_at",
    )


async def test_due_at_without_offset_is_refused_invalid_due_at(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1", due_at="2021-04-12T17:00:00")
    assert await refused(client, event) == ("invalid", "due_at")


async def test_timestamp_more_than_5_minutes_ahead_is_refused_invalid_occurred_at(
    gateway: Gateway, client: Client
) -> None:
    now = datetime.now(UTC)
    event = ev.received(
        "HS-1",
        occurred_at=_iso(now + timedelta(minutes=6)),
        due_at=_iso(now + timedelta(days=7)),
    )
    assert await refused(client, event) == ("invalid", "occurred_at")
    later = ev.document("VB-1", occurred_at=_iso(now + timedelta(hours=1)))
    assert await refused(client, later) == ("invalid", "occurred_at")


async def test_timestamp_a_little_ahead_of_the_gateway_clock_is_accepted(
    gateway: Gateway, client: Client
) -> None:
    now = datetime.now(UTC)
    await accepted(
        client,
        ev.received(
            "HS-1",
            occurred_at=_iso(now + timedelta(minutes=2)),
            due_at=_iso(now + timedelta(days=7)),
        ),
        ev.copy("SC-1", occurred_at=_iso((now + timedelta(minutes=2)).astimezone())),
    )


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2021-04-05T01:00:00Z",
        "2021-04-05T08:00:00+07:00",
        "2021-04-05T01:00:00.5Z",
        "2021-04-05T08:00:00.123456+07:00",
        "2021-04-04T20:00:00-05:00",
    ],
)
async def test_offsets_z_and_plus_0700_and_fractional_seconds_are_accepted(
    gateway: Gateway, client: Client, occurred_at: str
) -> None:
    await accepted(client, ev.received("HS-1", occurred_at=occurred_at))


@pytest.mark.parametrize(
    ("field", "event", "kept"),
    [
        # .9999996 s rounded would be 17:00:00 on the last day of April: May. Cut, it stays April.
        (
            "occurred_at",
            ev.document("VB-1", occurred_at="2021-04-30T16:59:59.9999996Z"),
            "2021-04-30T16:59:59.999999Z",
        ),
        (
            "occurred_at",
            ev.copy("SC-1", occurred_at="2021-04-08T10:00:00.123456789+07:00"),
            "2021-04-08T10:00:00.123456+07:00",
        ),
        (
            "due_at",
            ev.received("HS-1", due_at="2021-04-30T23:59:59.99999999+07:00"),
            "2021-04-30T23:59:59.999999+07:00",
        ),
        (
            "due_at",
            ev.received("HS-1", due_at="2021-04-12T17:00:00.0000000Z"),
            "2021-04-12T17:00:00Z",
        ),
    ],
)
async def test_timestamp_finer_than_microseconds_is_accepted_and_cut_not_rounded(
    gateway: Gateway, client: Client, field: str, event: Event, kept: str
) -> None:
    [reply] = await accepted(client, event)
    entity = event["type"].split(".")[0]
    key = event.get("document_id") or event.get("certification_id") or event["dossier_id"]
    stored = await last_on_subject(client, f"onestop.events.{ev.WARD}.{entity}.{encode_key(key)}")
    assert stored[field] == kept
    assert reply["seq"] == 1


async def test_deadline_change_finer_than_microseconds_is_cut_to_microseconds(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.received("HS-1"))
    change = ev.dossier_event("deadline_changed", "HS-1", due_at="2021-04-20T17:00:00.1234567Z")
    await accepted(client, change)
    stored = await last_on_subject(client, f"onestop.events.{ev.WARD}.dossier.HS-1")
    assert stored["due_at"] == "2021-04-20T17:00:00.123456Z"


async def test_seven_digits_elsewhere_than_a_timestamp_are_no_reason_to_refuse(
    gateway: Gateway, client: Client
) -> None:
    await accepted(
        client,
        ev.received("HS-1", due_at="2021-04-12T17:00:00.999999+07:00"),
        ev.dossier_event("supplement_requested", "HS-1", note="gọi lúc 10:00:00.1234567"),
        ev.document("10:00:00.1234567", occurred_at="2021-04-08T10:00:00.000001Z"),
    )


# --- fields of dossier.received ----------------------------------------------------------------


@pytest.mark.parametrize("level", [{"service_level": None}, {}])
async def test_online_without_service_level_is_refused_invalid_service_level(
    gateway: Gateway, client: Client, level: Event
) -> None:
    event = ev.received("HS-1", channel="online")
    event.pop("service_level")
    event.update(level)
    assert await refused(client, event) == ("invalid", "service_level")


async def test_online_with_service_level_2_is_refused_invalid_service_level(
    gateway: Gateway, client: Client
) -> None:
    event = ev.received("HS-1", channel="online", service_level=2)
    assert await refused(client, event) == ("invalid", "service_level")


@pytest.mark.parametrize("level", [3, 4])
async def test_online_with_service_level_3_or_4_is_accepted(
    gateway: Gateway, client: Client, level: int
) -> None:
    await accepted(client, ev.received("HS-1", channel="online", service_level=level))


@pytest.mark.parametrize("level", [1, 5, 0])
async def test_service_level_outside_2_3_4_is_refused_invalid_service_level(
    gateway: Gateway, client: Client, level: int
) -> None:
    event = ev.received("HS-1", channel="direct", service_level=level)
    assert await refused(client, event) == ("invalid", "service_level")


@pytest.mark.parametrize(
    "due_at", ["2021-04-05T08:00:00+07:00", "2021-04-05T01:00:00Z", "2021-04-05T07:59:59+07:00"]
)
async def test_due_at_not_after_occurred_at_is_refused_invalid_due_at(
    gateway: Gateway, client: Client, due_at: str
) -> None:
    event = ev.received("HS-1", occurred_at="2021-04-05T08:00:00+07:00", due_at=due_at)
    assert await refused(client, event) == ("invalid", "due_at")


async def test_applicant_is_optional_and_accepted_with_name_and_id_number(
    gateway: Gateway, client: Client
) -> None:
    await accepted(
        client,
        ev.received("HS-1"),
        ev.received("HS-2", applicant={"name": "Trần Thị B", "id_number": "052090001234"}),
        ev.received("HS-3", applicant=None),
    )


# --- the shape of every event ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dossier.opened", "dossier", "", "Dossier.Received", 7])
async def test_unknown_event_type_is_refused_invalid_type(
    gateway: Gateway, client: Client, kind: object
) -> None:
    assert await refused(client, ev.received("HS-1", type=kind)) == ("invalid", "type")


async def test_event_without_type_is_refused_invalid_type(gateway: Gateway, client: Client) -> None:
    event = ev.received("HS-1")
    del event["type"]
    assert await refused(client, event) == ("invalid", "type")


ENTITY_FIELDS: list[tuple[str, Callable[..., Event]]] = [
    ("event_id", lambda value: ev.received("HS-1", event_id=value)),
    ("dossier_id", lambda value: ev.received(value)),
    ("document_id", lambda value: ev.document(value)),
    ("certification_id", lambda value: ev.copy(value)),
]


@pytest.mark.parametrize(("field", "make"), ENTITY_FIELDS, ids=[f for f, _ in ENTITY_FIELDS])
async def test_empty_id_is_refused_invalid_naming_the_field(
    gateway: Gateway, client: Client, field: str, make: Callable[..., Event]
) -> None:
    assert await refused(client, make("")) == ("invalid", field)


@pytest.mark.parametrize(("field", "make"), ENTITY_FIELDS, ids=[f for f, _ in ENTITY_FIELDS])
async def test_129_character_id_is_refused_invalid_naming_the_field(
    gateway: Gateway, client: Client, field: str, make: Callable[..., Event]
) -> None:
    assert await refused(client, make("x" * 129)) == ("invalid", field)


@pytest.mark.parametrize(("field", "make"), ENTITY_FIELDS, ids=[f for f, _ in ENTITY_FIELDS])
async def test_128_character_id_is_accepted(
    gateway: Gateway, client: Client, field: str, make: Callable[..., Event]
) -> None:
    await accepted(client, make("x" * 127 + "ệ"))


WRONG_FORMS: list[tuple[str, Callable[[], Event]]] = [
    ("interconnect", lambda: ev.dossier_event("transferred", "HS-1", interconnect="yes")),
    ("to_agency", lambda: ev.dossier_event("transferred", "HS-1", to_agency=12)),
    ("digitally_signed", lambda: ev.document("VB-1", digitally_signed="true")),
    ("sent_via_axis", lambda: ev.document("VB-1", sent_via_axis=None)),
    ("electronic", lambda: ev.copy("SC-1", electronic=1)),
    ("channel", lambda: ev.received("HS-1", channel="fax")),
    ("service_level", lambda: ev.received("HS-1", service_level="3")),
    ("procedure_code", lambda: ev.received("HS-1", procedure_code=1.001612)),
    ("outcome", lambda: ev.dossier_event("resolved", "HS-1", outcome="maybe")),
    ("method", lambda: ev.dossier_event("result_returned", "HS-1", method="drone")),
    ("reason", lambda: ev.dossier_event("deadline_changed", "HS-1", reason="because")),
    ("due_at", lambda: ev.dossier_event("deadline_changed", "HS-1", due_at="next week")),
    ("note", lambda: ev.dossier_event("supplement_requested", "HS-1", note=["a"])),
    ("applicant.name", lambda: ev.received("HS-1", applicant={"name": 5})),
    ("applicant", lambda: ev.received("HS-1", applicant="Trần Thị B")),
    ("event_id", lambda: ev.received("HS-1", event_id=42)),
    ("unit", lambda: {**ev.received("HS-1"), "unit": 21550}),
    ("occurred_at", lambda: ev.received("HS-1", occurred_at=1617584400)),
    ("dossier_id", lambda: {**ev.received("HS-1"), "dossier_id": ["HS-1"]}),
]


@pytest.mark.parametrize(("field", "make"), WRONG_FORMS, ids=[f for f, _ in WRONG_FORMS])
async def test_field_of_the_wrong_type_is_refused_invalid_naming_the_field(
    gateway: Gateway, client: Client, field: str, make: Callable[[], Event]
) -> None:
    assert await refused(client, make()) == ("invalid", field)


REQUIRED: list[tuple[str, Callable[[], Event]]] = [
    ("event_id", lambda: ev.received("HS-1")),
    ("unit", lambda: ev.received("HS-1")),
    ("occurred_at", lambda: ev.received("HS-1")),
    ("dossier_id", lambda: ev.received("HS-1")),
    ("procedure_code", lambda: ev.received("HS-1")),
    ("channel", lambda: ev.received("HS-1")),
    ("due_at", lambda: ev.received("HS-1")),
    ("due_at", lambda: ev.dossier_event("deadline_changed", "HS-1")),
    ("reason", lambda: ev.dossier_event("deadline_changed", "HS-1")),
    ("to_agency", lambda: ev.dossier_event("transferred", "HS-1")),
    ("interconnect", lambda: ev.dossier_event("transferred", "HS-1")),
    ("outcome", lambda: ev.dossier_event("resolved", "HS-1")),
    ("method", lambda: ev.dossier_event("result_returned", "HS-1")),
    ("dossier_id", lambda: ev.dossier_event("withdrawn", "HS-1")),
    ("document_id", lambda: ev.document("VB-1")),
    ("digitally_signed", lambda: ev.document("VB-1")),
    ("sent_via_axis", lambda: ev.document("VB-1")),
    ("certification_id", lambda: ev.copy("SC-1")),
    ("electronic", lambda: ev.copy("SC-1")),
]


@pytest.mark.parametrize(
    ("field", "make"), REQUIRED, ids=[f"{make()['type']}-{f}" for f, make in REQUIRED]
)
async def test_missing_field_is_refused_invalid_naming_the_field(
    gateway: Gateway, client: Client, field: str, make: Callable[[], Event]
) -> None:
    event = make()
    del event[field]
    assert await refused(client, event) == ("invalid", field)


async def test_event_unit_differing_from_the_subject_unit_is_refused_unit_mismatch(
    gateway: Gateway, client: Client
) -> None:
    code, _ = await refused(client, ev.received("HS-1", unit=ev.OTHER_WARD), unit=ev.WARD)
    assert code == "unit_mismatch"
    # a city may not submit for its wards either: each unit submits its own desk's events
    code, _ = await refused(client, ev.received("HS-1", unit=ev.WARD), unit=ev.CITY)
    assert code == "unit_mismatch"


# --- the lifecycle of a dossier ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [*CHANGES, "result_returned"], ids=lambda k: f"dossier.{k}")
async def test_event_for_a_dossier_never_received_is_refused_unknown_entity(
    gateway: Gateway, client: Client, kind: str
) -> None:
    assert (await refused(client, ev.dossier_event(kind, "HS-never")))[0] == "unknown_entity"


async def test_dossier_received_in_another_unit_is_unknown_here(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.received("HS-1", unit=ev.OTHER_WARD), unit=ev.OTHER_WARD)
    assert (await refused(client, ev.dossier_event("resolved", "HS-1")))[0] == "unknown_entity"


async def test_dossier_received_twice_is_refused_conflict(gateway: Gateway, client: Client) -> None:
    await accepted(client, ev.received("HS-1"))
    again = ev.received("HS-1", occurred_at="2021-04-06T08:00:00+07:00")
    assert (await refused(client, again))[0] == "conflict"


async def test_dossier_resolved_twice_is_refused_conflict(gateway: Gateway, client: Client) -> None:
    await accepted(client, ev.received("HS-1"), ev.dossier_event("resolved", "HS-1"))
    again = ev.dossier_event("resolved", "HS-1", outcome="refused")
    assert (await refused(client, again))[0] == "conflict"


async def test_events_after_a_refused_second_receipt_in_one_batch_see_the_real_dossier(
    gateway: Gateway, client: Client
) -> None:
    """A refused dossier.received says nothing of the dossier: what follows it is judged on the
    log, not on the empty dossier the receipt would have created."""
    await accepted(client, ev.received("HS-1"))
    batch = [
        ev.received("HS-1", occurred_at="2021-04-06T08:00:00+07:00"),  # conflict: received twice
        ev.dossier_event("supplement_requested", "HS-1"),
        ev.received("HS-1", occurred_at="2021-04-07T08:00:00+07:00"),  # conflict again
        ev.dossier_event("resolved", "HS-1"),
        ev.dossier_event("withdrawn", "HS-1"),  # conflict: resolved just before
    ]
    replies = await submit(client, ev.WARD, batch)
    assert [r["ok"] for r in replies] == [False, True, False, True, False], replies
    assert {error_of(r)[0] for r in replies if not r["ok"]} == {"conflict"}
    assert await log_subjects(client) == {f"onestop.events.{ev.WARD}.dossier.HS-1": 3}


async def test_documents_after_a_refused_creation_in_one_batch_are_still_refused(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.document("VB-1"))
    replies = await submit(client, ev.WARD, [ev.document("VB-1"), ev.document("VB-1")])
    assert [error_of(r)[0] for r in replies] == ["conflict", "conflict"]
    assert await log_size(client) == 1


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("closing", ["withdrawn", "resolved"])
async def test_change_after_the_dossier_is_closed_is_refused_conflict(
    gateway: Gateway, client: Client, closing: str, change: str
) -> None:
    await accepted(client, ev.received("HS-1"), ev.dossier_event(closing, "HS-1"))
    late = ev.dossier_event(change, "HS-1", occurred_at="2021-04-09T10:00:00+07:00")
    assert (await refused(client, late))[0] == "conflict"


@pytest.mark.parametrize("change", [*CHANGES, "result_returned"])
async def test_change_after_the_result_was_returned_is_refused_conflict(
    gateway: Gateway, client: Client, change: str
) -> None:
    await accepted(
        client,
        ev.received("HS-1"),
        ev.dossier_event("resolved", "HS-1"),
        ev.dossier_event("result_returned", "HS-1"),
    )
    late = ev.dossier_event(change, "HS-1", occurred_at="2021-04-09T10:00:00+07:00")
    assert (await refused(client, late))[0] == "conflict"


async def test_result_returned_before_resolved_is_refused_conflict(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.received("HS-1"))
    assert (await refused(client, ev.dossier_event("result_returned", "HS-1")))[0] == "conflict"


async def test_result_returned_after_withdrawal_is_refused_conflict(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.received("HS-1"), ev.dossier_event("withdrawn", "HS-1"))
    assert (await refused(client, ev.dossier_event("result_returned", "HS-1")))[0] == "conflict"


async def test_result_returned_twice_is_refused_conflict(gateway: Gateway, client: Client) -> None:
    await accepted(
        client,
        ev.received("HS-1"),
        ev.dossier_event("resolved", "HS-1"),
        ev.dossier_event("result_returned", "HS-1", method="postal"),
    )
    again = ev.dossier_event("result_returned", "HS-1", method="counter")
    assert (await refused(client, again))[0] == "conflict"


async def test_open_dossier_takes_every_change_then_closes_in_order(
    gateway: Gateway, client: Client
) -> None:
    """Events of one dossier, in their own order, in one batch: each judged after the last."""
    replies = await accepted(
        client,
        ev.received("HS-1"),
        ev.dossier_event("supplement_requested", "HS-1"),
        ev.dossier_event("deadline_changed", "HS-1", reason="supplement"),
        ev.dossier_event("transferred", "HS-1"),
        ev.dossier_event("supplement_requested", "HS-1", note=None),
        ev.dossier_event("resolved", "HS-1", outcome="refused"),
        ev.dossier_event("result_returned", "HS-1", method="online"),
    )
    seqs = [r["seq"] for r in replies]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 7
    assert await log_subjects(client) == {f"onestop.events.{ev.WARD}.dossier.HS-1": 7}


async def test_deadline_change_keyed_in_after_the_new_due_at_is_stored(
    gateway: Gateway, client: Client
) -> None:
    """Section 3 sets no rule between a deadline change's due_at and its occurred_at: an
    extension keyed in after the fact is an event the contract says must be stored."""
    await accepted(client, ev.received("HS-1", due_at="2021-04-12T17:00:00+07:00"))
    late = ev.dossier_event(
        "deadline_changed",
        "HS-1",
        occurred_at="2021-04-15T09:00:00+07:00",
        due_at="2021-04-14T17:00:00+07:00",
    )
    (reply,) = await accepted(client, late)
    stored = await last_on_subject(client, f"onestop.events.{ev.WARD}.dossier.HS-1")
    assert stored["due_at"] == "2021-04-14T17:00:00+07:00"
    assert reply["seq"] == 2


@pytest.mark.parametrize("kind", [*CHANGES, "resolved"])
async def test_dossier_event_dated_before_its_receipt_is_refused_conflict(
    gateway: Gateway, client: Client, kind: str
) -> None:
    await accepted(client, ev.received("HS-1", occurred_at="2021-04-05T08:00:00+07:00"))
    early = ev.dossier_event(kind, "HS-1", occurred_at="2021-04-05T00:59:59Z")
    assert (await refused(client, early))[0] == "conflict"


async def test_dossier_event_dated_at_its_receipt_is_accepted(
    gateway: Gateway, client: Client
) -> None:
    await accepted(
        client,
        ev.received("HS-1", occurred_at="2021-04-05T08:00:00+07:00"),
        ev.dossier_event("withdrawn", "HS-1", occurred_at="2021-04-05T01:00:00Z"),
    )


async def test_events_of_other_entities_may_come_in_any_order_and_late(
    gateway: Gateway, client: Client
) -> None:
    await accepted(
        client,
        ev.received("HS-2", occurred_at="2021-06-01T08:00:00+07:00", due_at="2021-06-09T17:00:00Z"),
        ev.received("HS-1", occurred_at="2021-04-01T08:00:00+07:00"),
        ev.document("VB-1", occurred_at="2021-03-01T08:00:00+07:00"),
    )


# --- documents and copies ----------------------------------------------------------------------


async def test_document_issued_twice_is_refused_conflict(gateway: Gateway, client: Client) -> None:
    await accepted(client, ev.document("123/QĐ-UBND"))
    again = ev.document("123/QĐ-UBND", digitally_signed=False)
    assert (await refused(client, again))[0] == "conflict"
    assert (await refused(client, ev.document("123/QĐ-UBND")))[0] == "conflict"


async def test_copy_certified_twice_is_refused_conflict(gateway: Gateway, client: Client) -> None:
    await accepted(client, ev.copy("SC-2021-7"))
    again = ev.copy("SC-2021-7", electronic=False)
    assert (await refused(client, again))[0] == "conflict"


# --- nothing of a refused event is stored --------------------------------------------------------


REFUSALS: dict[str, tuple[str, Callable[[], Event | bytes], str]] = {
    "malformed": ("malformed", lambda: b'{"type": "dossier.received", "event_id": ', ev.WARD),
    "invalid": ("invalid", lambda: ev.received("HS-9", channel="online"), ev.WARD),
    "unit_mismatch": ("unit_mismatch", lambda: ev.received("HS-9", unit=ev.OTHER_WARD), ev.WARD),
    "unknown_unit": ("unknown_unit", lambda: ev.received("HS-9", unit="99999"), "99999"),
    "unknown_entity": ("unknown_entity", lambda: ev.dossier_event("resolved", "HS-9"), ev.WARD),
    "conflict_received_twice": ("conflict", lambda: ev.received("HS-1"), ev.WARD),
    "conflict_after_close": ("conflict", lambda: ev.dossier_event("resolved", "HS-2"), ev.WARD),
    "conflict_document_twice": ("conflict", lambda: ev.document("VB-1"), ev.WARD),
    "conflict_before_receipt": (
        "conflict",
        lambda: ev.dossier_event("resolved", "HS-1", occurred_at="2021-04-01T00:00:00Z"),
        ev.WARD,
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refused_input_leaves_the_stream_unchanged(
    gateway: Gateway, client: Client, case: str
) -> None:
    await accepted(
        client,
        ev.received("HS-1"),
        ev.received("HS-2"),
        ev.dossier_event("withdrawn", "HS-2"),
        ev.document("VB-1"),
    )
    code, make, unit = REFUSALS[case]
    size, subjects = await log_size(client), await log_subjects(client)
    reply = await submit(client, unit, make())
    assert error_of(reply)[0] == code
    assert await log_size(client) == size
    assert await log_subjects(client) == subjects


@pytest.mark.parametrize(
    "case", ["invalid", "unit_mismatch", "unknown_entity", "conflict_received_twice"]
)
async def test_refused_event_id_is_not_used_up(gateway: Gateway, client: Client, case: str) -> None:
    """Nothing of a refused event is stored, not even its event_id: corrected, it is accepted."""
    await accepted(client, ev.received("HS-1"))
    code, make, unit = REFUSALS[case]
    bad = make()
    assert isinstance(bad, dict)
    assert error_of(await submit(client, unit, bad))[0] == code
    fixed = ev.received("HS-3", event_id=bad["event_id"])
    reply = await submit(client, ev.WARD, fixed)
    assert reply["ok"] is True, reply
    assert reply["duplicate"] is False


async def test_refused_event_is_accepted_once_its_dossier_is_received(
    gateway: Gateway, client: Client
) -> None:
    resolved = ev.dossier_event("resolved", "HS-1")
    assert (await refused(client, resolved))[0] == "unknown_entity"
    await accepted(client, ev.received("HS-1"), resolved)


# --- units --------------------------------------------------------------------------------------


async def test_dossier_ids_are_unique_within_a_unit_only(gateway: Gateway, client: Client) -> None:
    await accepted(client, ev.received("HS-1"))
    await accepted(client, ev.received("HS-1", unit=ev.OTHER_WARD), unit=ev.OTHER_WARD)
    await accepted(client, ev.dossier_event("resolved", "HS-1"))
    # The other unit's dossier is still open: withdrawing it is no conflict.
    await accepted(
        client, ev.dossier_event("withdrawn", "HS-1", unit=ev.OTHER_WARD), unit=ev.OTHER_WARD
    )
    assert await log_subjects(client) == {
        f"onestop.events.{ev.WARD}.dossier.HS-1": 2,
        f"onestop.events.{ev.OTHER_WARD}.dossier.HS-1": 2,
    }


async def test_document_and_copy_ids_are_unique_within_a_unit_only(
    gateway: Gateway, client: Client
) -> None:
    await accepted(client, ev.document("VB-1"), ev.copy("SC-1"))
    await accepted(
        client,
        ev.document("VB-1", unit=ev.OTHER_WARD),
        ev.copy("SC-1", unit=ev.OTHER_WARD),
        unit=ev.OTHER_WARD,
    )
    assert await log_size(client) == 4


async def test_same_event_id_in_two_units_is_two_events(gateway: Gateway, client: Client) -> None:
    """JetStream's Nats-Msg-Id must be unit-qualified, or the second would be a 'duplicate'."""
    event_id = "2021-04-05/0001"
    ours = ev.received("HS-1", event_id=event_id)
    theirs = ev.received("HS-2", unit=ev.OTHER_WARD, event_id=event_id)
    [first] = await accepted(client, ours)
    [second] = await accepted(client, theirs, unit=ev.OTHER_WARD)
    assert first["seq"] != second["seq"]
    assert first["event_id"] == second["event_id"] == event_id
    assert await log_size(client) == 2
    # and each is a duplicate of its own unit's event only
    again = await submit(client, ev.OTHER_WARD, theirs)
    assert again == {**second, "duplicate": True}
    again = await submit(client, ev.WARD, ours)
    assert again == {**first, "duplicate": True}


async def test_same_event_id_and_dossier_id_in_three_units_are_three_events(
    gateway: Gateway, client: Client
) -> None:
    event_id = "shared-id"
    same_dossier = {"event_id": event_id, "dossier_id": "HS-1"}
    replies = [
        await submit(client, unit, ev.received(unit=unit, **same_dossier))
        for unit in (ev.WARD, ev.OTHER_WARD, ev.CITY)
    ]
    assert [(r["ok"], r["duplicate"]) for r in replies] == [(True, False)] * 3, replies
    assert len({r["seq"] for r in replies}) == 3
    assert set(await log_subjects(client)) == {
        f"onestop.events.{unit}.dossier.{encode_key('HS-1')}"
        for unit in (ev.WARD, ev.OTHER_WARD, ev.CITY)
    }
