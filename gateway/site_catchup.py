"""The city takes each ward site's events into its own log: in each dossier's order, once.

Two steps, each with one job:

1. NATS carries the site's log to the city: stream `ONESTOP_SITE_<code>` on the city's servers
   is a JetStream mirror of the site's `ONESTOP_EVENTS` through the site's domain API
   (`$JS.site-<code>.API`) across the leaf connection. A mirror copies by the source's own
   sequence, resumes where it stopped after either side restarted, and retries by itself
   while the link is down; whatever time the outage took, nothing depends on JetStream's
   duplicate window.
2. This part (one per deployment, under a lease) reads each mirror in sequence from its
   checkpoint and appends the events to `ONESTOP_EVENTS` through the gateway's own intake: the
   event-id index makes an event appended before (a restart between append and checkpoint, a
   mirror that redelivered) a duplicate for ever, and the dossier's last sequence orders each
   append. The checkpoint (bucket `ONESTOP_SITES`, key `<code>`) is the mirror sequence of the
   last event appended, written after each batch.

Nothing but this part writes a site's entities at the city (gateway.sites.Writer).
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
)
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from gateway.event_index import EventIndex
from gateway.event_log import EventLog
from gateway.intake import Candidate, Intake
from plumbing.headers import DOSSIER_STATE, MSG_ID
from plumbing.jetstream import JetStream, delivery_of
from plumbing.sites import (
    Checkpoint,
    mirror_config,
    mirror_name,
    read_checkpoint,
    sites_bucket,
)
from schemas.codec import EVENT_DECODER
from schemas.periods import now_vn
from schemas.registry import Registry
from schemas.replies import Accepted, ErrorCode, Refused


class CatchUpSettings(msgspec.Struct, frozen=True, kw_only=True):
    batch: int = 500
    """Events appended per intake call (each dossier's still one after another)."""
    retry_seconds: float = 1.0
    """Pause before a batch the city's log could not take (unavailable) is tried again."""
    request_timeout: float = 10.0
    lease_ttl: float = 15.0


async def ensure_mirrors(client: Client, registry: Registry, replicas: int = 1) -> None:
    """Create the mirror of every site in the registry that has none (a mirror's source cannot
    change, so an existing one is left as it is)."""
    js = client.jetstream()
    for site in registry.sites():
        try:
            await js.stream_info(mirror_name(site))
        except NotFoundError:
            await js.add_stream(mirror_config(site, replicas))


_CARRIED_OVER = frozenset({MSG_ID, DOSSIER_STATE})
"""Headers the city's intake writes anew; every other header of ours (the origin of a province
message, its message id) comes along as the site stored it."""


def candidate(msg: Msg) -> Candidate:
    """The stored event as the city's intake takes it: the very bytes the site stored."""
    event = EVENT_DECODER.decode(msg.data)
    headers = {
        k: v
        for k, v in (msg.headers or {}).items()
        if k not in _CARRIED_OVER and not k.startswith("Nats-")
    }
    return Candidate(event, msg.data, headers or None)


class SiteCatchUp:
    """Follows every site's mirror and appends its events to the city's log (module docstring)."""

    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: CatchUpSettings | None = None,
        *,
        replicas: int = 1,
    ) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings or CatchUpSettings()
        self.replicas = replicas
        self.checkpoints: dict[str, Checkpoint] = {}
        self.log = structlog.get_logger("lienthong.sites")
        js = JetStream(client, self.settings.request_timeout)
        self.intake = Intake(EventLog(js), EventIndex(js))
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._kv: KeyValue | None = None

    async def start(self) -> None:
        await ensure_mirrors(self.client, self.registry, self.replicas)
        self._kv = await sites_bucket(self.client, self.replicas)
        for site in self.registry.sites():
            self.checkpoints[site] = await read_checkpoint(self._kv, site)
            self._tasks.append(asyncio.create_task(self._follow(site)))
        self.log.info("sites.started", sites=self.registry.sites())

    async def stop(self) -> None:
        """Finish the batch at hand (its checkpoint written), then stop."""
        self._stopping.set()
        for task in self._tasks:
            await task
        self._tasks = []
        self.log.info("sites.stopped")

    async def abort(self) -> None:
        """Stop at once (another process took over): it re-reads from the checkpoint."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _follow(self, site: str) -> None:
        while not self._stopping.is_set():
            try:
                await self._read(site)
            except (nats.errors.Error, TimeoutError) as e:  # the city's own server away
                self.log.warning("sites.read_failed", site=site, error=type(e).__name__)
                await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.settings.retry_seconds)

    async def _read(self, site: str) -> None:
        start = self.checkpoints[site].mirror_seq + 1
        sub = await self.client.jetstream().subscribe(
            "onestop.events.>",
            stream=mirror_name(site),
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
            # As the sealer's: a long catch-up must not overflow into gaps and resets.
            pending_msgs_limit=100_000,
            pending_bytes_limit=256 * 1024 * 1024,
        )
        try:
            while not self._stopping.is_set():
                batch = await self._next_batch(sub)
                if batch:
                    await self._append(site, batch)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _next_batch(self, sub: nats.js.JetStreamContext.PushSubscription) -> list[Msg]:
        """What has come, up to a batch; waits a little for the first only."""
        batch: list[Msg] = []
        timeout = 0.25
        while len(batch) < self.settings.batch:
            try:
                batch.append(await sub.next_msg(timeout=timeout))
            except nats.errors.TimeoutError:
                break
            timeout = 0.01
        return batch

    async def _append(self, site: str, batch: list[Msg]) -> None:
        done = self.checkpoints[site]
        fresh = [m for m in batch if delivery_of(m.reply).seq > done.mirror_seq]
        if not fresh:
            return
        events: list[Candidate] = []
        refused = 0
        for msg in fresh:
            try:
                c = candidate(msg)
            except msgspec.DecodeError:  # not an event: the site's audits name it
                self.log.warning("sites.not_an_event", site=site, subject=msg.subject)
                continue
            if c.event.unit not in self.registry or self.registry.site_of(c.event.unit) != site:
                # One writer per unit: a site never writes another's entities, nor the city's.
                refused += 1
                self.log.error("sites.not_its_unit", site=site, unit=c.event.unit)
                continue
            events.append(c)
        while True:
            replies = await self.intake.record(events)
            if not any(
                isinstance(r, Refused) and r.error.code is ErrorCode.UNAVAILABLE for r in replies
            ):
                break
            if self._stopping.is_set():
                return  # the checkpoint stays: the next run appends them, once
            await self._pause()
        for c, r in zip(events, replies, strict=True):
            if not isinstance(r, Accepted):
                refused += 1
                self.log.error(
                    "sites.event_refused",
                    site=site,
                    event_id=c.event.event_id,
                    code=r.error.code.value,
                )
        checkpoint = Checkpoint(
            mirror_seq=delivery_of(fresh[-1].reply).seq,
            refused=done.refused + refused,
            at=now_vn(),
        )
        assert self._kv is not None
        await self._kv.put(site, msgspec.json.encode(checkpoint))
        self.checkpoints[site] = checkpoint
        self.log.info("sites.appended", site=site, events=len(events), upto=checkpoint.mirror_seq)
