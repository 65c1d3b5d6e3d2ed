"""Shared by the benchmarks: a private nats-server, a gateway process, the machine's description."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lienthong.embedded import NatsServer


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


@contextmanager
def private_server() -> Iterator[NatsServer]:
    with (
        tempfile.TemporaryDirectory(prefix="lienthong-bench-") as tmp,
        NatsServer(Path(tmp)) as server,
    ):
        yield server


@contextmanager
def gateway_process(url: str, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`lienthong serve` in its own process, as deployed; ready once it answers a submission."""
    env = {**os.environ, "LIENTHONG_NATS_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "lienthong.cli", "--log-level", "warning", "serve", *extra],
        env=env,
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
