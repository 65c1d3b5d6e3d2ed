"""The projector's checkpoint: its whole state and the log sequence it reflects, in one write.

Kept in a JetStream object store (bucket ONESTOP_PROJECTOR), so any instance on any machine can
resume from it. An object becomes visible only when its last chunk and its meta are written, so
a projector killed mid-write leaves the previous checkpoint intact: the write is atomic.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

BUCKET = "ONESTOP_PROJECTOR"


class Checkpoint(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    """The last event-log sequence the state reflects; resume at seq + 1."""
    state: bytes


class CheckpointStore:
    def __init__(self, client: Client, name: str, replicas: int = 1) -> None:
        self._client = client
        self._name = name
        self._replicas = replicas
        self._store: ObjectStore | None = None

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            js = self._client.jetstream(timeout=30)
            try:
                self._store = await js.object_store(BUCKET)
            except (BucketNotFoundError, NotFoundError):
                self._store = await js.create_object_store(
                    BUCKET,
                    config=ObjectStoreConfig(
                        description="lienthong projector checkpoints",
                        storage=StorageType.FILE,
                        replicas=self._replicas,
                    ),
                )
        return self._store

    async def load(self) -> Checkpoint | None:
        store = await self._bucket()
        try:
            result = await store.get(self._name)
        except (ObjectNotFoundError, NotFoundError):
            return None
        if result.data is None:
            return None
        return msgspec.msgpack.decode(result.data, type=Checkpoint)

    async def save(self, checkpoint: Checkpoint) -> None:
        store = await self._bucket()
        await store.put(self._name, msgspec.msgpack.encode(checkpoint))
