"""The deployment's state as an operator watches it, read from JetStream (never from one process):
how far the projector is behind the log, who holds each lease, how far the seals are behind,
what the outbox still owes the province, what the last `verify` found, which ward sites' logs
the city has not caught up with. Read-only: info requests, direct gets and KV reads only.

The same reading serves /readyz, /metrics and the page's interconnection panel, so any process
running the dashboard tells the same story, whichever process runs the projector.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from consumers.audit.sealer import last_seal
from consumers.audit.verifications import VerificationRecord, last_verification
from consumers.interconnect.status import UnitDeliveryStatus, delivery_status
from consumers.reports.projector import ProjectorSettings
from consumers.sites.status import SiteLag, site_lags
from plumbing.errors import LogUnavailable
from plumbing.jetstream import JetStream
from plumbing.lease import FORWARDER_LEASE, LEASES_BUCKET, PROJECTOR_LEASE, SEALER_LEASE
from plumbing.streams import EVENTS_STREAM
from schemas.registry import Registry

LEASES = (PROJECTOR_LEASE, FORWARDER_LEASE, SEALER_LEASE)


class ProjectorLag(msgspec.Struct, frozen=True, kw_only=True):
    known: bool
    """False when the projector's consumer does not exist: it never ran on this log."""
    sequences: int = 0
    """Events stored in the log that the projector has not acknowledged yet."""
    seconds: float = 0.0
    """How long the oldest of them has been waiting (0 when none is)."""


class Seals(msgspec.Struct, frozen=True, kw_only=True):
    last_seq: int | None
    """The last log sequence a seal covers (None before the first seal)."""
    sealed_at: datetime | None
    behind: int
    """Events stored after the last seal: not vouched for yet."""


class Operations(msgspec.Struct, frozen=True, kw_only=True):
    read_at: datetime
    log_last_seq: int
    projector: ProjectorLag
    leases: dict[str, str | None]
    """Each lease's holder (host:pid:id), None when nobody holds it."""
    seals: Seals
    outbox: list[UnitDeliveryStatus]
    verification: VerificationRecord | None
    """The last `lienthong verify` result recorded (None: never, or not recorded)."""
    sites: list[SiteLag] = msgspec.field(default_factory=list)
    """Each ward site of the registry: its link and what the city's log has not taken in yet
    (empty when the registry has no sites, or none was asked for)."""


async def projector_lag(
    client: Client, log_last_seq: int, durable: str = ProjectorSettings().durable
) -> ProjectorLag:
    js = client.jetstream()
    try:
        info = await js.consumer_info(EVENTS_STREAM, durable)
    except nats.js.errors.NotFoundError:
        return ProjectorLag(known=False)
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    behind = max(0, log_last_seq - floor)
    if behind == 0:
        return ProjectorLag(known=True)
    oldest = await JetStream(client, 5.0).by_seq(EVENTS_STREAM, floor + 1)
    seconds = 0.0
    if oldest is not None and oldest.time:
        # msgspec reads RFC 3339 with nanoseconds, which datetime.fromisoformat does not.
        stored = msgspec.json.decode(msgspec.json.encode(oldest.time), type=datetime)
        seconds = max(0.0, (datetime.now(UTC) - stored).total_seconds())
    return ProjectorLag(known=True, sequences=behind, seconds=seconds)


async def lease_holders(client: Client) -> dict[str, str | None]:
    holders: dict[str, str | None] = dict.fromkeys(LEASES)
    try:
        kv = await client.jetstream().key_value(LEASES_BUCKET)
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        return holders
    for name in LEASES:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await kv.get(name)
            holders[name] = entry.value.decode() if entry.value else None
    return holders


async def read_operations(client: Client, registry: Registry | None = None) -> Operations:
    """Everything above in one reading; LogUnavailable when the log cannot be read at all.
    The sites only with a registry: /readyz does without them (a cut-off site does not make the
    city's dashboard unready, and each probe of a silent site costs up to a second)."""
    js = client.jetstream()
    try:
        log_last_seq = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    except nats.errors.Error as e:
        raise LogUnavailable(f"the event log cannot be read ({type(e).__name__})") from e
    sealed = None
    with contextlib.suppress(nats.errors.Error, LogUnavailable):
        sealed = await last_seal(JetStream(client, 5.0))
    seals = Seals(
        last_seq=sealed[0].seq if sealed else None,
        sealed_at=sealed[0].sealed_at if sealed else None,
        behind=log_last_seq - (sealed[0].seq if sealed else 0),
    )
    return Operations(
        read_at=datetime.now(UTC),
        log_last_seq=log_last_seq,
        projector=await projector_lag(client, log_last_seq),
        leases=await lease_holders(client),
        seals=seals,
        outbox=await delivery_status(client),
        verification=await last_verification(client),
        sites=await site_lags(client, registry) if registry is not None else [],
    )
