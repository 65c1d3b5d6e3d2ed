"""Projector catch-up from a province-sized log, beside a raw nats-py ordered consumer.

    .venv/bin/python -m bench.catchup [--dossiers 1000000]

Fills ONESTOP_EVENTS directly (not through the gateway: this measures the projector) with
`--dossiers` dossiers over 24 months across the 22 Quy Nhơn units, about 5 events per dossier
with documents and copies, then, each in its own process and in the same run:
  raw        a nats-py ordered consumer that only decodes every message with msgspec;
  projector  the report projector (ReportBook + checkpoints + report publishing) from empty.
Prints events/s of each, their ratio, and each process's peak memory (VmHWM), so memory per
dossier can be read off.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import nats
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from bench.common import machine, private_server, rate
from consumers.reports.projector import ProjectorSettings, ReportProjector
from plumbing.settings import StreamSettings
from plumbing.streams import provision
from plumbing.subjects import event_subject
from schemas.codec import EVENT_DECODER
from schemas.events import Entity
from schemas.periods import VN
from schemas.registry import Registry

START = datetime(2019, 1, 1, 8, tzinfo=VN)
MONTHS = 24


def peak_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dossier_events(n: int, unit: str, rng: random.Random) -> list[tuple[str, bytes]]:
    """One dossier's events (and now and then a document or copy), as (subject, JSON)."""
    dossier_id = f"000.00.21.H08-{n:08d}"
    received = START + timedelta(minutes=rng.randrange(MONTHS * 30 * 24 * 60))
    due = received + timedelta(days=rng.randint(3, 20))
    online = rng.random() < 0.05
    out = [
        {
            "type": "dossier.received",
            "event_id": f"{n}-r",
            "unit": unit,
            "occurred_at": received.isoformat(),
            "dossier_id": dossier_id,
            "procedure_code": f"1.00{rng.randint(1000, 1300)}",
            "channel": "online" if online else "direct",
            "service_level": rng.choice((3, 4)) if online else None,
            "due_at": due.isoformat(),
        }
    ]
    t = received
    if rng.random() < 0.2:
        t += timedelta(days=1)
        due += timedelta(days=5)
        out.append(
            {
                "type": "dossier.deadline_changed",
                "event_id": f"{n}-d",
                "unit": unit,
                "occurred_at": t.isoformat(),
                "dossier_id": dossier_id,
                "due_at": due.isoformat(),
                "reason": "extension",
            }
        )
    if rng.random() < 0.3:
        t += timedelta(hours=3)
        out.append(
            {
                "type": "dossier.supplement_requested",
                "event_id": f"{n}-s",
                "unit": unit,
                "occurred_at": t.isoformat(),
                "dossier_id": dossier_id,
            }
        )
    if rng.random() < 0.97:
        t += timedelta(days=rng.randint(1, 18))
        out.append(
            {
                "type": "dossier.resolved",
                "event_id": f"{n}-v",
                "unit": unit,
                "occurred_at": t.isoformat(),
                "dossier_id": dossier_id,
                "outcome": "approved",
            }
        )
        t += timedelta(days=1)
        out.append(
            {
                "type": "dossier.result_returned",
                "event_id": f"{n}-t",
                "unit": unit,
                "occurred_at": t.isoformat(),
                "dossier_id": dossier_id,
                "method": "postal" if rng.random() < 0.05 else "counter",
            }
        )
    subject = event_subject(unit, Entity.DOSSIER, dossier_id)
    events = [(subject, msgspec.json.encode(e)) for e in out]
    if rng.random() < 0.3:
        events.append(
            (
                event_subject(unit, Entity.DOCUMENT, f"{n}/UBND"),
                msgspec.json.encode(
                    {
                        "type": "document.issued",
                        "event_id": f"{n}-doc",
                        "unit": unit,
                        "occurred_at": received.isoformat(),
                        "document_id": f"{n}/UBND",
                        "digitally_signed": True,
                        "sent_via_axis": True,
                    }
                ),
            )
        )
    return events


async def fill(url: str, dossiers: int) -> int:
    client = await nats.connect(url)
    await provision(client, StreamSettings())
    js = client.jetstream(publish_async_max_pending=8000)
    units = [u for u in Registry.load().codes() if len(u) >= 3]
    rng = random.Random(5)
    count = 0
    started = time.perf_counter()
    for n in range(dossiers):
        for subject, body in dossier_events(n, units[n % len(units)], rng):
            await js.publish_async(subject, body)
            count += 1
        if n % 100_000 == 0 and n:
            speed = rate(count, time.perf_counter() - started)
            print(f"  filled {n} dossiers, {count} events ({speed:,.0f}/s)", file=sys.stderr)
    await js.publish_async_completed()
    await client.close()
    return count


async def raw(url: str, total: int) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    done = asyncio.Event()
    seen = 0

    async def decode(msg: Msg) -> None:
        nonlocal seen
        EVENT_DECODER.decode(msg.data)
        seen += 1
        if seen >= total:
            done.set()

    started = time.perf_counter()
    # A callback, not next_msg: nats-py answers the ordered consumer's flow control only there.
    await js.subscribe(
        "onestop.events.>",
        cb=decode,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        pending_msgs_limit=100_000,
        pending_bytes_limit=256 * 1024 * 1024,
    )
    await asyncio.wait_for(done.wait(), 3600)
    seconds = time.perf_counter() - started
    await client.close()
    print(
        msgspec.json.encode(
            {"rate": rate(seen, seconds), "seconds": seconds, "peak_mb": peak_memory_mb()}
        ).decode()
    )


async def projector(url: str, total: int) -> None:
    client = await nats.connect(url)
    p = ReportProjector(
        client, Registry.load(), ProjectorSettings(checkpoint_seconds=3600, checkpoint_events=10**9)
    )
    started = time.perf_counter()
    await p.start()
    await p.wait_until_current(timeout=3600)
    seconds = time.perf_counter() - started
    await p.stop()  # includes the final checkpoint; not timed
    await client.close()
    print(
        msgspec.json.encode(
            {"rate": rate(total, seconds), "seconds": seconds, "peak_mb": peak_memory_mb()}
        ).decode()
    )


def child(role: str, url: str, total: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.catchup",
            "--child",
            role,
            "--url",
            url,
            "--total",
            str(total),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{role} failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = msgspec.json.decode(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["raw", "projector"])
    parser.add_argument("--url")
    parser.add_argument("--total", type=int)
    args = parser.parse_args()
    if args.child:
        asyncio.run((raw if args.child == "raw" else projector)(args.url, args.total))
        return
    print(f"machine: {machine()}")
    with private_server() as server:
        started = time.perf_counter()
        total = asyncio.run(fill(server.url, args.dossiers))
        print(
            f"log: {args.dossiers:,} dossiers, {total:,} events "
            f"(filled in {time.perf_counter() - started:.0f} s)"
        )
        r = child("raw", server.url, total)
        p = child("projector", server.url, total)
    print(f"\n{'':<44}{'events/s':>10}{'seconds':>9}{'peak MB':>9}")
    print(
        f"{'raw nats-py ordered consumer + msgspec decode':<44}{r['rate']:>10,.0f}"
        f"{r['seconds']:>9.1f}{r['peak_mb']:>9.0f}"
    )
    print(
        f"{'report projector, from empty':<44}{p['rate']:>10,.0f}{p['seconds']:>9.1f}"
        f"{p['peak_mb']:>9.0f}"
    )
    print(
        f"ratio {p['rate'] / r['rate']:.2f}; projector memory above the raw consumer's: "
        f"{(p['peak_mb'] - r['peak_mb']) * 1024 * 1024 / args.dossiers:,.0f} bytes per dossier"
    )


if __name__ == "__main__":
    main()
