"""The benchmark scripts run and print their tables (bench.month, bench.latency), and the mixed
month they submit keeps each unit's order. No timing is asserted: a figure's value is for the
README, not for a test on a shared machine."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest

from bench.month_traffic import interleaved, month
from lienthong.demo.traffic import generate
from schemas.codec import EVENT_DECODER
from schemas.events import DossierReceived

DEMO_EVENTS = sum(len(events) for events in generate(2021).events_by_unit.values())


def run_bench(env: dict[str, str], *argv: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", *argv], env=env, capture_output=True, text=True, timeout=170
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_part_of_the_month_starts_every_dossier_with_its_receipt() -> None:
    """Each unit's first events, not a sample: a dossier's later events never come without it."""
    for unit, subs in month(300).items():
        first: dict[str, type] = {}
        for s in subs:
            first.setdefault(s.entity, type(EVENT_DECODER.decode(s.body)))
        dossiers = [t for entity, t in first.items() if entity.startswith("dossier.")]
        assert dossiers, unit
        assert all(t is DossierReceived for t in dossiers), unit


def test_more_than_the_demo_holds_repeats_it_with_ids_of_its_own() -> None:
    by_unit = month(DEMO_EVENTS + 500)
    subs = [s for unit_subs in by_unit.values() for s in unit_subs]
    assert len(subs) > DEMO_EVENTS
    first_round = set(generate(2021).events_by_unit)
    assert set(by_unit) == first_round
    # Resends stay byte for byte resends in every round; otherwise no id, nor entity, is shared.
    repeats = Counter(s.msg_id for s in subs)
    bodies_by_id = {s.msg_id: s.body for s in subs}
    assert all(bodies_by_id[s.msg_id] == s.body for s in subs)
    entities = {(s.unit, s.entity) for s in subs if s.msg_id.endswith("-r2")}
    assert entities
    assert all(entity.endswith("-r2") for _, entity in entities)
    assert sum(k - 1 for k in repeats.values()) < len(subs) * 0.05  # only the resends


def test_the_paced_order_keeps_each_units_own_order() -> None:
    by_unit = month(2000)
    merged = interleaved(by_unit)
    assert sorted(s.msg_id for s in merged) == sorted(
        s.msg_id for subs in by_unit.values() for s in subs
    )
    for unit, subs in by_unit.items():
        assert [s for s in merged if s.unit == unit] == subs


@pytest.mark.slow
def test_bench_month_prints_a_row_per_case_every_event_accepted(
    subprocess_env: dict[str, str],
) -> None:
    out = run_bench(subprocess_env, "bench.month", "--events", "300", "--batches", "100")
    found = re.search(r"events per case: (\d+)", out)
    assert found, out
    events = int(found.group(1))
    header = re.compile(r"^case +gateway ev/s +raw ev/s +ratio .* refused$", re.M)
    assert header.search(out), out
    rows = [line for line in out.splitlines() if line.startswith(("batches of", "1 event per"))]
    assert [r.split(" (")[0] for r in rows] == ["batches of 100", "1 event per request"]
    for row in rows:
        stored, duplicates, refused = (int(v) for v in row.split()[-3:])
        assert (stored + duplicates, refused) == (events, 0), row


@pytest.mark.slow
def test_bench_latency_prints_its_percentiles_every_probe_counted(
    subprocess_env: dict[str, str],
) -> None:
    out = run_bench(
        subprocess_env, "bench.latency", "--rate", "100", "--seconds", "3", "--coalesce", "0.2"
    )
    assert "coalescing interval 0.200 s" in out
    assert re.search(r"probes: [1-9]\d* stored .* refused 0, never counted 0", out), out
    assert re.search(r"background: \d+ events .* refused 0", out), out
    assert re.search(r"^probes +\d[\d,]* +\d[\d,]* +\d[\d,]* +400 +(yes|no)$", out, re.M), out


@pytest.mark.parametrize("layout", [(), ("--hashed",)])
def test_bench_index_cost_writes_and_finds_every_id(
    subprocess_env: dict[str, str], layout: tuple[str, ...]
) -> None:
    out = run_bench(subprocess_env, "bench.index_cost", "--events", "500", *layout)
    assert re.search(r"500 event ids \(.+\) written", out), out
    assert "hashed" in out.split("written")[0] if layout else "named by the event id" in out
    assert re.search(r"disk: +\d+ bytes per event", out), out
