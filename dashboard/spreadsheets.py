"""A report as the city lays it out in a spreadsheet: the unit's name and period in the title,
Vietnamese headings beside English, one row per figure; a roll-up has one column per unit below
it and the roll-up's own column last. As CSV (UTF-8 with a BOM, so a spreadsheet program reads
the Vietnamese letters) and as XLSX written by openpyxl.

Values are numbers, not formatted text: a spreadsheet computes with them. In XLSX the cells
carry the number formats (`#,##0`, `0.00%`) that a Vietnamese-locale spreadsheet shows as
5.618 and 99,12%.
"""

from __future__ import annotations

import csv
import io

import msgspec
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from consumers.reports.report_format import rows
from dashboard.views import status, title
from schemas.report import Report


class Column(msgspec.Struct, frozen=True, kw_only=True):
    heading: str
    report: Report


class Sheet(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    subtitle: str
    columns: list[Column]
    """The units below first (a roll-up), the report's own unit last."""


def sheet(report: Report, name: str, below: list[tuple[str, Report]]) -> Sheet:
    subtitle = f"unit {report.unit}, period {report.period}, revision {report.revision}, " + status(
        report
    )
    columns = [Column(heading=n, report=r) for n, r in below]
    columns.append(Column(heading=f"{name} (tổng / total)" if below else name, report=report))
    return Sheet(title=title(report, name), subtitle=subtitle, columns=columns)


HEADINGS = ["Chỉ tiêu", "Figure"]


def _table(s: Sheet) -> list[tuple[str, str, str, list[int | float | None]]]:
    """(Vietnamese, English, kind, one value per column) per figure."""
    per_column = [rows(c.report) for c in s.columns]
    out = []
    for i, (vi, en, _, kind) in enumerate(per_column[0]):
        out.append((vi.strip(), en.strip(), kind, [col[i][2] for col in per_column]))
    return out


def as_csv(s: Sheet) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([s.title])
    writer.writerow([s.subtitle])
    writer.writerow([*HEADINGS, *(c.heading for c in s.columns)])
    for vi, en, _, values in _table(s):
        writer.writerow([vi, en, *("" if v is None else v for v in values)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(s: Sheet) -> bytes:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = f"{s.columns[-1].report.unit} {s.columns[-1].report.period}"
    ws.append([s.title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([s.subtitle])
    ws.append([*HEADINGS, *(c.heading for c in s.columns)])
    for cell in ws[3]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for vi, en, kind, values in _table(s):
        ws.append([vi, en, *values])
        for cell in ws[ws.max_row][2:]:
            cell.number_format = "0.00%" if kind == "%" else "#,##0"
    ws.column_dimensions["A"].width = 44
    ws.column_dimensions["B"].width = 34
    for i in range(len(s.columns)):
        ws.column_dimensions[get_column_letter(3 + i)].width = 16
    ws.freeze_panes = "C4"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
