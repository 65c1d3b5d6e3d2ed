"""Shadow replay for audits (CONTRACT section 7): reports rebuilt from the log alone, held
against what was published, figure by figure.

`rebuild` replays the log (plumbing.replay) into a fresh `ReportBook`, the same pure rules the
live projector uses; given a moment, only events stored by then count. `published` reads what
was published: the current revisions, or those that were current at a moment (ONESTOP_REPORTS
keeps every revision, and its stored time says which one was current when). `compare` pairs
the two and says which figures differ. Nothing is written and nothing is sent to the province.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from consumers.reports.report_rules import ReportBook
from consumers.reports.report_store import REPORT_DECODER, Published
from plumbing.jetstream import Delivery
from plumbing.last_values import last_per_subject
from plumbing.replay import Unreadable, read_event, replay
from plumbing.streams import REPORTS_STREAM
from plumbing.subjects import REPORTS_PREFIX
from schemas.periods import period_end, period_index
from schemas.registry import Registry
from schemas.report import Figures, Report


class BadSelection(ValueError):
    """A unit that is not in the registry, or a period that is not YYYY-MM."""


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which reports a rebuild shows: of `unit` (None: every unit) and `period` (None: all)."""

    unit: str | None = None
    period: str | None = None

    @property
    def reports(self) -> str:
        """The subject filter of the selected reports in ONESTOP_REPORTS."""
        return f"{REPORTS_PREFIX}.{self.unit or '*'}.{self.period or '*'}"

    def holds(self, unit: str, period: str) -> bool:
        return (self.unit is None or unit == self.unit) and (
            self.period is None or period == self.period
        )


def selection(registry: Registry, unit: str | None, period: str | None) -> Selection:
    """The reports of `unit` (and the roll-up of every unit below it) and `period`; BadSelection
    if the unit is not in the registry or the period is not YYYY-MM."""
    if period is not None:
        try:
            period_index(period)
        except ValueError as e:
            raise BadSelection(f"--period {period!r} is not a period: give YYYY-MM") from e
    if unit is None:
        return Selection(period=period)
    if unit not in registry:
        raise BadSelection(f"unit {unit} is not in the registry (give the right --registry)")
    # The whole log is replayed even for one ward: which periods a unit has a report for
    # depends on the latest period of any unit's events (dossiers carry into it).
    return Selection(unit=unit, period=period)


class Rebuilt(msgspec.Struct, frozen=True, kw_only=True):
    book: ReportBook
    unreadable: list[Unreadable]
    """Messages of the log that are not events: reported and skipped, as the projector does."""


async def rebuild(
    client: Client,
    registry: Registry,
    *,
    stored_by: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Every report's figures from the log alone (only events stored by `stored_by`, if
    given); `on_progress(n)` after each n messages read."""
    book = ReportBook()
    unreadable: list[Unreadable] = []
    limit = int(stored_by.timestamp() * 1e9) if stored_by is not None else None
    chains: dict[str, tuple[str, ...]] = {}

    def apply(delivery: Delivery, msg: Msg) -> bool:
        if limit is not None and delivery.stored_ns > limit:
            return False
        if on_progress is not None:
            on_progress(1)
        event = read_event(delivery, msg)
        if isinstance(event, Unreadable):
            unreadable.append(event)
            return True
        if event.unit not in chains:
            known = event.unit in registry
            chains[event.unit] = registry.report_units(event.unit) if known else (event.unit,)
        book.apply(event, chains[event.unit])
        return True

    await replay(client, apply)
    return Rebuilt(book=book, unreadable=unreadable)


async def published(
    client: Client, chosen: Selection, as_of: datetime | None = None
) -> dict[tuple[str, str], Published]:
    """The selected reports as published: the current revision of each, or (given `as_of`)
    the revision that was current then, i.e. the last one stored by that moment."""
    if as_of is None:
        found: dict[tuple[str, str], Published] = {}
        for msg in await last_per_subject(client, REPORTS_STREAM, chosen.reports):
            report = REPORT_DECODER.decode(msg.data)
            found[(report.unit, report.period)] = Published(report, msg.metadata.sequence.stream)
        return found
    limit = int(as_of.timestamp() * 1e9)
    then: dict[tuple[str, str], Published] = {}

    def take(delivery: Delivery, msg: Msg) -> bool:
        if delivery.stored_ns > limit:
            return False
        report = REPORT_DECODER.decode(msg.data)
        then[(report.unit, report.period)] = Published(report, delivery.seq)
        return True

    await replay(client, take, chosen.reports, stream=REPORTS_STREAM)
    return then


class FieldDifference(msgspec.Struct, frozen=True):
    field: str
    """A report figure's path, e.g. `dossiers.in_progress.overdue`."""
    rebuilt: int | float | None
    published: int | float | None

    def line(self) -> str:
        return f"{self.field}: rebuilt {_plain(self.rebuilt)}, published {_plain(self.published)}"


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """One report rebuilt from the log beside the revision it is held against."""

    unit: str
    period: str
    rebuilt: Report | None
    """None: published, but the log gives no such report."""
    published: Published | None
    """None: the log gives this report, but none was published (by the moment compared)."""
    differences: list[FieldDifference]

    @property
    def equal(self) -> bool:
        return self.rebuilt is not None and self.published is not None and not self.differences


def _plain(value: int | float | None) -> str:
    return "null" if value is None else str(value)


def figure_values(figures: Figures) -> dict[str, Any]:
    """Every figure by its dotted path, in the report's own order."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", msgspec.to_builtins(figures))
    return flat


def differences(rebuilt: Figures | None, published: Figures | None) -> list[FieldDifference]:
    """Field by field; a side that is missing counts every figure of the other."""
    ours = figure_values(rebuilt) if rebuilt is not None else {}
    theirs = figure_values(published) if published is not None else {}
    return [
        FieldDifference(name, ours.get(name), theirs.get(name))
        for name in dict.fromkeys([*ours, *theirs])
        if ours.get(name) != theirs.get(name) or rebuilt is None or published is None
    ]


def compare(
    book: ReportBook,
    seen: dict[tuple[str, str], Published],
    now: datetime,
    chosen: Selection | None = None,
) -> list[Comparison]:
    """Every selected report of the book or of `seen`, each rebuilt as its published revision
    was judged: a provisional one as of its own `generated_at`, a final one as final; one that
    was not published as of `now` (final once its period ended by then)."""
    chosen = chosen or Selection()
    keys = {(u, p) for u in book.units() for p in book.periods(u)}
    out: list[Comparison] = []
    for unit, period in sorted(k for k in keys | set(seen) if chosen.holds(*k)):
        revision = seen.get((unit, period))
        report: Report | None = None
        if (unit, period) in keys:
            if revision is not None:
                final = revision.report.final
                moment = revision.report.generated_at
            else:
                final = now >= period_end(period)
                moment = now
            figures = book.figures(unit, period, None if final else moment)
            report = Report(
                unit=unit,
                period=period,
                revision=0,
                final=final,
                generated_at=moment,
                dossiers=figures.dossiers,
                documents=figures.documents,
                copies=figures.copies,
            )
        out.append(
            Comparison(
                unit=unit,
                period=period,
                rebuilt=report,
                published=revision,
                differences=differences(
                    report.figures if report is not None else None,
                    revision.report.figures if revision is not None else None,
                ),
            )
        )
    return out
