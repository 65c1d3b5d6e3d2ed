"""What the event-id index costs per event: bytes on disk and in the server's memory.

    .venv/bin/python -m bench.index_cost [--events 1000000] [--hashed]

Writes N index entries exactly as the gateway does (gateway.event_index.EventIndex, one create
per event id, pipelined) into a private nats-server, then reads the stream's bytes and the
server process's resident memory before and after, and times lookups of existing ids.

`--hashed` weighs the issue's lever of index subjects named by a fixed-size hash of the event id
(blake2b, 15 bytes, base32: 24 characters) instead of the id itself. Measured, it costs more
server memory, not less: the server's per-subject index is a radix tree, which shares the
prefixes that sequential ids have and random hashes do not (so ids that are random already,
UUIDs, cost what hashed ones do).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import random
import time
from pathlib import Path

import nats

from bench.common import machine, private_server, rate
from gateway.event_index import Claim, EventIndex
from plumbing.jetstream import JetStream
from plumbing.settings import StreamSettings
from plumbing.streams import EVENT_IDS_PREFIX, EVENT_IDS_STREAM, provision


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class HashedIndex(EventIndex):
    """The index with subjects named by a fixed-size hash of the event id (the lever weighed)."""

    @staticmethod
    def subject(unit: str, event_id: str) -> str:
        digest = hashlib.blake2b(event_id.encode(), digest_size=15).digest()
        return f"{EVENT_IDS_PREFIX}.{unit}.{base64.b32encode(digest).decode()}"


async def main(total: int, hashed: bool) -> None:
    print(f"machine: {machine()}")
    with private_server() as server:
        assert server._process is not None
        pid = server._process.pid
        client = await nats.connect(server.url)
        await provision(client, StreamSettings())
        index = (HashedIndex if hashed else EventIndex)(JetStream(client, 30))
        before = rss_mb(pid)
        started = time.perf_counter()
        window = 2000
        for start in range(0, total, window):
            await asyncio.gather(
                *(
                    index.create(
                        f"21{550 + i % 22 * 3}",
                        f"21550-2021-04-{i:09d}",
                        Claim(f"onestop.events.21550.dossier.000=2E00=2E21=2EH08-{i:09d}", i),
                    )
                    for i in range(start, min(start + window, total))
                )
            )
        written = time.perf_counter() - started
        info = await client.jetstream().stream_info(EVENT_IDS_STREAM)
        after = rss_mb(pid)
        sample = random.Random(1).sample(range(total), min(total, 2000))
        started = time.perf_counter()
        found = await asyncio.gather(
            *(index.get(f"21{550 + i % 22 * 3}", f"21550-2021-04-{i:09d}") for i in sample)
        )
        looked = time.perf_counter() - started
        assert all(f is not None for f in found)
        await client.close()
    layout = "hashed subjects" if hashed else "subjects named by the event id"
    print(f"{total:,} event ids ({layout}) written at {rate(total, written):,.0f}/s")
    mib = info.state.bytes / 2**20
    print(f"disk:   {info.state.bytes / total:,.0f} bytes per event ({mib:,.0f} MiB)")
    print(
        f"memory: {(after - before) * 2**20 / total:,.0f} bytes per event in nats-server "
        f"({after - before:,.0f} MiB)"
    )
    print(
        f"lookup: {looked / len(sample) * 1e6:,.0f} µs each, {len(sample)} concurrent direct gets"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--hashed", action="store_true", help="fixed-size hashed index subjects")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.hashed))
