"""The province's view: the current report of every unit and period, kept up to date.

A standalone example of what a province's system does (only nats-py and the JSON of CONTRACT
section 6): read the last report of every subject first, then follow each new revision.

    python -m lienthong.demo.province_view --nats-url nats://127.0.0.1:4222
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

Current = dict[tuple[str, str], dict[str, Any]]


async def follow_reports(
    client: Client,
    current: Current,
    on_revision: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Fill `current` with the last report of every (unit, period), then keep it current."""
    js = client.jetstream()
    sub = await js.subscribe(
        "onestop.reports.>",
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    try:
        while stop is None or not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            report = json.loads(msg.data)
            key = (report["unit"], report["period"])
            # Revisions only grow; an older one can never replace a newer one.
            if key not in current or report["revision"] > current[key]["revision"]:
                current[key] = report
                if on_revision is not None:
                    on_revision(report)
    finally:
        await sub.unsubscribe()


async def main(url: str) -> None:
    client = await nats.connect(url)

    def show(report: dict[str, Any]) -> None:
        d = report["dossiers"]
        print(
            f"{report['unit']:>5} {report['period']} r{report['revision']}"
            f"{' final' if report['final'] else ''}: received {d['received']['total']}, "
            f"resolved {d['resolved']['total']}, in progress {d['in_progress']['total']}"
        )

    try:
        await follow_reports(client, {}, show)
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    asyncio.run(main(parser.parse_args().nats_url))
