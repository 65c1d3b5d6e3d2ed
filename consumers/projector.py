"""The report projector: the event log in, monthly reports out (CONTRACT section 6).

A durable pull consumer feeds events to a `ReportBook` (the pure rules). Changes are coalesced:
a burst of events gives one new revision per changed report per `coalesce_seconds`. The book is
checkpointed with the log sequence it reflects in one atomic write; on start the projector
restores it and resumes right after that sequence, and reads what was already published from
ONESTOP_REPORTS, so a kill at any point neither counts twice nor skips, nor repeats a revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from consumers import report_store
from consumers.checkpoint import Checkpoint, CheckpointStore
from consumers.periods import now_vn, period_end
from consumers.report_rules import ReportBook
from consumers.report_store import Published
from consumers.skips import PROJECTOR, SkipRecorder
from gateway import logs
from gateway.jetstream import JetStream, WrongLastSequence, delivery_of
from gateway.refusals import Unavailable
from gateway.registry import Registry
from gateway.streams import EVENTS_STREAM
from schemas.codec import EVENT_DECODER
from schemas.report import Report

DAY = timedelta(days=1)


class ProjectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    durable: str = "reports-projector"
    coalesce_seconds: float = 1.0
    max_ack_pending: int = 20_000
    catchup_flush_seconds: float = 15.0
    """While more than max_ack_pending events behind, reports are published this often."""
    checkpoint_seconds: float = 30.0
    checkpoint_events: int = 200_000
    tick_seconds: float = 60.0
    """How often provisional reports are checked for a period end or a day without revision."""
    lease_ttl: float = 15.0
    """One projector runs per deployment; a standby takes over this long after it died."""


class ReportProjector:
    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: ProjectorSettings | None = None,
        *,
        clock: Callable[[], datetime] = now_vn,
        replicas: int = 1,
    ) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings or ProjectorSettings()
        self.clock = clock
        self.book = ReportBook()
        self.seq = 0
        self.published: dict[tuple[str, str], Published] = {}
        self.log = logs.get("lienthong.projector")
        self._js = JetStream(client, 10.0)
        # Replicated like the streams: the projector resumes on whichever node survives.
        self._checkpoints = CheckpointStore(client, self.settings.durable, replicas)
        self._dirty: dict[str, str] = {}  # report unit -> earliest period that may have changed
        self._latest: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._flushing = False
        self._events_since_checkpoint = 0
        self._behind = 0
        self._report_units: dict[str, tuple[str, ...]] = {}
        self._unacked: Msg | None = None
        self._catch_up_to = 0
        self._skips = SkipRecorder(client, PROJECTOR, replicas)
        self._skipped: list[tuple[int, str, str]] = []  # (seq, subject, why) not recorded yet

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        checkpoint = await self._checkpoints.load()
        if checkpoint is not None:
            self.book = ReportBook.restore(checkpoint.state)
            self.seq = checkpoint.seq
            self._latest = self.book.latest_period()
        self.published = await report_store.current_reports(self.client)
        # Changes applied before the checkpoint may not have been published when the last run
        # ended (a kill between a checkpoint and the next flush): judge every report of the
        # restored book against what the stream holds. Unchanged ones are not republished.
        for unit in self.book.units():
            self._mark(unit, self.book.periods(unit)[0])
        # Publish nothing until the log as it is now has been read: figures of a half-read log
        # are older than those already published, and would go out as new revisions.
        info = await self.client.jetstream().stream_info(EVENTS_STREAM)
        self._catch_up_to = info.state.last_seq
        await self._bind_consumer()
        self.log.info(
            "projector.started",
            resume_after=self.seq,
            catch_up_to=self._catch_up_to,
            reports=len(self.published),
        )
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self._sub.unsubscribe()
        if (msg := self._unacked) is not None:
            await msg.ack()
        await self.flush()
        await self._record_skips()
        await self.checkpoint()
        self.log.info("projector.stopped", seq=self.seq)

    async def abort(self) -> None:
        """Stop at once, publishing and checkpointing nothing more (another took over)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        self.log.warning("projector.aborted", seq=self.seq)

    async def _bind_consumer(self) -> None:
        js = self.client.jetstream()
        # The checkpoint, not the consumer's ack floor, says where to resume: re-create the
        # durable consumer there (its ack floor is kept for operators to see the lag).
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(EVENTS_STREAM, self.settings.durable)
        config = ConsumerConfig(
            durable_name=self.settings.durable,
            description="lienthong report projector",
            deliver_subject=self.client.new_inbox(),
            ack_policy=AckPolicy.ALL,
            max_ack_pending=self.settings.max_ack_pending,
            ack_wait=300,
            flow_control=True,
            idle_heartbeat=5,
            filter_subject="onestop.events.>",
        )
        if self.seq > 0:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.seq + 1
        else:
            config.deliver_policy = DeliverPolicy.ALL
        await js.add_consumer(EVENTS_STREAM, config)
        # A push consumer with a callback: applying an event is pure and synchronous, so each
        # message costs one call, not a task and a timer as a pull fetch does in nats-py.
        self._sub = await js.subscribe_bind(
            EVENTS_STREAM,
            config,
            self.settings.durable,
            cb=self._on_event,
            manual_ack=True,
            pending_msgs_limit=self.settings.max_ack_pending * 2,
            pending_bytes_limit=512 * 1024 * 1024,
        )

    # -- the loop -----------------------------------------------------------------------------

    async def _on_event(self, msg: Msg) -> None:
        delivery = delivery_of(msg.reply)
        self._behind = delivery.pending
        self._unacked = msg
        self._apply(msg, delivery.seq)

    async def _run(self) -> None:
        """Acks, flushes, checkpoints and ticks; events arrive in `_on_event`."""
        s = self.settings
        last_flush = last_checkpoint = last_tick = time.monotonic()
        while not self._stopping.is_set():
            await asyncio.sleep(0.05)
            try:
                if (msg := self._unacked) is not None:
                    self._unacked = None
                    await msg.ack()  # AckAll: everything up to it
                await self._record_skips()
                now = time.monotonic()
                # While far behind the log (catching up), intermediate revisions are history
                # nobody asked for: publish less often until caught up.
                interval = (
                    s.catchup_flush_seconds
                    if self._behind > s.max_ack_pending
                    else s.coalesce_seconds
                )
                caught_up = self.seq >= self._catch_up_to
                if caught_up and self._dirty and now - last_flush >= interval:
                    await self.flush()
                    last_flush = now
                if (
                    now - last_checkpoint >= s.checkpoint_seconds
                    or self._events_since_checkpoint >= s.checkpoint_events
                ):
                    await self.checkpoint()
                    last_checkpoint = now
                if now - last_tick >= s.tick_seconds:
                    self._tick()
                    last_tick = now
            except (nats.errors.Error, Unavailable) as e:  # a broker away must not end the loop
                self.log.warning("projector.step_failed", error=type(e).__name__)
                await asyncio.sleep(1.0)

    def _apply(self, msg: Msg, seq: int) -> None:
        if seq <= self.seq:
            return  # already in the restored state
        self.seq = seq
        self._events_since_checkpoint += 1
        try:
            event = EVENT_DECODER.decode(msg.data)
        except msgspec.DecodeError as e:  # not JSON, or not an event: nothing it could count
            self.log.error("projector.undecodable_event", seq=seq)
            self._skipped.append((seq, msg.subject, str(e)))
            return
        units = self._report_units.get(event.unit)
        if units is None:
            known = event.unit in self.registry
            units = self.registry.report_units(event.unit) if known else (event.unit,)
            self._report_units[event.unit] = units
        changed = self.book.apply(event, units)
        if changed is not None:
            for unit in units:
                self._mark(unit, changed)

    async def _record_skips(self) -> None:
        """Where `lienthong status` shows them; before the checkpoint passes them by."""
        while self._skipped:
            await self._skips.record(*self._skipped[0])
            self._skipped.pop(0)

    def _mark(self, unit: str, period: str) -> None:
        """The unit's reports from `period` on may have changed."""
        if unit not in self._dirty or period < self._dirty[unit]:
            self._dirty[unit] = period

    def _tick(self) -> None:
        """Period ends and daily republication of provisional reports, with no event needed."""
        now = self.clock()
        for (unit, period), published in self.published.items():
            report = published.report
            if not report.final and (now >= period_end(period) or now - report.generated_at >= DAY):
                self._mark(unit, period)

    # -- publishing ---------------------------------------------------------------------------

    def reports_due(self) -> list[Report]:
        """The reports whose figures (or finality) differ from what was last published."""
        latest = self.book.latest_period()
        if latest is not None and latest != self._latest:
            # A new latest period: every unit gets a report for it (dossiers carry into it).
            for unit in self.book.units():
                self._mark(unit, self._latest if self._latest is not None else latest)
            self._latest = latest
        now = self.clock()
        due: list[Report] = []
        for unit, since in sorted(self._dirty.items()):
            for period in self.book.periods(unit):
                if period < since:
                    continue
                final = now >= period_end(period)
                figures = self.book.figures(unit, period, None if final else now)
                previous = self.published.get((unit, period))
                if previous is not None:
                    old = previous.report
                    if (
                        old.final == final
                        and old.figures == figures
                        and (final or now - old.generated_at < DAY)
                    ):
                        continue
                due.append(
                    Report(
                        unit=unit,
                        period=period,
                        revision=(previous.report.revision + 1) if previous else 1,
                        final=final,
                        generated_at=now,
                        dossiers=figures.dossiers,
                        documents=figures.documents,
                        copies=figures.copies,
                    )
                )
        return due

    async def flush(self) -> int:
        """Publish every report that changed; returns how many revisions were published."""
        self._flushing = True
        try:
            due = self.reports_due()
            self._dirty.clear()
            results = await asyncio.gather(*(self._publish(r) for r in due))
        finally:
            self._flushing = False
        published = sum(results)
        if due:
            self.log.info("projector.flush", published=published, seq=self.seq)
        return published

    async def _publish(self, report: Report) -> int:
        key = (report.unit, report.period)
        previous = self.published.get(key)
        try:
            seq = await report_store.publish(self._js, report, previous.seq if previous else 0)
        except WrongLastSequence:
            # Another projector published this subject: take its revision as ours and re-judge.
            self._mark(report.unit, report.period)
            current = await report_store.current_report(self._js, report.unit, report.period)
            if current is not None:
                self.published[key] = current
            return 0
        except (nats.errors.Error, Unavailable) as e:
            # Not stored (no leader, time-out): judge it again at the next flush, never drop it.
            self.log.warning(
                "projector.publish_failed",
                unit=report.unit,
                period=report.period,
                error=type(e).__name__,
            )
            self._mark(report.unit, report.period)
            return 0
        self.published[key] = Published(report, seq)
        return 1

    async def checkpoint(self) -> None:
        await self._checkpoints.save(Checkpoint(self.seq, self.book.snapshot()))
        self._events_since_checkpoint = 0

    # -- waiting (demo, tests, operators) -----------------------------------------------------

    async def wait_until_current(self, timeout: float = 60.0) -> None:
        """Until every event now in the log is applied and every change is published."""
        info = await self.client.jetstream().stream_info(EVENTS_STREAM)
        target = info.state.last_seq
        deadline = time.monotonic() + timeout
        while self.seq < target or self._dirty or self._flushing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"projector at {self.seq}, log at {target}")
            await asyncio.sleep(0.05)
