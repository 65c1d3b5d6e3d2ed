"""The settings of both outbound stages: the outbox (events to envelopes) and the delivery
worker (envelopes to the province). Every duration is in seconds."""

from __future__ import annotations

import msgspec


class OutboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    durable: str = "interconnect-outbox"
    fetch_batch: int = 500
    ack_wait: float = 30.0
    """After a crash, the unacknowledged batch is translated again after this long."""
    retry_delay: float = 0.5
    """First delay before retrying a batch that failed (doubles, up to 30 s)."""


class ForwarderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Both outbound stages. Every duration is in seconds."""

    durable: str = "interconnect-delivery"
    ack_wait: float = 30.0
    """How long a held message may go without a sign of life before JetStream redelivers it."""
    first_delay: float = 0.5
    max_delay: float = 300.0
    park_after: float = 86_400.0
    request_timeout: float = 5.0
    concurrency: int = 64
    """Requests to the province in flight at once, over all dossiers."""
    max_ack_pending: int = 20_000
    fetch_batch: int = 500
    parked_poll: float = 5.0
    """How often a parked message's record is read to see whether an operator resumed it."""
    record_every: float = 30.0
    """How often a pending record is rewritten with the latest error while retries go on."""
    lease_ttl: float = 15.0
    """One forwarder runs per deployment; a standby takes over this long after it died."""
    outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)
