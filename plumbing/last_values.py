"""The last message of every subject matching a filter: current reports, KV values by pattern.

One ephemeral ordered consumer with `LAST_PER_SUBJECT`, read until the server says nothing is
pending. Whether anything matched at all is judged from the consumer's own state (pending or
already delivered), never from what the client happened to have received: nats-py's KV watcher
signals "no values" when its consumer delivered everything before the client counted any, and
so returns nothing now and then for keys that exist.
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

KV_OPERATION = "KV-Operation"


async def last_per_subject(
    client: Client, stream: str, filter_subject: str, timeout: float = 10.0
) -> list[Msg]:
    """The last message on each subject of `stream` matching `filter_subject`, in stream order."""
    js = client.jetstream(timeout=timeout)
    sub = await js.subscribe(
        filter_subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    out: list[Msg] = []
    try:
        info = await sub.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered else 0
        if not info.num_pending and not delivered:
            return out
        while True:
            msg = await sub.next_msg(timeout=timeout)
            out.append(msg)
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


async def kv_values(
    client: Client, bucket: str, pattern: str, timeout: float = 10.0
) -> list[bytes]:
    """The current values of a KV bucket's keys matching `pattern` (`a.b.>`), without deleted
    keys; none when the bucket does not exist (reading never creates it)."""
    try:
        msgs = await last_per_subject(client, f"KV_{bucket}", f"$KV.{bucket}.{pattern}", timeout)
    except NotFoundError:
        return []
    return [
        m.data
        for m in msgs
        if m.data and (m.headers or {}).get(KV_OPERATION) not in ("DEL", "PURGE")
    ]
