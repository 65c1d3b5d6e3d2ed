"""What `lienthong rebuild` prints: each rebuilt report in the official form and its diff with
what was published, or the same as one JSON document for machines."""

from __future__ import annotations

from datetime import datetime

import msgspec

from consumers.audit.rebuild import Comparison, FieldDifference
from consumers.reports import report_format
from plumbing.replay import Unreadable
from schemas.registry import Registry
from schemas.report import Report


def _published_line(c: Comparison, as_of: datetime | None) -> str:
    when = f"current at {as_of.isoformat()}" if as_of is not None else "current"
    if c.published is None:
        return f"published: none ({when})"
    report = c.published.report
    return (
        f"published: revision {report.revision} ({when}), generated "
        f"{report.generated_at.isoformat(timespec='seconds')}"
    )


def text(
    comparisons: list[Comparison],
    registry: Registry,
    unreadable: list[Unreadable],
    *,
    as_of: datetime | None,
    show_all: bool,
) -> str:
    """The official form of each report shown (all when `show_all`, else those that differ),
    each followed by its figures that differ; then one summary line."""
    out: list[str] = [u.line() + "\n" for u in unreadable]
    for c in comparisons:
        if c.equal and not show_all:
            continue
        name = registry[c.unit].name if c.unit in registry else ""
        if c.rebuilt is not None:
            out.append(report_format.table(c.rebuilt, name))
        else:
            out.append(f"unit {c.unit}, period {c.period}: the log gives no such report\n")
        out.append(_published_line(c, as_of) + "\n")
        if c.equal:
            out.append("equal to what was published\n")
        elif c.published is not None and c.rebuilt is not None:
            out.extend(f"  {d.line()}\n" for d in c.differences)
        out.append("\n")
    differing = sum(not c.equal for c in comparisons)
    stored = f" (events stored by {as_of.isoformat()})" if as_of is not None else ""
    if not comparisons:
        out.append(f"no report rebuilt from the log{stored} nor published for that selection\n")
    elif differing:
        out.append(
            f"{len(comparisons)} reports rebuilt from the log{stored}; {differing} differ "
            "from what was published\n"
        )
    else:
        out.append(
            f"{len(comparisons)} reports rebuilt from the log{stored}: all equal to what was "
            "published\n"
        )
    if unreadable:
        out.append(f"{len(unreadable)} messages of the log are not events and were skipped\n")
    return "".join(out)


class _Published(msgspec.Struct, frozen=True):
    revision: int
    seq: int
    generated_at: datetime
    final: bool


class _Entry(msgspec.Struct, frozen=True):
    unit: str
    period: str
    equal: bool
    rebuilt: Report | None
    published: _Published | None
    differences: list[FieldDifference]


class _Document(msgspec.Struct, frozen=True):
    as_of: datetime | None
    compared: int
    differ: int
    reports: list[_Entry]
    unreadable: list[Unreadable]


def as_json(
    comparisons: list[Comparison], unreadable: list[Unreadable], *, as_of: datetime | None
) -> str:
    entries = [
        _Entry(
            unit=c.unit,
            period=c.period,
            equal=c.equal,
            rebuilt=c.rebuilt,
            published=(
                _Published(
                    c.published.report.revision,
                    c.published.seq,
                    c.published.report.generated_at,
                    c.published.report.final,
                )
                if c.published is not None
                else None
            ),
            differences=c.differences,
        )
        for c in comparisons
    ]
    document = _Document(
        as_of=as_of,
        compared=len(comparisons),
        differ=sum(not c.equal for c in comparisons),
        reports=entries,
        unreadable=unreadable,
    )
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"
