"""CONTRACT section 6, rule by rule, against `consumers.reports.report_rules.ReportBook`.

Each test is named after the rule it pins down and fails if that rule is broken. The last part
compares the book with a literal, slow reference computation over random event streams.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.reports.report_rules import ReportBook, rate
from schemas.events import (
    Channel,
    CopyCertified,
    DeadlineReason,
    DocumentIssued,
    DossierDeadlineChanged,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierSupplementRequested,
    DossierTransferred,
    DossierWithdrawn,
    Event,
    Outcome,
    ReturnMethod,
)
from schemas.report import Figures
from tests.report_reference import CHAINS, Reference, instants, streams

_ids = itertools.count()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def received(
    dossier: str,
    when: str,
    due: str,
    *,
    unit: str = "21550",
    channel: Channel = Channel.DIRECT,
    level: int | None = None,
    code: str = "1.001612",
) -> DossierReceived:
    if channel is Channel.ONLINE and level is None:
        level = 3
    return DossierReceived(
        event_id=f"e-{next(_ids)}",
        unit=unit,
        occurred_at=at(when),
        dossier_id=dossier,
        procedure_code=code,
        channel=channel,
        service_level=level,  # type: ignore[arg-type]
        due_at=at(due),
    )


def resolved(dossier: str, when: str, *, unit: str = "21550") -> DossierResolved:
    return DossierResolved(
        event_id=f"e-{next(_ids)}",
        unit=unit,
        occurred_at=at(when),
        dossier_id=dossier,
        outcome=Outcome.APPROVED,
    )


def withdrawn(dossier: str, when: str, *, unit: str = "21550") -> DossierWithdrawn:
    return DossierWithdrawn(
        event_id=f"e-{next(_ids)}", unit=unit, occurred_at=at(when), dossier_id=dossier
    )


def deadline(dossier: str, when: str, due: str, *, unit: str = "21550") -> DossierDeadlineChanged:
    return DossierDeadlineChanged(
        event_id=f"e-{next(_ids)}",
        unit=unit,
        occurred_at=at(when),
        dossier_id=dossier,
        due_at=at(due),
        reason=DeadlineReason.EXTENSION,
    )


def returned(
    dossier: str, when: str, method: ReturnMethod, *, unit: str = "21550"
) -> DossierResultReturned:
    return DossierResultReturned(
        event_id=f"e-{next(_ids)}",
        unit=unit,
        occurred_at=at(when),
        dossier_id=dossier,
        method=method,
    )


def document(when: str, signed: bool, sent: bool, *, unit: str = "21550") -> DocumentIssued:
    n = next(_ids)
    return DocumentIssued(
        event_id=f"e-{n}",
        unit=unit,
        occurred_at=at(when),
        document_id=f"{n}/UBND-VP",
        digitally_signed=signed,
        sent_via_axis=sent,
    )


def copy(when: str, electronic: bool, *, unit: str = "21550") -> CopyCertified:
    n = next(_ids)
    return CopyCertified(
        event_id=f"e-{n}",
        unit=unit,
        occurred_at=at(when),
        certification_id=f"{n}/2021/SCT-BS",
        electronic=electronic,
    )


def book_of(*events: Event) -> ReportBook:
    book = ReportBook()
    for event in events:
        book.apply(event, CHAINS[event.unit])
    return book


def as_dict(figures: Figures) -> dict[str, object]:
    """Figures as plain nested dicts, so a failing comparison shows which number differs."""
    out: dict[str, object] = msgspec.to_builtins(figures)
    return out


# --- periods -----------------------------------------------------------------------------------


def test_period_is_calendar_month_in_utc_plus_7() -> None:
    book = book_of(
        received("late-night", "2021-03-31T17:30:00Z", "2021-04-05T17:00:00+07:00"),
        received("before-midnight", "2021-03-31T16:59:59Z", "2021-04-05T17:00:00+07:00"),
    )
    assert book.figures("21550", "2021-04").dossiers.received.new == 1
    assert book.figures("21550", "2021-03").dossiers.received.new == 1
    assert book.periods("21550") == ["2021-03", "2021-04"]


def test_event_exactly_at_period_start_belongs_to_that_period() -> None:
    book = book_of(
        received("a", "2021-04-01T00:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        document("2021-03-31T17:00:00Z", signed=True, sent=True),
    )
    april = book.figures("21550", "2021-04")
    assert april.dossiers.received.new == 1
    assert april.documents.issued == 1
    assert book.periods("21550") == ["2021-04"]


# --- received ----------------------------------------------------------------------------------


def test_new_is_split_by_channel_and_total_is_carried_over_plus_new() -> None:
    book = book_of(
        received("old", "2021-03-10T09:00:00+07:00", "2021-05-10T17:00:00+07:00"),
        received("d", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received(
            "o", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00", channel=Channel.ONLINE
        ),
        received(
            "p1", "2021-04-03T09:00:00+07:00", "2021-04-09T17:00:00+07:00", channel=Channel.POSTAL
        ),
        received(
            "p2", "2021-04-03T10:00:00+07:00", "2021-04-09T17:00:00+07:00", channel=Channel.POSTAL
        ),
    )
    r = book.figures("21550", "2021-04").dossiers.received
    assert (r.new_by_channel.direct, r.new_by_channel.online, r.new_by_channel.postal) == (1, 1, 2)
    assert r.new == 4
    assert r.carried_over == 1
    assert r.total == 5


def test_carried_over_equals_previous_in_progress() -> None:
    book = book_of(
        # open at the end of March: carried into April, and still into May when never closed
        received("open", "2021-03-02T09:00:00+07:00", "2021-03-09T17:00:00+07:00"),
        received("ext", "2021-03-05T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        # resolved before April's start: not carried
        received("done", "2021-03-03T09:00:00+07:00", "2021-03-10T17:00:00+07:00"),
        resolved("done", "2021-03-31T16:00:00Z"),
        # resolved exactly at April's start: still carried (closed "before start" is strict)
        received("edge", "2021-03-04T09:00:00+07:00", "2021-04-10T17:00:00+07:00"),
        resolved("edge", "2021-04-01T00:00:00+07:00"),
        # withdrawn in March: not carried
        received("gone", "2021-03-04T09:00:00+07:00", "2021-04-10T17:00:00+07:00"),
        withdrawn("gone", "2021-03-20T09:00:00+07:00"),
        # a document in May makes May a report period
        document("2021-05-03T09:00:00+07:00", signed=True, sent=True),
    )
    march = book.figures("21550", "2021-03").dossiers
    april = book.figures("21550", "2021-04").dossiers
    may = book.figures("21550", "2021-05").dossiers
    assert march.in_progress.total == 3
    assert april.received.carried_over == march.in_progress.total == 3
    assert april.in_progress.total == 2  # "edge" resolved in April
    assert may.received.carried_over == april.in_progress.total == 2
    assert may.received.new == 0
    assert book.periods("21550") == ["2021-03", "2021-04", "2021-05"]


def test_received_total_is_resolved_withdrawn_and_in_progress() -> None:
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received("b", "2021-04-01T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received("c", "2021-04-01T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        resolved("a", "2021-04-05T09:00:00+07:00"),
        withdrawn("b", "2021-04-05T09:00:00+07:00"),
    )
    d = book.figures("21550", "2021-04").dossiers
    assert (d.resolved.total, d.withdrawn, d.in_progress.total) == (1, 1, 1)
    assert d.received.total == d.resolved.total + d.withdrawn + d.in_progress.total


# --- resolved ----------------------------------------------------------------------------------


def test_resolved_after_due_is_late_and_exactly_at_due_is_not() -> None:
    due = "2021-04-09T11:00:00+07:00"
    book = book_of(
        received("late", "2021-04-01T09:00:00+07:00", due),
        received("exact", "2021-04-01T09:00:00+07:00", due),
        received("micro", "2021-04-01T09:00:00+07:00", due),
        resolved("late", "2021-04-09T15:00:00+07:00"),  # same day, hours after: late
        resolved("exact", "2021-04-09T04:00:00Z"),  # the due instant itself: on time
        resolved("micro", "2021-04-09T04:00:00.000001Z"),  # one microsecond after: late
    )
    r = book.figures("21550", "2021-04").dossiers.resolved
    assert (r.early, r.on_time, r.late) == (0, 1, 2)


def test_early_means_earlier_calendar_day_in_vietnam() -> None:
    due = "2021-04-15T17:00:00+07:00"
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", due),
        received("b", "2021-04-01T09:00:00+07:00", due),
        received("c", "2021-04-01T09:00:00+07:00", due),
        # 2021-04-15 00:30 in Vietnam: the due day, so on time (in UTC it is the 14th)
        resolved("a", "2021-04-14T17:30:00Z"),
        # 2021-04-14 23:59 in Vietnam: the day before, so early
        resolved("b", "2021-04-14T16:59:00Z"),
        # the due day, before the due hour: on time
        resolved("c", "2021-04-15T08:00:00+07:00"),
    )
    r = book.figures("21550", "2021-04").dossiers.resolved
    assert (r.early, r.on_time, r.late) == (1, 2, 0)
    assert r.on_time_rate == 1.0


def test_deadline_changed_before_resolution_judges_it() -> None:
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        deadline("a", "2021-04-05T10:00:00+07:00", "2021-04-12T17:00:00+07:00"),
        resolved("a", "2021-04-08T09:00:00+07:00"),  # late by the first due_at, early by the new
    )
    r = book.figures("21550", "2021-04").dossiers.resolved
    assert (r.early, r.on_time, r.late) == (1, 0, 0)


def test_deadline_changed_after_resolution_does_not_judge_it() -> None:
    # submitted before the resolution, but dated after it: not "before the resolution"
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        deadline("a", "2021-04-08T09:00:00.000001+07:00", "2021-04-12T17:00:00+07:00"),
        resolved("a", "2021-04-08T09:00:00+07:00"),
    )
    r = book.figures("21550", "2021-04").dossiers.resolved
    assert (r.early, r.on_time, r.late) == (0, 0, 1)


def test_deadline_changed_at_the_resolution_instant_does_not_judge_it() -> None:
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        deadline("a", "2021-04-08T02:00:00Z", "2021-04-12T17:00:00+07:00"),
        resolved("a", "2021-04-08T09:00:00+07:00"),
    )
    assert book.figures("21550", "2021-04").dossiers.resolved.late == 1


def test_last_deadline_change_is_the_latest_occurred_at_ties_to_the_log() -> None:
    book = book_of(
        received("a", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        deadline("a", "2021-04-04T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        deadline("a", "2021-04-03T09:00:00+07:00", "2021-04-06T17:00:00+07:00"),  # older change
        resolved("a", "2021-04-10T09:00:00+07:00"),
        received("b", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        deadline("b", "2021-04-04T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        deadline("b", "2021-04-04T02:00:00Z", "2021-04-06T17:00:00+07:00"),  # same instant
        resolved("b", "2021-04-10T09:00:00+07:00"),
    )
    r = book.figures("21550", "2021-04").dossiers.resolved
    assert (r.early, r.late) == (1, 1)  # a: due 04-20 (early); b: the later-logged 04-06 (late)


def test_on_time_rate_four_decimals_half_even_and_null_when_none() -> None:
    assert rate(4268, 4306) == 0.9912
    assert rate(1605, 1658) == 0.968
    assert rate(1, 20_000) == 0.0  # 0.00005: half to even, down to 0.0000
    assert rate(3, 20_000) == 0.0002  # 0.00015: half to even, up to 0.0002
    assert rate(0, 0) is None
    book = book_of(received("a", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"))
    assert book.figures("21550", "2021-04").dossiers.resolved.on_time_rate is None
    events: list[Event] = []
    for k in range(3):
        events.append(received(f"d{k}", "2021-04-01T09:00:00+07:00", "2021-04-05T17:00:00+07:00"))
    events += [
        resolved("d0", "2021-04-02T09:00:00+07:00"),
        resolved("d1", "2021-04-02T09:00:00+07:00"),
        resolved("d2", "2021-04-07T09:00:00+07:00"),
    ]
    assert book_of(*events).figures("21550", "2021-04").dossiers.resolved.on_time_rate == 0.6667


# --- withdrawn, in progress --------------------------------------------------------------------


def test_withdrawn_closes_without_resolving() -> None:
    book = book_of(
        received("a", "2021-03-20T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        withdrawn("a", "2021-04-02T09:00:00+07:00"),
        resolved("a", "2021-04-03T09:00:00+07:00"),  # after closing: ignored
    )
    april = book.figures("21550", "2021-04").dossiers
    assert april.withdrawn == 1
    assert april.resolved.total == 0
    assert april.in_progress.total == 0
    assert april.received.total == 1
    assert book.figures("21550", "2021-03").dossiers.in_progress.total == 1


def test_in_progress_overdue_uses_due_at_as_of_period_end() -> None:
    book = book_of(
        received("a", "2021-03-02T09:00:00+07:00", "2021-03-20T17:00:00+07:00"),
        # extended in April: at the end of March it was overdue, at the end of April it is not
        deadline("a", "2021-04-02T09:00:00+07:00", "2021-05-20T17:00:00+07:00"),
        received("b", "2021-03-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
    )
    march = book.figures("21550", "2021-03").dossiers.in_progress
    april = book.figures("21550", "2021-04").dossiers.in_progress
    assert (march.within_deadline, march.overdue) == (1, 1)
    assert (april.within_deadline, april.overdue) == (1, 1)  # a within, b overdue


def test_due_exactly_at_period_end_is_within_deadline() -> None:
    book = book_of(
        received("a", "2021-04-02T09:00:00+07:00", "2021-04-30T17:00:00Z"),  # = May 1 00:00 VN
        received("b", "2021-04-02T09:00:00+07:00", "2021-04-30T16:59:59.999999Z"),
    )
    april = book.figures("21550", "2021-04").dossiers.in_progress
    assert (april.within_deadline, april.overdue) == (1, 1)
    may = book.figures("21550", "2021-05").dossiers.in_progress
    assert (may.within_deadline, may.overdue) == (0, 2)  # computable, though not yet a report
    assert book.periods("21550") == ["2021-04"]


def test_dossier_closed_exactly_at_period_end_is_in_progress_at_that_end() -> None:
    book = book_of(
        received("a", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        resolved("a", "2021-05-01T00:00:00+07:00"),
    )
    assert book.figures("21550", "2021-04").dossiers.in_progress.overdue == 1
    may = book.figures("21550", "2021-05").dossiers
    assert (may.received.carried_over, may.resolved.late, may.in_progress.total) == (1, 1, 0)


# --- returns, online procedures, documents, copies ---------------------------------------------


def test_returned_by_post() -> None:
    book = book_of(
        received("a", "2021-03-25T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        received("b", "2021-03-25T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        received("c", "2021-03-25T09:00:00+07:00", "2021-04-05T17:00:00+07:00"),
        resolved("a", "2021-03-30T09:00:00+07:00"),
        resolved("b", "2021-03-30T09:00:00+07:00"),
        resolved("c", "2021-03-30T09:00:00+07:00"),
        returned("a", "2021-03-31T17:30:00Z", ReturnMethod.POSTAL),  # April in Vietnam
        returned("b", "2021-03-31T10:00:00+07:00", ReturnMethod.POSTAL),
        returned("c", "2021-04-02T10:00:00+07:00", ReturnMethod.COUNTER),
        returned("a", "2021-04-03T10:00:00+07:00", ReturnMethod.POSTAL),  # twice: ignored
    )
    assert book.figures("21550", "2021-03").dossiers.returned_by_post == 1
    assert book.figures("21550", "2021-04").dossiers.returned_by_post == 1


def test_online_procedures_distinct_by_level() -> None:
    online = Channel.ONLINE
    day, due = "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"
    book = book_of(
        received("a", day, due, channel=online, level=3, code="1.001612"),
        received("b", day, due, channel=online, level=3, code="1.001612"),
        received("c", day, due, channel=online, level=3, code="2.000889"),
        received("d", day, due, channel=online, level=4, code="1.001612"),
        received("e", day, due, channel=Channel.DIRECT, code="1.003003"),  # not online
        received("f", "2021-03-31T16:00:00Z", due, channel=online, level=4, code="9.9"),  # March
    )
    procs = book.figures("21550", "2021-04").dossiers.online_procedures
    assert (procs.level3, procs.level4) == (2, 1)
    assert book.figures("21550", "2021-03").dossiers.online_procedures.level4 == 1


def test_online_procedures_distinct_across_units_in_rollup() -> None:
    online = Channel.ONLINE
    day, due = "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"
    book = book_of(
        received("a", day, due, unit="21550", channel=online, level=3, code="1.001612"),
        received("a", day, due, unit="21553", channel=online, level=3, code="1.001612"),
        received("b", day, due, unit="21553", channel=online, level=3, code="2.000889"),
        received("c", day, due, unit="540", channel=online, level=4, code="1.001612"),
    )
    assert book.figures("21550", "2021-04").dossiers.online_procedures.level3 == 1
    assert book.figures("21553", "2021-04").dossiers.online_procedures.level3 == 2
    city = book.figures("540", "2021-04").dossiers.online_procedures
    assert (city.level3, city.level4) == (2, 1)  # not 1 + 2
    assert book.figures("540", "2021-04").dossiers.received.new_by_channel.online == 4


def test_documents_rate_four_decimals_and_null_when_none() -> None:
    events: list[Event] = [document("2021-04-02T09:00:00+07:00", True, True) for _ in range(2)]
    events += [
        document("2021-04-02T09:00:00+07:00", True, False),  # signed, not sent: not counted
        document("2021-04-02T09:00:00+07:00", False, True),  # sent, not signed: not counted
        received("a", "2021-05-02T09:00:00+07:00", "2021-05-09T17:00:00+07:00"),
    ]
    book = book_of(*events)
    april = book.figures("21550", "2021-04").documents
    assert (april.issued, april.signed_and_sent, april.rate) == (4, 2, 0.5)
    events = [document("2021-04-02T09:00:00+07:00", True, True) for _ in range(2)]
    events.append(document("2021-04-02T09:00:00+07:00", False, False))
    assert book_of(*events).figures("21550", "2021-04").documents.rate == 0.6667
    may = book.figures("21550", "2021-05").documents
    assert (may.issued, may.signed_and_sent, may.rate) == (0, 0, None)


def test_copies_certified_and_electronic() -> None:
    book = book_of(
        copy("2021-04-02T09:00:00+07:00", True),
        copy("2021-04-02T09:00:00+07:00", False),
        copy("2021-03-31T17:00:00Z", True),
        copy("2021-03-31T16:59:59Z", True),
    )
    april = book.figures("21550", "2021-04").copies
    assert (april.certified, april.electronic) == (3, 2)
    assert book.figures("21550", "2021-03").copies.certified == 1


# --- roll-ups, periods, late events ------------------------------------------------------------


def test_rollup_sums_its_units_and_own_desk() -> None:
    due = "2021-04-09T17:00:00+07:00"
    book = book_of(
        received("a", "2021-04-02T09:00:00+07:00", due, unit="21550"),
        received("a", "2021-04-02T09:00:00+07:00", due, unit="21553"),  # another unit's "a"
        received("a", "2021-04-02T09:00:00+07:00", due, unit="540"),
        resolved("a", "2021-04-03T09:00:00+07:00", unit="21553"),
        document("2021-04-02T09:00:00+07:00", True, True, unit="540"),
        copy("2021-04-02T09:00:00+07:00", True, unit="21550"),
    )
    city = book.figures("540", "2021-04")
    assert city.dossiers.received.new == 3
    assert city.dossiers.resolved.total == 1
    assert city.dossiers.in_progress.total == 2
    assert (city.documents.issued, city.copies.certified) == (1, 1)
    assert book.figures("52", "2021-04") == city
    assert book.figures("21550", "2021-04").dossiers.resolved.total == 0
    assert sorted(book.units()) == ["21550", "21553", "52", "540"]


def test_later_events_count_in_the_units_the_dossier_was_received_under() -> None:
    book = ReportBook()
    book.apply(
        received("a", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"), CHAINS["21550"]
    )
    book.apply(resolved("a", "2021-04-03T09:00:00+07:00"), ("21550", "999"))  # a wrong chain
    assert book.figures("540", "2021-04").dossiers.resolved.total == 1
    assert book.figures("999", "2021-04").dossiers.resolved.total == 0


def test_report_periods_from_first_event_to_latest_in_book() -> None:
    book = book_of(
        received("a", "2021-01-15T09:00:00+07:00", "2021-01-20T17:00:00+07:00", unit="21553"),
        copy("2021-03-10T09:00:00+07:00", True, unit="21550"),
        document("2021-05-10T09:00:00+07:00", True, True, unit="540"),
    )
    assert book.latest_period() == "2021-05"
    assert book.periods("21553") == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05"]
    assert book.periods("21550") == ["2021-03", "2021-04", "2021-05"]
    assert book.periods("540") == book.periods("52") == book.periods("21553")
    assert book.periods("99999") == []
    # a period without events of its own still carries the open dossier
    assert book.figures("21553", "2021-04").dossiers.received.carried_over == 1
    assert book.figures("21553", "2021-04").dossiers.in_progress.overdue == 1
    assert ReportBook().latest_period() is None


def test_late_event_changes_its_period_and_later_ones_only() -> None:
    book = book_of(
        received("a", "2021-02-10T09:00:00+07:00", "2021-02-20T17:00:00+07:00"),
        received("b", "2021-03-10T09:00:00+07:00", "2021-03-20T17:00:00+07:00"),
        document("2021-05-10T09:00:00+07:00", True, True),
    )
    periods = book.periods("540")
    before = {(u, p): book.figures(u, p) for u in book.units() for p in periods}
    late = resolved("a", "2021-03-31T17:30:00Z")  # April in Vietnam, submitted in May
    assert book.apply(late, CHAINS["21550"]) == "2021-04"
    after = {(u, p): book.figures(u, p) for u in book.units() for p in periods}
    for (unit, period), figures in before.items():
        if period < "2021-04":
            assert after[unit, period] == figures
    assert after["540", "2021-04"] != before["540", "2021-04"]
    assert after["540", "2021-05"] != before["540", "2021-05"]
    assert after["540", "2021-04"].dossiers.resolved.late == 1
    assert after["540", "2021-05"].dossiers.received.carried_over == 1


def test_apply_returns_none_when_nothing_changes() -> None:
    book = book_of(received("a", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"))
    supplement = DossierSupplementRequested(
        event_id="s", unit="21550", occurred_at=at("2021-04-03T09:00:00+07:00"), dossier_id="a"
    )
    transfer = DossierTransferred(
        event_id="t",
        unit="21550",
        occurred_at=at("2021-04-03T10:00:00+07:00"),
        dossier_id="a",
        to_agency="000.00.12.H08",
        interconnect=True,
    )
    assert book.apply(supplement, CHAINS["21550"]) is None
    assert book.apply(transfer, CHAINS["21550"]) is None
    counter = returned("a", "2021-04-04T09:00:00+07:00", ReturnMethod.COUNTER)
    assert book.apply(counter, CHAINS["21550"]) is None
    # ... but an event that opens a new period makes new reports exist
    may_note = DossierSupplementRequested(
        event_id="s2", unit="21550", occurred_at=at("2021-05-03T09:00:00+07:00"), dossier_id="a"
    )
    assert book.apply(may_note, CHAINS["21550"]) == "2021-05"
    assert book.periods("21550") == ["2021-04", "2021-05"]


def test_unknown_dossier_and_second_receipt_are_ignored() -> None:
    book = book_of(received("a", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"))
    snapshot = book.snapshot()
    again = received(
        "a", "2021-04-05T09:00:00+07:00", "2021-04-20T17:00:00+07:00", channel=Channel.POSTAL
    )
    assert book.apply(again, CHAINS["21550"]) is None
    assert book.apply(resolved("nobody", "2021-06-01T09:00:00+07:00"), CHAINS["21550"]) is None
    other_unit = resolved("a", "2021-04-03T09:00:00+07:00", unit="21553")
    assert book.apply(other_unit, CHAINS["21553"]) is None  # dossiers are keyed by unit too
    assert book.snapshot() == snapshot
    assert book.latest_period() == "2021-04"


def test_second_close_is_ignored() -> None:
    book = book_of(
        received("a", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        resolved("a", "2021-04-03T09:00:00+07:00"),
    )
    assert book.apply(withdrawn("a", "2021-04-04T09:00:00+07:00"), CHAINS["21550"]) is None
    assert book.apply(resolved("a", "2021-04-20T09:00:00+07:00"), CHAINS["21550"]) is None
    d = book.figures("21550", "2021-04").dossiers
    assert (d.resolved.early, d.resolved.late, d.withdrawn) == (1, 0, 0)


# --- provisional reports ------------------------------------------------------------------------


def test_provisional_overdue_as_of() -> None:
    book = book_of(
        received("a", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received("b", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        received("c", "2021-04-02T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        deadline("c", "2021-04-08T09:00:00+07:00", "2021-04-12T17:00:00+07:00"),
    )
    on_10th = book.figures("21550", "2021-04", as_of=at("2021-04-10T09:00:00+07:00"))
    assert (on_10th.dossiers.in_progress.within_deadline, on_10th.dossiers.in_progress.overdue) == (
        2,
        1,
    )
    on_7th = book.figures("21550", "2021-04", as_of=at("2021-04-07T09:00:00+07:00"))
    # c's extension had not happened yet on the 7th, but its first due_at was still ahead
    assert on_7th.dossiers.in_progress.overdue == 0
    final = book.figures("21550", "2021-04")
    assert final.dossiers.in_progress.overdue == 3
    at_end = book.figures("21550", "2021-04", as_of=at("2021-04-30T17:00:00Z"))
    assert at_end == final


def test_provisional_in_progress_counts_received_before_and_open_at_as_of() -> None:
    book = book_of(
        received("a", "2021-03-25T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received("b", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        received("c", "2021-04-12T09:00:00+07:00", "2021-04-20T17:00:00+07:00"),
        resolved("a", "2021-04-11T09:00:00+07:00"),
        withdrawn("b", "2021-04-03T09:00:00+07:00"),
        # exactly at as_of: d is not yet closed before it, e is not yet received before it
        received("d", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00", unit="21553"),
        resolved("d", "2021-04-10T02:00:00Z", unit="21553"),
        received("e", "2021-04-10T09:00:00+07:00", "2021-04-20T17:00:00+07:00", unit="540"),
    )
    city = book.figures("540", "2021-04", as_of=at("2021-04-10T09:00:00+07:00"))
    # a: open and overdue on the 10th (resolved later); b: withdrawn before; c: not yet received
    assert msgspec.to_builtins(city.dossiers.in_progress) == {
        "total": 2,
        "within_deadline": 1,
        "overdue": 1,
    }
    assert city.dossiers.received.carried_over == 1  # carried_over is about the period's start
    assert city.dossiers.resolved.late == 1  # every known event of the period counts
    assert city.dossiers.received.new == 4


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshot_restore_roundtrip() -> None:
    first: list[Event] = [
        received("a", "2021-03-25T09:00:00+07:00", "2021-04-09T17:00:00+07:00"),
        received("b", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00", unit="540"),
        received(
            "c", "2021-04-02T09:00:00+07:00", "2021-04-20T17:00:00+07:00", channel=Channel.ONLINE
        ),
        deadline("a", "2021-04-08T09:00:00+07:00", "2021-04-30T17:00:00+07:00"),
        document("2021-04-02T09:00:00+07:00", True, False, unit="21553"),
        copy("2021-04-02T09:00:00+07:00", True),
    ]
    rest: list[Event] = [
        resolved("a", "2021-04-11T09:00:00+07:00"),
        returned("a", "2021-04-12T09:00:00+07:00", ReturnMethod.POSTAL),
        received(
            "d",
            "2021-05-02T09:00:00+07:00",
            "2021-05-20T17:00:00+07:00",
            channel=Channel.ONLINE,
            code="1.001612",
        ),
        withdrawn("c", "2021-05-03T09:00:00+07:00"),
        resolved("b", "2021-04-20T09:00:00+07:00", unit="540"),
    ]
    book = book_of(*first)
    restored = ReportBook.restore(book.snapshot())
    assert restored.snapshot() == book.snapshot()
    for event in rest:
        assert restored.apply(event, CHAINS[event.unit]) == book.apply(event, CHAINS[event.unit])
    assert restored.units() == book.units()
    as_of = at("2021-05-02T12:00:00+07:00")
    for unit in book.units():
        assert restored.periods(unit) == book.periods(unit)
        for period in book.periods(unit):
            assert restored.figures(unit, period) == book.figures(unit, period)
            assert restored.figures(unit, period, as_of) == book.figures(unit, period, as_of)


def test_unknown_unit_has_empty_figures() -> None:
    figures = ReportBook().figures("21550", "2021-04")
    assert figures.dossiers.received.total == 0
    assert figures.dossiers.resolved.on_time_rate is None
    assert figures.documents.rate is None


# --- the book against a literal reading of the contract, over random streams -------------------


def all_figures(book: ReportBook) -> dict[tuple[str, str], Figures]:
    return {(u, p): book.figures(u, p) for u in book.units() for p in book.periods(u)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), split=st.integers(0, 80), as_of=instants)
def test_book_matches_a_literal_reading_of_the_contract(
    events: list[Event], split: int, as_of: datetime
) -> None:
    stream = [(e, CHAINS[e.unit]) for e in events]
    book = ReportBook()
    for k, (event, chain) in enumerate(stream):
        if k == split:  # a projector restarting from its snapshot carries on identically
            book = ReportBook.restore(book.snapshot())
        before = all_figures(book)
        changed = book.apply(event, chain)
        after = all_figures(book)
        # an event changes only the reports of its own period and later ones
        for key in before.keys() | after.keys():
            if changed is None or key[1] < changed:
                assert before.get(key) == after.get(key), (event, key)
    reference = Reference(stream)
    assert set(book.units()) == reference.units()
    for unit in book.units():
        assert book.periods(unit) == reference.periods(unit)
        for period in book.periods(unit):
            assert as_dict(book.figures(unit, period)) == reference.figures(unit, period)
            provisional = as_dict(book.figures(unit, period, as_of))
            assert provisional == reference.figures(unit, period, as_of), (unit, period)
