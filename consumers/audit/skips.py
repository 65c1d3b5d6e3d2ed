"""Messages of the event log that a live part skipped because they are not events.

The projector and the outbox translator cannot count or forward a message that does not decode
(anything appended around the gateway); they skip it and record it here, in the KV bucket
ONESTOP_SKIPPED under `<part>.<sequence>`, so `lienthong status` shows how many each skipped and
the latest. Keyed by sequence, a message read twice (a restart, a redelivery) counts once.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from plumbing.last_values import kv_values
from schemas.periods import now_vn

SKIPS_BUCKET = "ONESTOP_SKIPPED"
PROJECTOR = "projector"
OUTBOX = "outbox"


class Skip(msgspec.Struct, frozen=True, kw_only=True):
    part: str
    seq: int
    subject: str
    why: str
    at: datetime


_SKIP = msgspec.json.Decoder(Skip)


class SkipRecorder:
    """Records a part's skips; the bucket is created on the first one."""

    def __init__(self, client: Client, part: str, replicas: int = 1) -> None:
        self._client = client
        self._part = part
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js = self._client.jetstream()
            try:
                self._kv = await js.key_value(SKIPS_BUCKET)
            except (BucketNotFoundError, NotFoundError):
                self._kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=SKIPS_BUCKET,
                        description="lienthong: messages of the event log skipped as not events",
                        storage=StorageType.FILE,
                        replicas=self._replicas,
                        history=1,
                    )
                )
        return self._kv

    async def record(self, seq: int, subject: str, why: str) -> None:
        skip = Skip(part=self._part, seq=seq, subject=subject, why=why[:500], at=now_vn())
        await (await self._bucket()).put(f"{self._part}.{seq}", msgspec.json.encode(skip))


async def skipped(client: Client) -> dict[str, list[Skip]]:
    """Every part's skips, by part, oldest sequence first (none when the bucket is missing)."""
    by_part: dict[str, list[Skip]] = {}
    for value in await kv_values(client, SKIPS_BUCKET, ">"):
        skip = _SKIP.decode(value)
        by_part.setdefault(skip.part, []).append(skip)
    for skips in by_part.values():
        skips.sort(key=lambda s: s.seq)
    return by_part


def skips_table(by_part: dict[str, list[Skip]]) -> str:
    """What `lienthong status` says about skipped messages (nothing when there are none)."""
    lines = []
    for part, skips in sorted(by_part.items()):
        last = skips[-1]
        lines.append(
            f"{part} skipped {len(skips)} messages of the log that are not events; the latest: "
            f"message {last.seq} on {last.subject} ({last.why})"
        )
    return "".join(line + "\n" for line in lines)
