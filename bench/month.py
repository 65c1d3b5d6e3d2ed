"""A mixed month through the gateway beside raw nats-py publishing of the same payloads.

    .venv/bin/python -m bench.month [--batches 100,500] [--events N]

The workload is the demo's traffic (bench.month_traffic: Quy Nhơn's 22 desks, March and April
2021, 24,232 events): new dossiers, later events of dossiers already in the log, documents,
copies and resends, which is what a desk really sends (bench.submit has only new dossiers, the
easiest case). Cases:
  batches of N   each unit's events in its order, cut into batches of N; a unit sends its next
                 batch once the last is answered, 4 units at a time;
  1 per request  one event per request, 64 in flight across the units; each unit issues its
                 events in its order, and an event waits for the reply to its entity's previous
                 one (what "in order" has to mean for a dossier's later events to be judged
                 against its earlier ones), so a unit has several requests in flight at once.
Each case runs on a fresh private nats-server and a fresh `lienthong serve --roles gateway`
process (the month submitted twice would be all duplicates). In the same server and run, raw
nats-py publishes the same payloads pipelined (publish_async) to a plain file stream with the
same subject shape (`<prefix>.<unit>.<entity>.<key>`) and the same Nats-Msg-Id headers: the
most the broker and nats-py can do here. Every reply is checked: accepted, or a duplicate (the
resends); refusals are counted and printed, none expected.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence

import nats
from nats.aio.client import Client

from bench.common import (
    Timer,
    cpu_seconds,
    gateway_process,
    machine,
    private_server,
    rate,
    raw_publish,
    server_version,
    until_answering,
)
from bench.month_traffic import Submission, interleaved, month
from lienthong.client import submit_batch
from schemas.replies import Accepted, Reply

PER_REQUEST_IN_FLIGHT = 64
BATCH_UNITS_IN_FLIGHT = 4


class Outcome:
    """What the gateway answered, counted: stored, duplicates, refusals by code."""

    def __init__(self) -> None:
        self.stored = 0
        self.duplicates = 0
        self.refused: Counter[str] = Counter()

    def count(self, replies: Sequence[Reply]) -> None:
        for reply in replies:
            if isinstance(reply, Accepted):
                if reply.duplicate:
                    self.duplicates += 1
                else:
                    self.stored += 1
            else:
                self.refused[reply.error.code.value] += 1

    @property
    def refusals(self) -> int:
        return sum(self.refused.values())


async def in_batches(
    client: Client, by_unit: dict[str, list[Submission]], size: int, outcome: Outcome
) -> None:
    """Each unit's events in batches of `size`, in order, one batch of a unit at a time."""
    units = asyncio.Semaphore(BATCH_UNITS_IN_FLIGHT)

    async def unit_sends(unit: str, subs: list[Submission]) -> None:
        for i in range(0, len(subs), size):
            async with units:
                chunk = [s.body for s in subs[i : i + size]]
                outcome.count(await submit_batch(client, unit, chunk, timeout=120))

    await asyncio.gather(*(unit_sends(u, subs) for u, subs in by_unit.items()))


async def one_per_request(
    client: Client, by_unit: dict[str, list[Submission]], outcome: Outcome
) -> None:
    """One event per request, PER_REQUEST_IN_FLIGHT at a time; each unit issues its events in
    order and each event waits for its entity's previous one to be answered."""
    window = asyncio.Semaphore(PER_REQUEST_IN_FLIGHT)

    async def send(s: Submission, after: asyncio.Task[None] | None) -> None:
        try:
            if after is not None:
                await after
            outcome.count(await submit_batch(client, s.unit, [s.body], timeout=120))
        finally:
            window.release()

    async def unit_sends(subs: list[Submission]) -> None:
        last: dict[str, asyncio.Task[None]] = {}
        for s in subs:
            await window.acquire()
            last[s.entity] = asyncio.create_task(send(s, last.get(s.entity)))
        await asyncio.gather(*last.values())

    await asyncio.gather(*(unit_sends(subs) for subs in by_unit.values()))


HEADER = (
    f"{'case':<34}{'gateway ev/s':>14}{'raw ev/s':>10}{'ratio':>7}"
    f"{'broker µs/ev raw':>18}{'broker µs/ev gw':>17}{'gateway µs/ev':>15}"
    f"{'stored':>8}{'dups':>6}{'refused':>9}"
)


async def run_case(label: str, batch: int, by_unit: dict[str, list[Submission]]) -> str:
    """One case on its own server and gateway process: raw first, then the gateway."""
    subs = interleaved(by_unit)
    with private_server() as server, gateway_process(server.url, "--roles", "gateway") as gw:
        client = await nats.connect(server.url)
        try:
            await until_answering(client)
            broker = cpu_seconds(server.pid)
            raw = await raw_publish(
                client, "RAW", [(f"{s.unit}.{s.entity}", s.body, s.msg_id) for s in subs]
            )
            broker_raw = cpu_seconds(server.pid) - broker
            outcome = Outcome()
            broker, gateway = cpu_seconds(server.pid), cpu_seconds(gw.pid)
            with Timer() as t:
                if batch > 1:
                    await in_batches(client, by_unit, batch, outcome)
                else:
                    await one_per_request(client, by_unit, outcome)
            broker_gw = cpu_seconds(server.pid) - broker
            gateway = cpu_seconds(gw.pid) - gateway
        finally:
            await client.close()
    n = len(subs)
    gw_rate = rate(n, t.seconds)
    line = (
        f"{label:<34}{gw_rate:>14,.0f}{raw:>10,.0f}{gw_rate / raw:>7.2f}"
        f"{broker_raw * 1e6 / n:>18,.0f}{broker_gw * 1e6 / n:>17,.0f}{gateway * 1e6 / n:>15,.0f}"
        f"{outcome.stored:>8}{outcome.duplicates:>6}{outcome.refusals:>9}"
    )
    if outcome.refused:
        codes = ", ".join(f"{code} {k}" for code, k in outcome.refused.most_common())
        line += f"\n  refused: {codes}"
    return line


async def main(batches: Sequence[int], events: int | None) -> None:
    by_unit = month(events)
    n = sum(len(subs) for subs in by_unit.values())
    entities = len({(s.unit, s.entity) for subs in by_unit.values() for s in subs})
    print(f"machine: {machine()}")
    print(server_version())
    print(
        f"events per case: {n} from {len(by_unit)} units, {entities} entities "
        "(the demo's traffic; resends included)\n"
    )
    print(HEADER, flush=True)
    for size in batches:
        label = f"batches of {size} ({BATCH_UNITS_IN_FLIGHT} units at once)"
        print(await run_case(label, size, by_unit), flush=True)
    label = f"1 event per request ({PER_REQUEST_IN_FLIGHT} in flight)"
    print(await run_case(label, 1, by_unit), flush=True)


def sizes(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        message = f"{text!r} is not a comma-separated list of sizes"
        raise argparse.ArgumentTypeError(message) from None
    if not values or any(v < 2 for v in values):
        raise argparse.ArgumentTypeError("batch sizes are 2 or more (1 per request always runs)")
    return values


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=sizes, default=[100, 500], help="default: 100,500")
    parser.add_argument(
        "--events", type=int, default=None, help="about this many (default: all the demo's)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.batches, args.events))
