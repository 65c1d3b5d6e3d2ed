"""Provisioning the gateway's JetStream streams and buckets, idempotently, from StreamSettings."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from plumbing.settings import StreamSettings

EVENTS_STREAM = "ONESTOP_EVENTS"
REPORTS_STREAM = "ONESTOP_REPORTS"
EVENT_IDS_STREAM = "ONESTOP_EVENT_IDS"
"""The event-id index: one message per (unit, event_id), compare-and-set (gateway.event_index)."""
EVENT_IDS_PREFIX = "onestop.eventids"
OUTBOX_STREAM = "ONESTOP_OUTBOX"
"""Envelopes owed to the province, one message each, removed once the province acknowledged."""
OUTBOX_PREFIX = "onestop.outbox"
SEALS_STREAM = "ONESTOP_SEALS"
"""Seals over the event log: its hash chain up to a sequence, now and then (audit.sealer)."""
SEALS_SUBJECT = "onestop.seals"
OPERATIONS_STREAM = "ONESTOP_OPERATIONS"
"""What operators did to the gateway's state, who and when (audit.operations); not events."""
OPERATIONS_PREFIX = "onestop.operations"
KEYS_STREAM = "ONESTOP_KEYS"
"""One key per dossier for its applicant's personal data, wrapped (plumbing.dossier_keys)."""
KEYS_PREFIX = "onestop.keys"
ERASURES_STREAM = "ONESTOP_ERASURES"
"""Erasures of personal data: when, by which party, why (audit.erasure); replayed on restore."""
ERASURES_PREFIX = "onestop.erasures"
DISCLOSURES_STREAM = "ONESTOP_DISCLOSURES"
"""Each time personal data was shown to a party: who, when, which dossier (audit.erasure)."""
DISCLOSURES_PREFIX = "onestop.disclosures"


def event_log_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        description="lienthong event log: every accepted unit event, once, in order",
        subjects=["onestop.events.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_bytes=settings.events_max_bytes,
        # A full log refuses new events (answered `unavailable`) rather than dropping old ones.
        discard=DiscardPolicy.NEW,
        duplicate_window=settings.duplicate_window_seconds,
        allow_direct=True,
        # The log is evidence: nobody deletes or purges through the API.
        deny_delete=True,
        deny_purge=True,
        # A batch of new entities' first events is appended in one atomic write (gateway.intake).
        allow_atomic=True,
    )


def reports_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=REPORTS_STREAM,
        description="lienthong monthly reports: every revision; the last per subject is current",
        subjects=["onestop.reports.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_msgs_per_subject=settings.reports_max_msgs_per_subject,
        duplicate_window=settings.duplicate_window_seconds,
        allow_direct=True,
    )


def event_ids_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=EVENT_IDS_STREAM,
        description="lienthong event-id index: where each (unit, event_id) was appended",
        subjects=[f"{EVENT_IDS_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        # A KV bucket in all but name: writes are compare-and-set on the subject's last sequence.
        max_msgs_per_subject=1,
        allow_direct=True,
        deny_delete=True,
        deny_purge=True,
        allow_atomic=True,
    )


def outbox_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=OUTBOX_STREAM,
        description="lienthong interconnection outbox: envelopes owed to the province, per dossier",
        subjects=[f"{OUTBOX_PREFIX}.>"],
        # A message leaves when the delivery worker acknowledges it (the province said ok).
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        # The translator republishes after a crash; the message_id makes that a duplicate.
        duplicate_window=settings.duplicate_window_seconds,
        # Direct gets: `lienthong status` reads each waiting dossier's oldest message.
        allow_direct=True,
    )


def seals_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=SEALS_STREAM,
        description="lienthong seals: the event log's hash chain, for tamper evidence",
        subjects=[SEALS_SUBJECT],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=settings.duplicate_window_seconds,
        allow_direct=True,
        # Evidence too: a seal is never taken back.
        deny_delete=True,
        deny_purge=True,
    )


def _record_stream(
    settings: StreamSettings, name: str, description: str, subject: str
) -> StreamConfig:
    """A stream of audit records: replicated, read by subject, and never taken back through
    the API (deletes and purges denied)."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=[subject],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        allow_direct=True,
        deny_delete=True,
        deny_purge=True,
    )


def operations_config(settings: StreamSettings) -> StreamConfig:
    return _record_stream(
        settings,
        OPERATIONS_STREAM,
        "lienthong operator actions: who changed what, when (never unit events)",
        f"{OPERATIONS_PREFIX}.>",
    )


def keys_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=KEYS_STREAM,
        description="lienthong dossier keys, wrapped: erasing one shreds its applicant's data",
        subjects=[f"{KEYS_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        allow_direct=True,
        # Not a KV bucket: only a message delete (which erases by default) overwrites a key's
        # bytes on disk. Purges and per-subject limits only mark messages removed, so neither
        # is used: a purge is denied and each subject holds what its writes put there.
        deny_delete=False,
        deny_purge=True,
        # A large batch's new dossiers get their keys in one atomic write (gateway.intake).
        allow_atomic=True,
    )


def erasures_config(settings: StreamSettings) -> StreamConfig:
    return _record_stream(
        settings,
        ERASURES_STREAM,
        "lienthong erasures of personal data: when, by whom, why",
        f"{ERASURES_PREFIX}.>",
    )


def disclosures_config(settings: StreamSettings) -> StreamConfig:
    return _record_stream(
        settings,
        DISCLOSURES_STREAM,
        "lienthong disclosures of personal data: who was shown which dossier, when",
        f"{DISCLOSURES_PREFIX}.>",
    )


async def provision(client: Client, settings: StreamSettings) -> None:
    """Create the streams, or bring an existing stream's editable settings in line."""
    js = client.jetstream()
    for config in (
        event_log_config(settings),
        reports_config(settings),
        event_ids_config(settings),
        outbox_config(settings),
        seals_config(settings),
        operations_config(settings),
        keys_config(settings),
        erasures_config(settings),
        disclosures_config(settings),
    ):
        try:
            await js.add_stream(config)
        except BadRequestError as e:
            if e.err_code != 10058:  # stream name already in use with a different configuration
                raise
            await js.update_stream(config)
