"""The live feed: every published revision of every report, kept in memory, fanned out to browsers.

One ordered consumer on `onestop.reports.>` (ephemeral, read-only rights are enough) reads the
whole of ONESTOP_REPORTS from the start, so the revision history is known too, then follows
each new revision. Browsers never talk to NATS: each open page holds one server-sent-events
stream, and a new revision is pushed to every one of them at once (a queue per browser).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from consumers.reports.report_store import REPORT_DECODER
from plumbing.streams import REPORTS_STREAM
from plumbing.subjects import REPORTS_PREFIX
from schemas.report import Report

BROWSER_QUEUE = 64
"""Notices a browser may fall behind by before it is dropped (its page reconnects by itself)."""


class Revision(msgspec.Struct, frozen=True, kw_only=True):
    report: Report
    stored_at: datetime
    """When JetStream stored it: when it was published."""
    seq: int


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """What a browser is told of a new revision: which report, no figures (it asks for those)."""

    unit: str
    period: str
    revision: int


Key = tuple[str, str]


class ReportFeed:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.log = structlog.get_logger("lienthong.dashboard")
        self.revisions: dict[Key, list[Revision]] = {}
        self.last_seq = 0
        self._caught_up = asyncio.Event()
        self._catch_up_to = 0
        self._browsers: set[asyncio.Queue[Notice | None]] = set()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        js = self.client.jetstream()
        try:
            info = await js.stream_info(REPORTS_STREAM)
            self._catch_up_to = info.state.last_seq
        except nats.js.errors.NotFoundError:  # no gateway provisioned yet: nothing published
            self._catch_up_to = 0
        if self._catch_up_to == 0:
            self._caught_up.set()
        self._sub = await js.subscribe(
            f"{REPORTS_PREFIX}.>",
            stream=REPORTS_STREAM,  # named: no stream lookup, a right the dashboard need not have
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_message,
        )

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until every revision stored when the feed started has been read."""
        await asyncio.wait_for(self._caught_up.wait(), timeout)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        for queue in list(self._browsers):
            self._close(queue)

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        self.last_seq = max(self.last_seq, seq)
        if seq >= self._catch_up_to:
            self._caught_up.set()
        try:
            report = REPORT_DECODER.decode(msg.data)
        except msgspec.DecodeError:
            self.log.warning("dashboard.unreadable_report", seq=seq, subject=msg.subject)
            return
        stored = msg.metadata.timestamp
        revision = Revision(report=report, stored_at=stored.astimezone(UTC), seq=seq)
        history = self.revisions.setdefault((report.unit, report.period), [])
        if history and report.revision <= history[-1].report.revision:
            return  # revisions only grow; an older one never replaces a newer one
        history.append(revision)
        if self._caught_up.is_set():
            notice = Notice(unit=report.unit, period=report.period, revision=report.revision)
            for queue in list(self._browsers):
                try:
                    queue.put_nowait(notice)
                except asyncio.QueueFull:
                    self._close(queue)

    # -- reading ------------------------------------------------------------------------------

    def current(self, unit: str, period: str) -> Revision | None:
        history = self.revisions.get((unit, period))
        return history[-1] if history else None

    def history(self, unit: str, period: str) -> list[Revision]:
        return list(self.revisions.get((unit, period), []))

    def periods(self) -> list[str]:
        return sorted({period for _, period in self.revisions})

    def periods_of(self, unit: str) -> list[str]:
        return sorted(period for u, period in self.revisions if u == unit)

    def units(self) -> set[str]:
        return {unit for unit, _ in self.revisions}

    # -- browsers -----------------------------------------------------------------------------

    def listen(self) -> asyncio.Queue[Notice | None]:
        queue: asyncio.Queue[Notice | None] = asyncio.Queue(BROWSER_QUEUE)
        self._browsers.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[Notice | None]) -> None:
        self._browsers.discard(queue)

    @property
    def browsers(self) -> int:
        return len(self._browsers)

    def _close(self, queue: asyncio.Queue[Notice | None]) -> None:
        """Tell a browser's stream to end (None), making room for it if the queue is full."""
        self._browsers.discard(queue)
        with contextlib.suppress(asyncio.QueueEmpty):
            while queue.full():
                queue.get_nowait()
        queue.put_nowait(None)
