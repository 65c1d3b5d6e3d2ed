"""`lienthong demo`, the README's first command, run as a newcomer runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.test_demo_traffic import PUBLISHED_APRIL

# The printed table's English labels, and where each sits in the report.
ROWS = {
    "Dossiers received, total": ("dossiers", "received", "total"),
    "carried over": ("dossiers", "received", "carried_over"),
    "newly received": ("dossiers", "received", "new"),
    "at the counter": ("dossiers", "received", "new_by_channel", "direct"),
    "online": ("dossiers", "received", "new_by_channel", "online"),
    "by post": ("dossiers", "received", "new_by_channel", "postal"),
    "Resolved": ("dossiers", "resolved", "total"),
    "early": ("dossiers", "resolved", "early"),
    "on time": ("dossiers", "resolved", "on_time"),
    "late": ("dossiers", "resolved", "late"),
    "on-time rate": ("dossiers", "resolved", "on_time_rate"),
    "In progress": ("dossiers", "in_progress", "total"),
    "within the deadline": ("dossiers", "in_progress", "within_deadline"),
    "overdue": ("dossiers", "in_progress", "overdue"),
    "Results returned by post": ("dossiers", "returned_by_post"),
    "Online procedures, level 3": ("dossiers", "online_procedures", "level3"),
    "Online procedures, level 4": ("dossiers", "online_procedures", "level4"),
    "Documents issued": ("documents", "issued"),
    "signed and sent via the axis": ("documents", "signed_and_sent"),
    "Copies certified": ("copies", "certified"),
    "electronic": ("copies", "electronic"),
}


def published(path: tuple[str, ...]) -> object:
    value: object = PUBLISHED_APRIL
    for key in path:
        assert isinstance(value, dict)
        value = value[key]
    return value


def parse_vn(text: str) -> float:
    """5.618 -> 5618; 99,12% -> 0.9912."""
    if text.endswith("%"):
        return round(float(text[:-1].replace(",", ".")) / 100, 4)
    return float(text.replace(".", ""))


@pytest.mark.slow
def test_demo_prints_the_city_april_2021_report_equal_to_the_published_one(
    subprocess_env: dict[str, str],
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "demo"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "Matches the city's published April 2021 report figure for figure." in out
    table = out[out.index("Báo cáo tháng 04/2021 — Thành phố Quy Nhơn") :]
    seen: dict[str, float] = {}
    for line in table.splitlines():
        for label in ROWS:
            # Each row: Vietnamese name, English name, value; match the English name exactly.
            parts = line.split("  ")
            if label in (p.strip() for p in parts) and label not in seen:
                seen[label] = parse_vn(line.split()[-1])
    assert set(seen) == set(ROWS)
    for label, path in ROWS.items():
        assert seen[label] == published(path), label
    assert "Five wards and communes with the most overdue dossiers" in out
    assert "resent duplicates answered as such" in out
    assert out.rstrip().endswith("(or `lienthong dashboard` against a running gateway)")
    assert "`./dev demo --dashboard` keeps the demo serving it at http://127.0.0.1:8080/" in out
    # Interconnection both ways: dossiers out, the province's answers back.
    line = next(x for x in out.splitlines() if x.startswith("Interconnection: "))
    counts = re.fullmatch(
        r"Interconnection: (\d+) transfers and (\d+) status messages sent to the province, "
        r"(\d+) results, (\d+) supplement requests and (\d+) receipts came back "
        r"\(stored in May 2021\)",
        line,
    )
    assert counts is not None, line
    transfers, _, results, supplements, receipts = (int(n) for n in counts.groups())
    assert transfers > 0
    assert results == receipts == transfers
    assert 0 < supplements < transfers
