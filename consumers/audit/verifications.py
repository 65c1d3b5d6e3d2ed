"""The last `lienthong verify` result, kept where the dashboard shows it: bucket
ONESTOP_VERIFICATIONS, key `last` (with a short history), never the event log.

Recording is best effort: verify needs only read rights, and an auditor with no right to write
still gets the verdict; the command says it could not record it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType

BUCKET = "ONESTOP_VERIFICATIONS"
KEY = "last"
MAX_LINES = 20
"""The ALTERED lines kept with a result; the command itself prints them all."""


class VerificationRecord(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    intact: bool
    against: str
    """"its seals", or the witness's URL and stream."""
    events: int
    last_seq: int
    seals: int
    verified_seq: int
    unsealed: int
    altered: list[str]
    """What verify found altered, as it printed it (at most MAX_LINES)."""


_RECORD = msgspec.json.Decoder(VerificationRecord)


async def record_verification(
    client: Client, record: VerificationRecord, replicas: int = 1
) -> str | None:
    """Store the result; None when stored, else why not (one line)."""
    js = client.jetstream()
    try:
        try:
            kv = await js.key_value(BUCKET)
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET,
                    description="lienthong: the latest verify results, for the dashboard",
                    storage=StorageType.FILE,
                    replicas=replicas,
                    history=16,
                )
            )
        await kv.put(KEY, msgspec.json.encode(record))
    except nats.errors.Error as e:
        return f"{type(e).__name__}: {e}".rstrip(": ")
    return None


async def last_verification(client: Client) -> VerificationRecord | None:
    try:
        kv = await client.jetstream().key_value(BUCKET)
        entry = await kv.get(KEY)
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        return None
    return _RECORD.decode(entry.value) if entry.value else None
