"""One raw nats-py JetStream publisher process, for the submit benchmark's multi-process case.

    python -m bench.raw_publisher URL STREAM_PREFIX NAME COUNT

Connects, makes its events, says it is ready on `bench.ready`, waits for `bench.go`, publishes
them pipelined (publish_async) and says `bench.done` once every one is acknowledged, so the
parent times all publishers from one start signal, without their interpreters' start-up.
"""

from __future__ import annotations

import asyncio
import sys

import nats

from bench.submit import events


async def main(url: str, prefix: str, name: str, count: int) -> None:
    client = await nats.connect(url)
    js = client.jetstream(publish_async_max_pending=4000)
    payloads = events(count)
    go = asyncio.Event()

    async def start(_: object) -> None:
        go.set()

    sub = await client.subscribe("bench.go", cb=start)
    await client.publish("bench.ready", name.encode())
    await client.flush()
    await go.wait()
    futures = [
        await js.publish_async(
            f"{prefix}.{name}.{unit}.{i}", body, headers={"Nats-Msg-Id": f"{name}:{unit}:{i}"}
        )
        for i, (unit, body) in enumerate(payloads)
    ]
    await asyncio.gather(*futures)
    await client.publish("bench.done", name.encode())
    await sub.unsubscribe()
    await client.close()


if __name__ == "__main__":
    url, prefix, name, count = sys.argv[1:5]
    asyncio.run(main(url, prefix, name, int(count)))
