"""Submit throughput: the gateway beside raw nats-py JetStream publishing, same machine, same run.

    .venv/bin/python -m bench.submit [--events 20000]

First one process each side: one gateway process, one raw publisher. Then two each side: two
gateway processes in the queue group (as a deployment scales) against two raw publisher
processes (bench.raw_publisher), both started by one signal. The broker's and the gateway's CPU
time per event are printed too: where the time goes.

Each event is a new dossier's `dossier.received` (the common case, and the costliest: every one
is a new entity and a new event id). The raw baseline publishes the same payloads with the same
Nats-Msg-Id headers to a plain stream, pipelined (publish_async), which is the most the broker
and nats-py can do here; the gateway also reads the entity's state and writes the event-id index.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from bench.common import Timer, cpu_seconds, gateway_process, machine, private_server, rate
from bench.common import raw_publish as common_raw_publish
from lienthong.client import submit_batch
from schemas.replies import Accepted

UNITS = ["21550", "21553", "21556", "21559", "21562", "21565", "21568", "21571"]
_counter = itertools.count()


def events(n: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for _ in range(n):
        i = next(_counter)
        unit = UNITS[i % len(UNITS)]
        out.append(
            (
                unit,
                msgspec.json.encode(
                    {
                        "type": "dossier.received",
                        "event_id": f"bench-{i}",
                        "unit": unit,
                        "occurred_at": "2021-04-05T08:00:00+07:00",
                        "dossier_id": f"000.00.21.H08-210405/{i:07d}",
                        "procedure_code": "1.001612",
                        "channel": "direct",
                        "service_level": None,
                        "due_at": "2021-04-12T17:00:00+07:00",
                    }
                ),
            )
        )
    return out


async def raw_publish(client: Client, payloads: list[tuple[str, bytes]]) -> float:
    """The same payloads to a new plain stream, with the same shape of subjects and msg ids."""
    n = next(_counter)
    return await common_raw_publish(
        client,
        f"RAW{n}",
        [(f"{unit}.dossier.{i}", body, f"{unit}:{i}") for i, (unit, body) in enumerate(payloads)],
    )


async def gateway_submit(
    client: Client, payloads: list[tuple[str, bytes]], batch: int, in_flight: int
) -> float:
    semaphore = asyncio.Semaphore(in_flight)

    async def one(chunk: list[tuple[str, bytes]]) -> int:
        async with semaphore:
            replies = await submit_batch(client, chunk[0][0], [b for _, b in chunk], timeout=60)
            return sum(isinstance(r, Accepted) and not r.duplicate for r in replies)

    # A batch is one unit's: group by unit first, as a unit's system would.
    by_unit = sorted(payloads, key=lambda p: p[0])
    batches = [by_unit[i : i + batch] for i in range(0, len(by_unit), batch)]
    batches = [[p for p in b if p[0] == b[0][0]] + [] for b in batches]  # keep batches single-unit
    with Timer() as t:
        accepted = sum(await asyncio.gather(*(one(b) for b in batches)))
    assert accepted == sum(len(b) for b in batches), "every benchmark event must be accepted"
    return rate(accepted, t.seconds)


HEADER = (
    f"{'case':<38}{'gateway ev/s':>14}{'raw ev/s':>12}{'ratio':>8}"
    f"{'broker µs/ev raw':>18}{'broker µs/ev gw':>17}{'gateway µs/ev':>15}"
)
CASES = (
    ("1 event per request (64 in flight)", 1, 64),
    ("batches of 100 (4 in flight)", 100, 4),
    ("batches of 1000 (2 in flight)", 1000, 2),
)


async def raw_processes(client: Client, total: int, processes: int) -> float:
    """`processes` raw publishers, `total` events between them, timed from one start signal."""
    prefix = f"rawp{next(_counter)}"
    js = client.jetstream()
    await js.add_stream(
        StreamConfig(
            name=prefix.upper(),
            subjects=[f"{prefix}.>"],
            storage=StorageType.FILE,
            duplicate_window=600,
        )
    )
    ready, done = await client.subscribe("bench.ready"), await client.subscribe("bench.done")
    url = client.connected_url.geturl() if client.connected_url else ""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.raw_publisher",
            url,
            prefix,
            f"p{k}",
            str(total // processes),
        )
        for k in range(processes)
    ]
    for _ in children:
        await ready.next_msg(timeout=60)
    with Timer() as t:
        await client.publish("bench.go", b"")
        for _ in children:
            await done.next_msg(timeout=600)
    for child in children:
        await child.wait()
    await ready.unsubscribe()
    await done.unsubscribe()
    return rate(total // processes * processes, t.seconds)


def row(label: str, gw: float, raw: float, cpu: tuple[float, float, float], n: int) -> str:
    broker_raw, broker_gw, gateway = (c * 1e6 / n for c in cpu)
    return (
        f"{label:<38}{gw:>14,.0f}{raw:>12,.0f}{gw / raw:>8.2f}"
        f"{broker_raw:>18,.0f}{broker_gw:>17,.0f}{gateway:>15,.0f}"
    )


async def main(total: int) -> None:
    print(f"machine: {machine()}")
    print(f"events per case: {total}\n")
    with private_server() as server, contextlib.ExitStack() as gateways:
        first = gateways.enter_context(gateway_process(server.url, "--roles", "gateway"))
        client = await nats.connect(server.url)
        await answering(client)
        print("one process each side")
        print(HEADER)
        for label, batch, in_flight in CASES:
            n = total if batch > 1 else max(total // 4, 1000)
            broker = cpu_seconds(server.pid)
            raw = await raw_publish(client, events(n))
            broker_raw = cpu_seconds(server.pid) - broker
            broker, gateway = cpu_seconds(server.pid), cpu_seconds(first.pid)
            gw = await gateway_submit(client, events(n), batch, in_flight)
            cpu = (broker_raw, cpu_seconds(server.pid) - broker, cpu_seconds(first.pid) - gateway)
            print(row(label, gw, raw, cpu, n))
        second = gateways.enter_context(gateway_process(server.url, "--roles", "gateway"))
        await asyncio.sleep(2)  # until the second gateway has joined the queue group
        print("\ntwo processes each side (two gateways in the queue group; two raw publishers)")
        print(HEADER)
        for label, batch, in_flight in CASES[1:]:
            broker = cpu_seconds(server.pid)
            raw = await raw_processes(client, total, 2)
            broker_raw = cpu_seconds(server.pid) - broker
            broker = cpu_seconds(server.pid)
            gateway = cpu_seconds(first.pid) + cpu_seconds(second.pid)
            gw = await gateway_submit(client, events(total), batch, in_flight * 2)
            spent = cpu_seconds(first.pid) + cpu_seconds(second.pid) - gateway
            cpu = (broker_raw, cpu_seconds(server.pid) - broker, spent)
            print(row(label.replace("in flight", "in flight each"), gw, raw, cpu, total))
        await client.close()


async def answering(client: Client) -> None:
    """Until a gateway answers a submission."""
    for _ in range(100):
        try:
            await client.request("onestop.submit.21550", b"[]", timeout=0.5)
            return
        except nats.errors.Error:
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    asyncio.run(main(parser.parse_args().events))
