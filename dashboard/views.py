"""What the page shows, as typed JSON: a report in the official form, its revision history, trends
over months, the units with the most overdue dossiers. Figures come formatted as the province
writes them (consumers.reports.report_format) beside their raw values, so the page adds no
formatting of its own. Built from reports only: reports hold no personal data.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from consumers.reports.report_format import rows, vn_number
from dashboard.feed import ReportFeed, Revision
from schemas.registry import Level, Registry
from schemas.report import Report


class UnitChoice(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    level: str
    parent: str | None
    periods: list[str]


class Figure(msgspec.Struct, frozen=True, kw_only=True):
    vi: str
    en: str
    value: int | float | None
    text: str
    depth: int
    """How far the row is indented under its heading (0 for a heading)."""


class ChildColumn(msgspec.Struct, frozen=True, kw_only=True):
    """One unit below a roll-up, a few figures each."""

    code: str
    name: str
    received: str
    resolved: str
    on_time_rate: str
    in_progress: str
    overdue: str


class ReportView(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    name: str
    period: str
    title: str
    revision: int
    final: bool
    status: str
    generated_at: datetime
    published_at: datetime
    figures: list[Figure]
    children: list[ChildColumn]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    figure_vi: str
    figure_en: str
    before: str
    after: str


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    final: bool
    published_at: datetime
    generated_at: datetime
    changes: list[Change]


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    """One value per month, for the charts: raw numbers (the chart formats them vi-VN)."""

    unit: str
    name: str
    periods: list[str]
    received: list[int]
    resolved_on_time: list[int]
    resolved_late: list[int]
    on_time_rate: list[float | None]
    in_progress: list[int]
    overdue: list[int]
    online_share: list[float | None]


class OverdueUnit(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    overdue: int
    overdue_text: str
    in_progress_text: str
    by_period: list[int]


class OverdueView(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    periods: list[str]
    units: list[OverdueUnit]


def title(report: Report, name: str) -> str:
    return f"Báo cáo tháng {report.period[5:]}/{report.period[:4]} — {name or report.unit}"


def status(report: Report) -> str:
    return "chính thức / final" if report.final else "tạm tính / provisional"


def unit_name(registry: Registry, code: str) -> str:
    return registry[code].name if code in registry else code


def units(feed: ReportFeed, registry: Registry) -> list[UnitChoice]:
    """Every unit with a report, the province and cities first (the roll-ups), then the rest."""
    known = feed.units()
    order = {Level.PROVINCE: 0, Level.DISTRICT: 1, Level.WARD: 2, Level.COMMUNE: 3}
    codes = sorted(
        known,
        key=lambda c: (order[registry[c].level] if c in registry else 9, unit_name(registry, c)),
    )
    return [
        UnitChoice(
            code=c,
            name=unit_name(registry, c),
            level=registry[c].level.value if c in registry else "",
            parent=registry[c].parent if c in registry else None,
            periods=feed.periods_of(c),
        )
        for c in codes
    ]


def figures(report: Report) -> list[Figure]:
    out = []
    for vi, en, value, kind in rows(report):
        depth = (len(vi) - len(vi.lstrip(" "))) // 2
        out.append(
            Figure(
                vi=vi.strip(), en=en.strip(), value=value, text=vn_number(value, kind), depth=depth
            )
        )
    return out


def report_view(feed: ReportFeed, registry: Registry, unit: str, period: str) -> ReportView | None:
    current = feed.current(unit, period)
    if current is None:
        return None
    report, name = current.report, unit_name(registry, unit)
    children = []
    for child in registry.children(unit) if unit in registry else []:
        found = feed.current(child, period)
        if found is None:
            continue
        d = found.report.dossiers
        children.append(
            ChildColumn(
                code=child,
                name=unit_name(registry, child),
                received=vn_number(d.received.total, "n"),
                resolved=vn_number(d.resolved.total, "n"),
                on_time_rate=vn_number(d.resolved.on_time_rate, "%"),
                in_progress=vn_number(d.in_progress.total, "n"),
                overdue=vn_number(d.in_progress.overdue, "n"),
            )
        )
    return ReportView(
        unit=unit,
        name=name,
        period=period,
        title=title(report, name),
        revision=report.revision,
        final=report.final,
        status=status(report),
        generated_at=report.generated_at,
        published_at=current.stored_at,
        figures=figures(report),
        children=children,
    )


def changes(before: Report | None, after: Report) -> list[Change]:
    if before is None:
        return []
    out = []
    for old, new in zip(figures(before), figures(after), strict=True):
        if old.value != new.value:
            out.append(Change(figure_vi=new.vi, figure_en=new.en, before=old.text, after=new.text))
    return out


def history(feed: ReportFeed, unit: str, period: str) -> list[HistoryEntry]:
    """Every revision, newest first, with the figures it changed from the one before."""
    revisions: list[Revision] = feed.history(unit, period)
    out = []
    for i, rev in enumerate(revisions):
        before = revisions[i - 1].report if i else None
        out.append(
            HistoryEntry(
                revision=rev.report.revision,
                final=rev.report.final,
                published_at=rev.stored_at,
                generated_at=rev.report.generated_at,
                changes=changes(before, rev.report),
            )
        )
    return out[::-1]


def trend(feed: ReportFeed, registry: Registry, unit: str) -> Trend:
    reports = [r.report for p in feed.periods_of(unit) if (r := feed.current(unit, p))]
    return Trend(
        unit=unit,
        name=unit_name(registry, unit),
        periods=[r.period for r in reports],
        received=[r.dossiers.received.total for r in reports],
        resolved_on_time=[r.dossiers.resolved.early + r.dossiers.resolved.on_time for r in reports],
        resolved_late=[r.dossiers.resolved.late for r in reports],
        on_time_rate=[r.dossiers.resolved.on_time_rate for r in reports],
        in_progress=[r.dossiers.in_progress.total for r in reports],
        overdue=[r.dossiers.in_progress.overdue for r in reports],
        online_share=[
            r.dossiers.received.new_by_channel.online / r.dossiers.received.new
            if r.dossiers.received.new
            else None
            for r in reports
        ],
    )


def overdue(
    feed: ReportFeed, registry: Registry, unit: str, period: str, top: int = 5
) -> OverdueView:
    """The units below `unit` (every unit below it, roll-ups left out) with the most overdue
    dossiers in `period`, and each one's overdue count in every month."""
    below = [c for c in registry.codes() if unit in registry.report_units(c)[1:]]
    leaves = [c for c in below if not registry.children(c)]
    periods = sorted({p for c in leaves for p in feed.periods_of(c)})
    ranked = []
    for code in leaves:
        found = feed.current(code, period)
        if found is None:
            continue
        d = found.report.dossiers.in_progress
        by_period = [
            r.report.dossiers.in_progress.overdue if (r := feed.current(code, p)) else 0
            for p in periods
        ]
        ranked.append(
            OverdueUnit(
                code=code,
                name=unit_name(registry, code),
                overdue=d.overdue,
                overdue_text=vn_number(d.overdue, "n"),
                in_progress_text=vn_number(d.total, "n"),
                by_period=by_period,
            )
        )
    ranked.sort(key=lambda u: (-u.overdue, u.name))
    return OverdueView(period=period, periods=periods, units=ranked[:top])
