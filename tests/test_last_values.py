"""Reading the last message of every matching subject: the base of current reports and records."""

from __future__ import annotations

from nats.aio.client import Client

from plumbing.last_values import kv_values
from plumbing.records import RECORDS_BUCKET, records_bucket


async def test_every_matching_key_and_only_those_with_their_current_values(client: Client) -> None:
    kv = await records_bucket(client)
    for dossier in range(30):
        for message in range(3):
            await kv.put(f"21550.D{dossier}.out.M{message}", b"first")
            await kv.put(f"21550.D{dossier}.out.M{message}", f"{dossier}-{message}".encode())
    await kv.delete("21550.D7.out.M1")
    for dossier in range(30):
        values = await kv_values(client, RECORDS_BUCKET, f"21550.D{dossier}.out.>")
        expected = [f"{dossier}-{m}".encode() for m in range(3) if (dossier, m) != (7, 1)]
        assert sorted(values) == expected


async def test_nothing_matching_and_no_bucket_read_as_empty(client: Client) -> None:
    assert await kv_values(client, RECORDS_BUCKET, "21550.>") == []  # no bucket: none created
    assert f"KV_{RECORDS_BUCKET}" not in [
        s.config.name for s in await client.jetstream().streams_info()
    ]
    kv = await records_bucket(client)
    await kv.put("21550.D1.out.M1", b"x")
    assert await kv_values(client, RECORDS_BUCKET, "21553.>") == []
