"""The demo's March and April 2021 of Quy Nhơn: valid events that give the city's own figures."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from consumers.reports.report_rules import ReportBook
from lienthong.demo.traffic import CITY, DemoTraffic, city_units, generate, wire_events
from schemas import EVENT_DECODER, field_problem
from schemas.events import (
    Channel,
    CopyCertified,
    DocumentIssued,
    DossierDeadlineChanged,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierSupplementRequested,
    DossierTransferred,
    DossierWithdrawn,
    Event,
)

VN_TZ = timezone(timedelta(hours=7))
NOW = datetime(2026, 1, 1, tzinfo=UTC)

# reference/quy-nhon-2021-04.md, figure for figure
PUBLISHED_APRIL = {
    "dossiers": {
        "received": {
            "total": 5618,
            "carried_over": 1139,
            "new": 4479,
            "new_by_channel": {"direct": 4240, "online": 214, "postal": 25},
        },
        "resolved": {
            "total": 4306,
            "early": 4020,
            "on_time": 248,
            "late": 38,
            "on_time_rate": 0.9912,
        },
        "withdrawn": 0,
        "in_progress": {"total": 1312, "within_deadline": 1262, "overdue": 50},
        "returned_by_post": 37,
        "online_procedures": {"level3": 21, "level4": 13},
    },
    "documents": {"issued": 1658, "signed_and_sent": 1605, "rate": 0.968},
    "copies": {"certified": 36, "electronic": 30},
}


def chain(unit: str) -> tuple[str, ...]:
    return (CITY, "52") if unit == CITY else (unit, CITY, "52")


def distinct(traffic: DemoTraffic) -> dict[str, list[Event]]:
    """Each unit's events as the gateway stores them: a resent event_id only once."""
    out: dict[str, list[Event]] = {}
    for unit, stream in traffic.events_by_unit.items():
        seen: set[str] = set()
        out[unit] = []
        for data in stream:
            event = EVENT_DECODER.decode(data)
            if event.event_id not in seen:
                seen.add(event.event_id)
                out[unit].append(event)
    return out


def project(traffic: DemoTraffic) -> ReportBook:
    book = ReportBook()
    for unit, events in distinct(traffic).items():
        for event in events:
            book.apply(event, chain(unit))
    return book


@pytest.fixture(scope="module")
def traffic() -> DemoTraffic:
    return generate()


@pytest.fixture(scope="module")
def events(traffic: DemoTraffic) -> dict[str, list[Event]]:
    return distinct(traffic)


@pytest.fixture(scope="module")
def book(traffic: DemoTraffic) -> ReportBook:
    return project(traffic)


def test_city_april_is_the_published_report(traffic: DemoTraffic, book: ReportBook) -> None:
    assert msgspec.to_builtins(traffic.expected_city_april) == PUBLISHED_APRIL
    assert msgspec.to_builtins(book.figures(CITY, "2021-04")) == PUBLISHED_APRIL
    assert book.figures("52", "2021-04") == book.figures(CITY, "2021-04")


def test_city_march_is_its_own_plausible_month(traffic: DemoTraffic, book: ReportBook) -> None:
    march = book.figures(CITY, "2021-03")
    assert march == traffic.expected_city_march
    d = march.dossiers
    assert d.received.carried_over == 0  # the log starts in March
    assert d.in_progress.total == 1139  # April's carried_over
    assert d.resolved.total > 0
    assert d.withdrawn > 0
    assert d.in_progress.overdue > 0
    assert book.periods(CITY) == ["2021-03", "2021-04"]


def test_another_seed_gives_the_same_city_april() -> None:
    book = project(generate(seed=7))
    assert msgspec.to_builtins(book.figures(CITY, "2021-04")) == PUBLISHED_APRIL


def test_generation_is_deterministic_for_a_seed(traffic: DemoTraffic) -> None:
    again = generate(traffic.seed)
    assert again.events_by_unit == traffic.events_by_unit
    assert generate(traffic.seed + 1).events_by_unit != traffic.events_by_unit


def test_every_event_is_valid_per_section_3(traffic: DemoTraffic) -> None:
    start, end = datetime(2021, 3, 1, tzinfo=VN_TZ), datetime(2021, 5, 1, tzinfo=VN_TZ)
    for unit, stream in traffic.events_by_unit.items():
        for data in stream:
            event = EVENT_DECODER.decode(data)  # raises if any field is missing or malformed
            assert field_problem(event, NOW) is None, data
            assert event.unit == unit
            assert start <= event.occurred_at < end, data
            assert event.occurred_at.year == 2021
            if isinstance(event, DossierReceived) and event.channel is Channel.ONLINE:
                assert event.service_level in (3, 4)


def test_each_dossier_lifecycle_is_in_order(events: dict[str, list[Event]]) -> None:
    for unit, stream in events.items():
        received: dict[str, DossierReceived] = {}
        closed: dict[str, Event] = {}
        returned: set[str] = set()
        entity_ids: Counter[tuple[str, str]] = Counter()
        for event in stream:
            if isinstance(event, DocumentIssued | CopyCertified):
                entity_ids[type(event).__name__, event.entity_id] += 1
                continue
            key = event.dossier_id
            if isinstance(event, DossierReceived):
                assert key not in received, f"{unit} {key} received twice"
                received[key] = event
                continue
            assert key in received, f"{unit} {key} before its receipt"
            assert event.occurred_at >= received[key].occurred_at
            if isinstance(event, DossierResultReturned):
                resolution = closed.get(key)
                assert isinstance(resolution, DossierResolved), f"{unit} {key} returned unresolved"
                assert event.occurred_at > resolution.occurred_at
                assert key not in returned
                returned.add(key)
                continue
            assert key not in closed, f"{unit} {key}: {type(event).__name__} after closing"
            if isinstance(event, DossierResolved | DossierWithdrawn):
                closed[key] = event
        assert all(n == 1 for n in entity_ids.values()), unit


def test_resent_duplicates_are_identical_and_counted(traffic: DemoTraffic) -> None:
    duplicates = 0
    for stream in traffic.events_by_unit.values():
        first: dict[str, tuple[int, bytes]] = {}
        for position, data in enumerate(stream):
            event_id = json.loads(data)["event_id"]
            if event_id in first:
                duplicates += 1
                assert data == first[event_id][1]  # same id, same content: a duplicate
                assert position > first[event_id][0]
            else:
                first[event_id] = (position, data)
    assert duplicates == traffic.duplicates > 50
    total = sum(len(s) for s in traffic.events_by_unit.values())
    assert total == traffic.distinct_events + traffic.duplicates


def test_both_offsets_and_fractions_appear(traffic: DemoTraffic) -> None:
    stamps = [json.loads(d)["occurred_at"] for s in traffic.events_by_unit.values() for d in s]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith("+07:00") for s in stamps)
    assert any("." in s for s in stamps)
    assert all(s.endswith(("Z", "+07:00")) for s in stamps)


def test_events_around_midnight_at_month_boundaries(
    events: dict[str, list[Event]], book: ReportBook
) -> None:
    def utc_and_vn_dates(e: Event) -> tuple[str, str]:
        return (
            e.occurred_at.astimezone(UTC).date().isoformat(),
            e.occurred_at.astimezone(VN_TZ).date().isoformat(),
        )

    every = [e for stream in events.values() for e in stream]
    dates = {utc_and_vn_dates(e) for e in every}
    assert ("2021-03-31", "2021-04-01") in dates  # April in Vietnam, March in UTC
    assert ("2021-02-28", "2021-03-01") in dates  # March in Vietnam, February in UTC
    at_1730z = [e for e in every if e.occurred_at == datetime(2021, 3, 31, 17, 30, tzinfo=UTC)]
    assert any(isinstance(e, DossierReceived) for e in at_1730z)
    assert "2021-02" not in book.periods(CITY)


def test_resolved_on_the_due_day_just_after_midnight_is_on_time(
    events: dict[str, list[Event]],
) -> None:
    """Resolutions at 00:30 in Vietnam on the due day: the UTC day is earlier, yet on time."""
    found = 0
    for stream in events.values():
        due = {e.dossier_id: e.due_at for e in stream if isinstance(e, DossierReceived)}
        for e in stream:
            if isinstance(e, DossierResolved):
                d = due[e.dossier_id]
                utc_day = e.occurred_at.astimezone(UTC).date()
                vn_day = e.occurred_at.astimezone(VN_TZ).date()
                if vn_day == d.astimezone(VN_TZ).date() and utc_day < vn_day and e.occurred_at <= d:
                    found += 1
    assert found >= 1


def test_deadline_changes_and_supplements(events: dict[str, list[Event]]) -> None:
    reasons: Counter[str] = Counter()
    judged = 0
    supplements = 0
    for stream in events.values():
        received = {e.dossier_id: e for e in stream if isinstance(e, DossierReceived)}
        changes: defaultdict[str, list[DossierDeadlineChanged]] = defaultdict(list)
        for e in stream:
            if isinstance(e, DossierDeadlineChanged):
                reasons[e.reason.value] += 1
                changes[e.dossier_id].append(e)
            elif isinstance(e, DossierSupplementRequested):
                supplements += 1
            elif isinstance(e, DossierResolved) and changes[e.dossier_id]:
                first_due = received[e.dossier_id].due_at
                new_due = changes[e.dossier_id][-1].due_at
                if first_due < e.occurred_at <= new_due:  # late but for the change
                    judged += 1
    assert reasons["extension"] > 10
    assert reasons["supplement"] > 5
    assert supplements > 50
    assert judged >= 40


def test_interconnect_transfers_are_left_open(
    traffic: DemoTraffic, events: dict[str, list[Event]]
) -> None:
    transferred = 0
    for stream in events.values():
        closed = {e.dossier_id for e in stream if isinstance(e, DossierResolved | DossierWithdrawn)}
        for e in stream:
            if isinstance(e, DossierTransferred) and e.interconnect:
                transferred += 1
                assert e.dossier_id not in closed
    assert transferred == traffic.interconnect_transfers
    assert 24 <= transferred <= 60


def test_all_22_units_submit_and_their_reports_differ(
    traffic: DemoTraffic, book: ReportBook
) -> None:
    codes = {code for code, _ in city_units()}
    assert len(codes) == 22
    assert set(traffic.events_by_unit) == codes
    assert all(traffic.events_by_unit[code] for code in codes)
    wards = codes - {CITY}
    received = [book.figures(u, "2021-04").dossiers.received.total for u in wards]
    assert len(set(received)) > 15  # uneven: bigger wards receive more
    assert max(received) > 4 * min(received)


def test_five_most_overdue_wards_are_clear(book: ReportBook) -> None:
    wards = [code for code, _ in city_units() if code != CITY]
    overdue = sorted(
        ((book.figures(u, "2021-04").dossiers.in_progress.overdue, u) for u in wards),
        reverse=True,
    )
    counts = [n for n, _ in overdue]
    assert counts[:6] == sorted(set(counts[:6]), reverse=True)  # no tie up to the sixth
    assert [u for _, u in overdue[:5]] == ["21550", "21553", "21595", "21556", "21559"]


def test_applicants_are_obviously_synthetic(events: dict[str, list[Event]]) -> None:
    applicants = [
        e.applicant
        for stream in events.values()
        for e in stream
        if isinstance(e, DossierReceived) and e.applicant is not None
    ]
    assert len(applicants) > 100
    for a in applicants:
        assert a.name is not None
        assert a.name.startswith("Công dân mẫu ")
        assert a.id_number is not None
        assert a.id_number.startswith("TEST")


def test_ids_look_like_real_ones(events: dict[str, list[Event]]) -> None:
    every = [e for stream in events.values() for e in stream]
    dossiers = [e.dossier_id for e in every if isinstance(e, DossierReceived)]
    documents = [e.document_id for e in every if isinstance(e, DocumentIssued)]
    copies = [e.certification_id for e in every if isinstance(e, CopyCertified)]
    assert all("." in d and "-" in d for d in dossiers)
    assert all("/" in d for d in documents)
    assert any("Đ" in d for d in documents)  # QĐ-UBND: Vietnamese letters in an id
    assert any(" " in c for c in copies)  # "Số 12 quyển 01/2021-SCT/BS"
    codes = {e.procedure_code for e in every if isinstance(e, DossierReceived)}
    assert all(c.count(".") == 1 and c[0] in "12" for c in codes)


def test_wire_events_are_the_submitted_objects(traffic: DemoTraffic) -> None:
    objects = wire_events(traffic)
    assert objects.keys() == traffic.events_by_unit.keys()
    for unit, stream in traffic.events_by_unit.items():
        assert [msgspec.json.encode(o) for o in objects[unit]] == stream
