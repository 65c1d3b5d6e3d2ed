"""End to end: from a submission's reply to the report revision that counts it, under load.

    .venv/bin/python -m bench.latency [--rate 1000] [--seconds 30] [--coalesce SECONDS] [--apart]

A private nats-server and `lienthong serve --roles gateway,projector` (with `--apart`, a gateway
process and a projector process). Two things run at once for `--seconds`:
  background  the demo's mixed month (bench.month_traffic) at a steady `--rate` events/s: each
              of the 22 units has its steady share, and every TICK sends what has come due as
              one batch, in its order, once its last batch is answered (a desk's system sending
              what it has); the rate achieved is printed beside the one asked for;
  probes      every PROBE_EVERY, one new `dossier.received` of PROBE_UNIT in PROBE_PERIOD (June
              2021, which no background event is in: the month is March and April), one per
              request, each sent once the last is answered.
Reports are read with a plain nats-py subscription on the probe unit's report subject. The
latency of the k-th probe is when the first revision whose `dossiers.received.new` reaches k
arrives, minus when the k-th probe's reply came (`new`, not `total`: the background's April
events move June's `carried_over`). A warm-up probe first, not counted, waits until the
projector publishes: every latency is of a running pipeline, not of start-up.

Printed: p50, p99 and max, the coalescing interval in force (what the projector reads from
LIENTHONG_PROJECTOR_COALESCE_SECONDS, as `serve` does) and the target, interval + 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Sequence

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench.common import (
    cpu_seconds,
    gateway_process,
    machine,
    private_server,
    server_version,
    until_answering,
)
from bench.month import Outcome
from bench.month_traffic import Submission, interleaved, month
from consumers.reports.projector import ProjectorSettings
from lienthong.client import submit_batch
from lienthong.command_errors import USAGE_EXIT
from lienthong.environment import PROJECTOR_VARIABLES, read
from plumbing.subjects import report_subject
from schemas.replies import Accepted
from schemas.report import Report

PROBE_UNIT = "21550"
PROBE_PERIOD = "2021-06"
PROBE_EVERY = 0.05
TICK = 0.1
MAX_BATCH = 500
TARGET_MARGIN = 0.2
"""Issue #15's target: p99 under the coalescing interval plus this."""

_REPORT = msgspec.json.Decoder(Report)


def probe(k: int) -> bytes:
    return msgspec.json.encode(
        {
            "type": "dossier.received",
            "event_id": f"probe-{k}",
            "unit": PROBE_UNIT,
            "occurred_at": "2021-06-15T09:00:00+07:00",
            "dossier_id": f"PROBE-2021-06-{k:06d}",
            "procedure_code": "1.001612",
            "channel": "direct",
            "due_at": "2021-06-22T17:00:00+07:00",
        }
    )


class Counted:
    """When the probe unit's June report first counted each number of new dossiers."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.highest = 0
        self.changed = asyncio.Event()

    async def on_report(self, msg: Msg) -> None:
        arrived = time.perf_counter()
        new = _REPORT.decode(msg.data).dossiers.received.new
        for k in range(self.highest + 1, new + 1):
            self.at[k] = arrived
        self.highest = max(self.highest, new)
        self.changed.set()

    async def until(self, k: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.highest < k:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


async def background(
    client: Client, subs: Sequence[Submission], per_second: float, outcome: Outcome
) -> float:
    """`subs` at `per_second`, each unit sending what is due every TICK; seconds it took."""
    due: dict[str, list[tuple[float, bytes]]] = {}
    for i, s in enumerate(subs):
        due.setdefault(s.unit, []).append((i / per_second, s.body))
    started = time.perf_counter()

    async def unit_sends(unit: str, items: list[tuple[float, bytes]]) -> None:
        sent = 0
        while sent < len(items):
            elapsed = time.perf_counter() - started
            next_tick = math.floor(elapsed / TICK + 1) * TICK
            await asyncio.sleep(max(items[sent][0], next_tick) - elapsed)
            elapsed = time.perf_counter() - started
            batch: list[bytes] = []
            while sent < len(items) and items[sent][0] <= elapsed and len(batch) < MAX_BATCH:
                batch.append(items[sent][1])
                sent += 1
            if batch:
                outcome.count(await submit_batch(client, unit, batch, timeout=120))

    await asyncio.gather(*(unit_sends(u, items) for u, items in due.items()))
    return time.perf_counter() - started


async def probes(
    client: Client, seconds: float, replied: dict[int, float], outcome: Outcome
) -> None:
    """One probe per PROBE_EVERY for `seconds`; replied[k] is when the k-th stored one's came."""
    started = time.perf_counter()
    k = 0
    for n in range(1, int(seconds / PROBE_EVERY) + 1):
        await asyncio.sleep(max(0.0, started + n * PROBE_EVERY - time.perf_counter()))
        replies = await submit_batch(client, PROBE_UNIT, [probe(n)], timeout=30)
        at = time.perf_counter()
        outcome.count(replies)
        if isinstance(replies[0], Accepted) and not replies[0].duplicate:
            k += 1
            replied[k] = at


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


async def main(per_second: float, seconds: float, coalesce: float | None, apart: bool) -> None:
    env = {} if coalesce is None else {"LIENTHONG_PROJECTOR_COALESCE_SECONDS": str(coalesce)}
    interval = read(ProjectorSettings, PROJECTOR_VARIABLES, {**os.environ, **env}).coalesce_seconds
    subs = interleaved(month(round(per_second * seconds)))
    print(f"machine: {machine()}")
    print(server_version())
    roles = ["gateway", "projector"] if apart else ["gateway,projector"]
    print(f"lienthong serve --roles {' / '.join(roles)}; coalescing interval {interval:.3f} s\n")
    with private_server() as server, contextlib.ExitStack() as processes:
        started = [
            processes.enter_context(gateway_process(server.url, "--roles", r, env=env))
            for r in roles
        ]
        client = await nats.connect(server.url)
        try:
            await until_answering(client)
            counted = Counted()
            await client.subscribe(report_subject(PROBE_UNIT, PROBE_PERIOD), cb=counted.on_report)
            await submit_batch(client, PROBE_UNIT, [probe(0)], timeout=30)
            if not await counted.until(1, 60):
                print("the projector published no report of the warm-up probe", file=sys.stderr)
                raise SystemExit(USAGE_EXIT)
            base = counted.highest
            cpu_before = [cpu_seconds(server.pid), *(cpu_seconds(p.pid) for p in started)]
            load, probed = Outcome(), Outcome()
            replied: dict[int, float] = {}
            took, _ = await asyncio.gather(
                background(client, subs, per_second, load),
                probes(client, seconds, replied, probed),
            )
            cpu = [
                after - before
                for after, before in zip(
                    [cpu_seconds(server.pid), *(cpu_seconds(p.pid) for p in started)],
                    cpu_before,
                    strict=True,
                )
            ]
            await counted.until(base + len(replied), 10 + 3 * interval)
        finally:
            await client.close()
    latencies = [counted.at[base + k] - t for k, t in replied.items() if base + k in counted.at]
    print(
        f"background: {len(subs)} events of the mixed month, {per_second:,.0f} ev/s asked, "
        f"{len(subs) / took:,.0f} achieved (each unit sends what is due every {TICK * 1000:.0f} "
        f"ms, in its order); stored {load.stored}, duplicates {load.duplicates}, "
        f"refused {load.refusals}"
    )
    print(
        f"probes: {len(replied)} stored (one new dossier.received per request every "
        f"{PROBE_EVERY * 1000:.0f} ms, {PROBE_UNIT} {PROBE_PERIOD}), refused {probed.refusals}, "
        f"never counted {len(replied) - len(latencies)}"
    )
    shares = ", ".join(
        f"{name} {c / took:.0%}" for name, c in zip(["broker", *roles], cpu, strict=True)
    )
    print(f"CPU during the run, of one core: {shares}\n")
    for codes in (load.refused, probed.refused):
        if codes:
            print("refused: " + ", ".join(f"{c} {k}" for c, k in codes.most_common()))
    target = interval + TARGET_MARGIN
    print(
        f"{'reply to report':<20}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'target ms':>11}{'met':>5}"
    )
    if latencies:
        p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)
        print(
            f"{'probes':<20}{p50 * 1000:>9,.0f}{p99 * 1000:>9,.0f}{worst * 1000:>9,.0f}"
            f"{target * 1000:>11,.0f}{'yes' if p99 < target else 'no':>5}"
        )
    else:
        print(f"{'probes':<20}{'-':>9}{'-':>9}{'-':>9}{target * 1000:>11,.0f}{'no':>5}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="background events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--coalesce",
        type=float,
        default=None,
        help="the projector's coalescing interval (default: as LIENTHONG_PROJECTOR_* say)",
    )
    parser.add_argument(
        "--apart", action="store_true", help="gateway and projector in two processes"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.coalesce, args.apart))
