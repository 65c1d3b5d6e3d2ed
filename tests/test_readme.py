"""The README's examples run as written (only the server URL is the test's own)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from gateway.service import Gateway
from lienthong.embedded import NatsServer

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def quick_start() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_the_demo_then_the_tests_and_ci_runs_the_same() -> None:
    assert quick_start() == ["./dev demo", "./dev test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./dev test" in ci


async def test_the_submit_example_submits_and_is_accepted(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    [example] = [b for b in python_blocks() if "onestop.submit" in b]
    code = example.replace("nats://127.0.0.1:4222", nats_server.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert "'ok': True" in out.decode()
    assert "'duplicate': False" in out.decode()
