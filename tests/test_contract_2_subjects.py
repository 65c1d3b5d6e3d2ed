"""CONTRACT section 2: subjects, the entity key encoding, and the streams."""

from __future__ import annotations

import re
from collections.abc import Awaitable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from consumers.reports.projector import ReportProjector
from gateway.service import Gateway
from plumbing import subjects
from plumbing.streams import EVENTS_STREAM, REPORTS_STREAM
from plumbing.subjects import decode_key, encode_key
from tests import events as ev
from tests.helpers import last_on_subject, log_size, log_subjects, submit, until

KEY = re.compile(r"[A-Za-z0-9_=-]+")
"""What a key may hold: one subject token (no dots, spaces, wildcards), also a valid KV key."""

AWKWARD_IDS = [
    "000.00.21.H08-210405/0001 Hồ sơ",
    "HS-2021/04.001",
    "Hồ sơ 1",
    "a.b",
    "a_b",
    "a b",
    "a=2Eb",
    "a=b",
    "*",
    ">",
    "a.*.>",
    "  leading and trailing  ",
    "tab\there",
    "Đơn đề nghị cấp bản sao",
    "ĐĂNG KÝ KHAI SINH",
    "x" * 128,
    "ệ" * 128,
    "-",
    "_",
    "=",
]


@pytest.mark.parametrize(
    ("entity", "make", "entity_id"),
    [
        ("dossier", ev.received, "HS-2021/04.001"),
        ("document", ev.document, "123/QĐ-UBND"),
        ("copy", ev.copy, "SC 2021.04 số 7"),
    ],
)
async def test_events_land_on_onestop_events_unit_entity_key(
    gateway: Gateway, client: Client, entity: str, make: object, entity_id: str
) -> None:
    assert callable(make)
    reply = await submit(client, ev.WARD, make(entity_id))
    assert reply["ok"] is True, reply
    subject = f"onestop.events.{ev.WARD}.{entity}.{encode_key(entity_id)}"
    assert await log_subjects(client) == {subject: 1}


async def test_an_entitys_events_are_found_on_its_subject_with_one_direct_get(
    gateway: Gateway, client: Client
) -> None:
    """Any NATS tool finds an entity's events from its id, by the documented encoding."""
    dossier_id = "000.00.21.H08-210405/0001 Hồ sơ"
    events = [ev.received(dossier_id), ev.dossier_event("resolved", dossier_id)]
    replies = await submit(client, ev.WARD, events)
    assert all(r["ok"] for r in replies), replies
    subject = f"onestop.events.{ev.WARD}.dossier.{encode_key(dossier_id)}"
    assert await log_subjects(client) == {subject: 2}
    last = await last_on_subject(client, subject)
    assert last["event_id"] == events[1]["event_id"]
    assert last["dossier_id"] == dossier_id


@pytest.mark.parametrize("entity_id", AWKWARD_IDS)
def test_key_encoding_is_reversible_and_one_subject_token(entity_id: str) -> None:
    key = encode_key(entity_id)
    assert KEY.fullmatch(key), key
    assert decode_key(key) == entity_id


def test_key_encoding_examples_in_its_documentation_are_right() -> None:
    """The encoding is documented for other tools; its worked examples must hold."""
    examples = re.findall(r"^ {4}(\S.*?) +->  (\S+)$", subjects.__doc__ or "", re.MULTILINE)
    assert len(examples) >= 2
    for entity_id, key in examples:
        assert encode_key(entity_id) == key, entity_id
        assert decode_key(key) == entity_id
    assert encode_key("Hồ sơ 1") == "H=E1=BB=93=20s=C6=A1=201"


def test_key_encoding_of_awkward_ids_is_injective() -> None:
    keys = [encode_key(i) for i in AWKWARD_IDS]
    assert len(set(keys)) == len(AWKWARD_IDS)


ids = st.text(min_size=1, max_size=128)


@given(ids)
def test_key_encoding_is_reversible_and_subject_safe_for_any_id(entity_id: str) -> None:
    key = encode_key(entity_id)
    assert KEY.fullmatch(key), key
    assert decode_key(key) == entity_id


@given(ids, ids)
def test_two_different_ids_never_share_a_key(a: str, b: str) -> None:
    if a != b:
        assert encode_key(a) != encode_key(b)


_lookalike = st.sampled_from([".", "_", "-", "=", " ", "/", "=2E", "=5F", "=20", "E", "2"])


@given(st.lists(_lookalike, min_size=1, max_size=8), st.lists(_lookalike, min_size=1, max_size=8))
def test_ids_made_of_escape_lookalikes_never_share_a_key(a: list[str], b: list[str]) -> None:
    """Ids built from the very characters an escaping scheme could confuse."""
    x, y = "".join(a), "".join(b)
    if x != y:
        assert encode_key(x) != encode_key(y)
    assert decode_key(encode_key(x)) == x


@pytest.mark.parametrize(("first", "second"), [("a.b", "a_b"), ("a b", "a=20b"), ("a.b", "a=2Eb")])
async def test_ids_a_naive_encoding_would_merge_are_different_dossiers(
    gateway: Gateway, client: Client, first: str, second: str
) -> None:
    replies = await submit(client, ev.WARD, [ev.received(first), ev.received(second)])
    assert [(r["ok"], r["duplicate"]) for r in replies] == [(True, False), (True, False)], replies
    # Each is its own dossier: both can be resolved once.
    resolved = await submit(
        client,
        ev.WARD,
        [ev.dossier_event("resolved", first), ev.dossier_event("resolved", second)],
    )
    assert [r["ok"] for r in resolved] == [True, True], resolved
    subjects = await log_subjects(client)
    assert subjects == {
        f"onestop.events.{ev.WARD}.dossier.{encode_key(first)}": 2,
        f"onestop.events.{ev.WARD}.dossier.{encode_key(second)}": 2,
    }


async def test_a_dossier_a_document_and_a_copy_with_the_same_id_are_different_entities(
    gateway: Gateway, client: Client
) -> None:
    same = "2021/001"
    replies = await submit(client, ev.WARD, [ev.received(same), ev.document(same), ev.copy(same)])
    assert [r["ok"] for r in replies] == [True, True, True], replies
    assert set(await log_subjects(client)) == {
        f"onestop.events.{ev.WARD}.{entity}.{encode_key(same)}"
        for entity in ("dossier", "document", "copy")
    }


async def test_event_stream_exists_with_direct_get(gateway: Gateway, client: Client) -> None:
    info = await client.jetstream().stream_info(EVENTS_STREAM)
    assert info.config.allow_direct is True
    assert info.config.subjects == ["onestop.events.>"]


async def test_reports_stream_allows_direct_get(gateway: Gateway, client: Client) -> None:
    info = await client.jetstream().stream_info(REPORTS_STREAM)
    assert info.config.allow_direct is True
    assert info.config.subjects == ["onestop.reports.>"]


async def test_current_report_is_read_with_one_direct_get_no_consumer(
    projector: ReportProjector, client: Client
) -> None:
    """Every revision the projector publishes is a message; the last on a subject is the one a
    reader gets, with one direct get and no consumer."""
    js = client.jetstream()
    subject = f"onestop.reports.{ev.WARD}.2021-04"

    async def received_on_report() -> int | None:
        report = await last_on_subject(client, subject, stream=REPORTS_STREAM)
        return None if report is None else int(report["dossiers"]["received"]["total"])

    assert (await submit(client, ev.WARD, ev.received("HS-R1")))["ok"] is True
    await until(lambda: _is(received_on_report(), 1), what="the first revision")
    first = await last_on_subject(client, subject, stream=REPORTS_STREAM)
    assert (await submit(client, ev.WARD, ev.received("HS-R2")))["ok"] is True
    await until(lambda: _is(received_on_report(), 2), what="the second revision")

    consumers = (await js.stream_info(REPORTS_STREAM)).state.consumer_count
    current = await last_on_subject(client, subject, stream=REPORTS_STREAM)
    assert (await js.stream_info(REPORTS_STREAM)).state.consumer_count == consumers
    assert current["revision"] > first["revision"]
    assert current["dossiers"]["received"]["total"] == 2
    revisions = await js.subscribe(subject, ordered_consumer=True)
    assert (await revisions.next_msg(timeout=5)).data != (await revisions.next_msg(timeout=5)).data
    await revisions.unsubscribe()
    assert (
        await last_on_subject(client, f"onestop.reports.{ev.WARD}.2021-06", REPORTS_STREAM) is None
    )


async def _is(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected


async def test_submit_subject_is_per_unit(gateway: Gateway, client: Client) -> None:
    """The unit is read from the subject: the same event on another unit's subject is refused."""
    event = ev.received("HS-1")
    wrong = await submit(client, ev.OTHER_WARD, event)
    assert wrong["error"]["code"] == "unit_mismatch"
    assert (await submit(client, ev.WARD, event))["ok"] is True
    assert await log_size(client) == 1
