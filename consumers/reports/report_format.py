"""A report as the province reads it: a table with the city report's own Vietnamese wording
(`reference/quy-nhon-2021-04.md`) beside English row names, numbers formatted the Vietnamese way
(5.618; 99,12%); or as JSON or CSV."""

from __future__ import annotations

import csv
import io

import msgspec

from schemas.report import Report

Row = tuple[str, str, int | float | None, str]  # Vietnamese, English, value, kind


def rows(report: Report) -> list[Row]:
    d, doc, cp = report.dossiers, report.documents, report.copies
    r = d.received
    return [
        ("Tổng số hồ sơ tiếp nhận", "Dossiers received, total", r.total, "n"),
        ("  Kỳ trước chuyển sang", "  carried over", r.carried_over, "n"),
        ("  Tiếp nhận mới", "  newly received", r.new, "n"),
        ("    Trực tiếp", "    at the counter", r.new_by_channel.direct, "n"),
        ("    Trực tuyến mức độ 3, mức độ 4", "    online", r.new_by_channel.online, "n"),
        ("    Qua dịch vụ bưu chính", "    by post", r.new_by_channel.postal, "n"),
        ("Đã giải quyết và trả kết quả", "Resolved", d.resolved.total, "n"),
        ("  Đúng và trước hạn", "  on time or early", d.resolved.early + d.resolved.on_time, "n"),
        ("  Trước hạn", "  early", d.resolved.early, "n"),
        ("  Đúng hạn", "  on time", d.resolved.on_time, "n"),
        ("  Trễ hẹn", "  late", d.resolved.late, "n"),
        ("  Tỷ lệ đúng hẹn", "  on-time rate", d.resolved.on_time_rate, "%"),
        ("Rút hồ sơ", "Withdrawn", d.withdrawn, "n"),
        ("Đang giải quyết", "In progress", d.in_progress.total, "n"),
        ("  Còn trong hạn", "  within the deadline", d.in_progress.within_deadline, "n"),
        ("  Quá hạn", "  overdue", d.in_progress.overdue, "n"),
        ("Trả kết quả qua bưu điện", "Results returned by post", d.returned_by_post, "n"),
        (
            "Thủ tục trực tuyến mức độ 3",
            "Online procedures, level 3",
            d.online_procedures.level3,
            "n",
        ),
        (
            "Thủ tục trực tuyến mức độ 4",
            "Online procedures, level 4",
            d.online_procedures.level4,
            "n",
        ),
        ("Văn bản điện tử ban hành", "Documents issued", doc.issued, "n"),
        (
            "  Ký số, gửi qua trục liên thông của tỉnh",
            "  signed and sent via the axis",
            doc.signed_and_sent,
            "n",
        ),
        ("  Tỷ lệ", "  rate", doc.rate, "%"),
        ("Chứng thực bản sao", "Copies certified", cp.certified, "n"),
        ("  Chứng thực bản sao điện tử", "  electronic", cp.electronic, "n"),
    ]


def vn_number(value: int | float | None, kind: str) -> str:
    """5618 -> 5.618; 0.9912 -> 99,12%; None -> —."""
    if value is None:
        return "—"
    if kind == "%":
        return f"{value * 100:.2f}%".replace(".", ",")
    return f"{int(value):,}".replace(",", ".")


def _revision(report: Report) -> str:
    # Revision 0 is no published revision: a report rebuilt from the log (`lienthong rebuild`).
    return f"revision {report.revision}" if report.revision else "rebuilt from the log"


def table(report: Report, name: str = "") -> str:
    status = "chính thức / final" if report.final else "tạm tính / provisional"
    title = f"Báo cáo tháng {report.period[5:]}/{report.period[:4]} — {name or report.unit}"
    lines = [
        title,
        f"unit {report.unit}, period {report.period}, {_revision(report)}, {status}, "
        f"generated {report.generated_at.isoformat(timespec='seconds')}",
        "",
    ]
    if report.pending_sites:
        sites = ", ".join(report.pending_sites)
        lines[2:2] = [f"Chưa đủ số liệu / may still be revised: site {sites} not caught up", ""]
    width_vi = max(len(r[0]) for r in rows(report)) + 2
    width_en = max(len(r[1]) for r in rows(report)) + 2
    for vi, en, value, kind in rows(report):
        lines.append(f"{vi:<{width_vi}}{en:<{width_en}}{vn_number(value, kind):>10}")
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n"


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unit", "period", "revision", "final", "figure_vi", "figure_en", "value"])
    for vi, en, value, _ in rows(report):
        writer.writerow(
            [
                report.unit,
                report.period,
                report.revision,
                report.final,
                vi.strip(),
                en.strip(),
                "" if value is None else value,
            ]
        )
    return out.getvalue()
