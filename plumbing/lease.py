"""One holder at a time across processes and machines: a lease that expires unless renewed.

The forwarder must run in one process of a deployment (two translators could interleave a
dossier's messages, two delivery workers could send them out of order), yet every `lienthong
serve` may carry the forwarder role so that another takes over when one dies. The lease is a key
in the KV bucket ONESTOP_LEASES, whose entries expire after `ttl` seconds (the bucket's max age):
`create` takes it only when nobody holds it, the holder renews it every `ttl / 3` with a
compare-and-set on its own revision, and a holder that cannot renew for `2/3 ttl` gives up before
anyone else can take it over. A holder that dies is replaced within `ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from plumbing.errors import LogUnavailable

LEASES_BUCKET = "ONESTOP_LEASES"

PROJECTOR_LEASE = "projector"
FORWARDER_LEASE = "forwarder"
SEALER_LEASE = "sealer"
SITES_LEASE = "sites"
"""The roles that run in one process of a deployment at a time, each under its lease."""


class Lease:
    """`acquire` until held, then `hold` until lost or told to stop, then `release`."""

    def __init__(self, client: Client, name: str, ttl: float = 15.0, replicas: int = 1) -> None:
        self.client = client
        self.name = name
        self.ttl = ttl
        self.replicas = replicas
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = structlog.get_logger("lienthong.lease")
        self._kv: KeyValue | None = None
        self._revision = 0
        self._renewed = 0.0  # monotonic time of the last confirmed write

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js = self.client.jetstream()
            try:
                self._kv = await js.key_value(LEASES_BUCKET)
                # Keys expire at the bucket's max age, whatever this lease was told: renew and
                # give up by the shorter of the two, so no two holders can ever overlap.
                expires = (await self._kv.status()).ttl
                if expires:
                    self.ttl = min(self.ttl, expires)
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
                self._kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=LEASES_BUCKET,
                        description="lienthong leases: who runs a once-per-deployment role",
                        storage=StorageType.FILE,
                        replicas=self.replicas,
                        history=1,
                        ttl=self.ttl,
                    )
                )
        return self._kv

    @property
    def held(self) -> bool:
        return self._revision > 0 and time.monotonic() - self._renewed < self.ttl * 2 / 3

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when it is ours."""
        started = time.monotonic()
        try:
            kv = await self._bucket()
            self._revision = await kv.create(self.name, self.holder.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # someone holds it
        except nats.errors.Error as e:
            self.log.warning("lease.unreachable", lease=self.name, error=type(e).__name__)
            return False
        self._renewed = started
        self.log.info("lease.acquired", lease=self.name, holder=self.holder)
        return True

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Until the lease is ours (True) or `stopping` is set (False)."""
        while not stopping.is_set():
            if await self.try_acquire():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.ttl / 3)
        return False

    async def hold(self, stopping: asyncio.Event) -> bool:
        """Renew until `stopping` is set (True) or the lease is lost (False)."""
        kv = await self._bucket()
        while self.held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.ttl / 3)
            if stopping.is_set():
                return True
            started = time.monotonic()
            try:
                self._revision = await kv.update(
                    self.name, self.holder.encode(), last=self._revision
                )
                self._renewed = started
            except nats.js.errors.KeyWrongLastSequenceError:
                break  # expired and taken by another: it is theirs now
            except nats.errors.Error as e:
                # Unconfirmed: keep trying while it can still be ours (`held` says how long).
                self.log.warning("lease.renew_failed", lease=self.name, error=type(e).__name__)
        self._revision = 0
        self.log.warning("lease.lost", lease=self.name, holder=self.holder)
        return False

    async def release(self) -> None:
        """Give the lease up at once (if still ours), so another holder need not wait for `ttl`."""
        if self._revision == 0 or self._kv is None:
            return
        with contextlib.suppress(nats.errors.Error):
            await self._kv.delete(self.name, last=self._revision)
            self.log.info("lease.released", lease=self.name, holder=self.holder)
        self._revision = 0


class LeasedPart:
    """A part of a deployment that runs in one process at a time (the projector, the forwarder).

    Every process that carries the part calls `start`; it runs here while this process holds
    the lease, and the others stand by. When the lease is lost (unreachable long enough for it to
    expire), the part is aborted at once, since another process may be running it by then.
    """

    def __init__(
        self,
        lease: Lease,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[bool], Awaitable[None]],
    ) -> None:
        """`start()` brings the part up; `stop(aborted)` takes it down (aborted: lease lost)."""
        self.lease = lease
        self._start_part = start
        self._stop_part = stop
        self.active = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the part at once if the lease is free, else stand by in the background."""
        if await self.lease.try_acquire():
            await self._start_part()
            self.active = True
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self.active:
            self.active = False
            await self._stop_part(False)
        await self.lease.release()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.active:
                if not await self.lease.acquire(self._stopping):
                    return
                try:
                    await self._start_part()
                except (nats.errors.Error, LogUnavailable) as e:
                    # The broker away as the part starts: let another process (or us) try again.
                    self.lease.log.warning(
                        "lease.part_start_failed", lease=self.lease.name, error=type(e).__name__
                    )
                    await self.lease.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=self.lease.ttl / 3)
                    continue
                self.active = True
            if await self.lease.hold(self._stopping):
                return  # stopping: stop() takes the part down and releases the lease
            self.active = False
            await self._stop_part(True)
