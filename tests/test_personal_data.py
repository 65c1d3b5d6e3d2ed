"""Issue 11: applicants' personal data sealed in the log, erasable, shown only to whom it is owed.

Every test runs against a real nats-server and, where it says "on disk", scans the server's
JetStream store directory itself, not the API.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client

from consumers.audit.erasure import NotShown, disclose
from consumers.audit.export import export, selection
from consumers.audit.history import dossier_history, render
from consumers.audit.rebuild import rebuild
from consumers.audit.sealer import Sealer, SealerSettings
from consumers.audit.verify import verify
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.dossier_keys import DossierKeys, KeyRecord, KeyState, key_subject
from plumbing.jetstream import JetStream
from plumbing.key_encryption import KekError, KeyEncryptionKeys
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import KEYS_STREAM, OUTBOX_STREAM, keys_config
from schemas.registry import Registry, RegistryFile
from tests import events as ev
from tests.helpers import (
    SHORT_WINDOW,
    GatewayStarter,
    error_of,
    files_containing,
    lienthong,
    outlive_the_window,
    submit,
    until,
)

NAME = "Nguyễn Văn Riêng Tư"
ID_NUMBER = "052190004711"
APPLICANT = {"name": NAME, "id_number": ID_NUMBER}
OTHER = {"name": "Lê Thị Khác", "id_number": "052190009999"}
_RECORD = msgspec.json.Decoder(KeyRecord)


def secrets_of(applicant: dict[str, str]) -> list[bytes]:
    return [applicant["name"].encode(), applicant["id_number"].encode()]


async def accepted(client: Client, events: list[dict[str, Any]], unit: str = ev.WARD) -> None:
    replies = await submit(client, unit, events)
    assert all(r["ok"] for r in replies), replies


def keys_of(client: Client) -> DossierKeys:
    return DossierKeys(JetStream(client, 5.0))


async def key_record(client: Client, dossier_id: str, unit: str = ev.WARD) -> KeyRecord:
    msg = await JetStream(client, 5.0).last_on_subject(KEYS_STREAM, key_subject(unit, dossier_id))
    assert msg is not None
    return _RECORD.decode(msg.data)


def jetstream_dir(server: NatsServer) -> Path:
    return server.store_dir / "jetstream"


# -- encrypted at rest ---------------------------------------------------------------------------


async def test_a_unit_cannot_submit_the_sealed_form(gateway: Gateway, client: Client) -> None:
    forged = {"nonce": "AAAA", "ciphertext": "AAAA", "digest": "AAAA"}
    [reply] = await submit(client, ev.WARD, [ev.received("HS-F1", sealed_applicant=forged)])
    assert error_of(reply) == ("invalid", "sealed_applicant")


async def test_the_store_on_disk_never_holds_an_applicants_name_or_id_number(
    gateway: Gateway, client: Client, nats_server: NatsServer
) -> None:
    dossiers = [f"HS-DISK-{n}" for n in range(5)]
    await accepted(client, [ev.received(d, applicant=APPLICANT) for d in dossiers])
    # A batch of 200 and more takes the atomic path for new dossiers: sealed there too.
    many = [ev.received(f"HS-MANY-{n}", applicant=OTHER) for n in range(250)]
    await accepted(client, many)
    # Their keys were made in one atomic write; resent, each is judged with its own key again.
    assert all(r["duplicate"] for r in await submit(client, ev.WARD, many))
    store = jetstream_dir(nats_server)
    # The scan sees what the server wrote (a plain field of the same events is there) ...
    await until(lambda: bool(files_containing(store, b"HS-MANY-249")), what="the events on disk")
    # ... and no applicant's name or ID number is, in any stream's files.
    for needle in secrets_of(APPLICANT) + secrets_of(OTHER):
        assert files_containing(store, needle) == []
    # What the log holds is the sealed form, and the gateway can open it again.
    first = await JetStream(client, 5.0).next_on_subject(
        "ONESTOP_EVENTS", f"onestop.events.{ev.WARD}.dossier.HS-DISK-0", 1
    )
    assert first is not None
    stored = msgspec.json.decode(first.data)
    assert stored["applicant"] is None
    assert set(stored["sealed_applicant"]) == {"alg", "nonce", "ciphertext", "digest"}
    applicant = await disclose(client, keys_of(client), ev.WARD, "HS-DISK-0")
    assert (applicant.name, applicant.id_number) == (NAME, ID_NUMBER)


async def test_resend_and_conflict_rules_hold_with_sealed_applicants(
    gateways: GatewayStarter, client: Client
) -> None:
    await gateways.start(streams=StreamSettings(duplicate_window_seconds=SHORT_WINDOW))
    event = ev.received("HS-R1", applicant=APPLICANT)
    [first] = await submit(client, ev.WARD, [event])
    assert first["ok"]
    assert not first["duplicate"]
    # Within JetStream's window, and in one batch: the same event is a duplicate ...
    [again] = await submit(client, ev.WARD, [event])
    assert again == {**first, "duplicate": True}
    both = await submit(client, ev.WARD, [ev.received("HS-R2", applicant=APPLICANT)] * 2)
    assert both[1]["duplicate"] is True
    # ... another applicant under the same event_id is a conflict.
    [other] = await submit(client, ev.WARD, [{**event, "applicant": OTHER}])
    assert error_of(other) == ("conflict", "event_id")
    # After the window, judged by the event-id index: the same again.
    await outlive_the_window(
        client, ev.WARD, event["event_id"], f"onestop.events.{ev.WARD}.dossier.HS-R1"
    )
    [late] = await submit(client, ev.WARD, [event])
    assert late == {**first, "duplicate": True}
    [late_other] = await submit(client, ev.WARD, [{**event, "applicant": OTHER}])
    assert error_of(late_other) == ("conflict", "event_id")
    [no_applicant] = await submit(client, ev.WARD, [{**event, "applicant": None}])
    assert error_of(no_applicant) == ("conflict", "event_id")


# -- erasure -------------------------------------------------------------------------------------


def reports(book: Any) -> dict[tuple[str, str], Any]:
    return {
        (u, p): msgspec.to_builtins(book.figures(u, p))
        for u in book.units()
        for p in book.periods(u)
    }


async def test_erasure_destroys_the_key_on_disk_and_changes_nothing_else(
    gateway: Gateway, client: Client, nats_server: NatsServer, nats_settings: NatsSettings
) -> None:
    registry = gateway.registry
    d = "HS-E/2021.1"
    received = ev.received(d, applicant=APPLICANT)
    events = [received, ev.dossier_event("resolved", d)]
    await accepted(client, events)
    await accepted(client, [ev.received("HS-E2", applicant=OTHER)])
    sealer_client = await connection.connect(nats_settings)
    sealer = Sealer(sealer_client, SealerSettings(interval_seconds=3600))
    await sealer.start()
    try:
        await sealer.wait_until_current()
        before = reports((await rebuild(client, registry)).book)
        wrapped = await key_record(client, d)
        needle = base64.b64encode(wrapped.wrapped)
        keys_dir = jetstream_dir(nats_server)
        await until(
            lambda: bool(files_containing(keys_dir, needle)), what="the wrapped key on disk"
        )

        code, out, err = await lienthong(
            nats_server.url, "erase", "--unit", ev.WARD, "--dossier", d, "--reason", "asked"
        )
        assert code == 0, err
        assert "erased the personal data" in out

        # The key's bytes are overwritten in the block files, not just marked removed.
        assert files_containing(keys_dir, needle) == []
        keys = keys_of(client)
        assert await keys.state(ev.WARD, d) is KeyState.ERASED
        assert await keys.get(ev.WARD, d) is None
        with pytest.raises(NotShown):
            await disclose(client, keys, ev.WARD, d)
        # The other dossier keeps its key.
        assert (await disclose(client, keys, ev.WARD, "HS-E2")).name == OTHER["name"]

        # The log is untouched: its seals verify, every report is as it was.
        assert (await verify(client)).intact
        assert reports((await rebuild(client, registry)).book) == before
        # History says it was erased: when, by whom, why.
        lines = await dossier_history(client, ev.WARD, d)
        [erased] = [line for line in lines if line.what == "applicant erased"]
        assert erased.at is not None
        assert "reason: asked" in erased.detail
        assert "by " in erased.detail
        assert NAME not in render(lines)
        # Export carries no applicant, sealed or not.
        out_file = io.BytesIO()
        await export(client, selection(registry, "2021-04"), out_file)
        assert b"applicant" not in out_file.getvalue()

        # A resend after erasure is judged without the applicant: a duplicate whatever it holds.
        [again] = await submit(client, ev.WARD, [received])
        assert again["ok"]
        assert again["duplicate"]
        [guess] = await submit(client, ev.WARD, [{**received, "applicant": OTHER}])
        assert guess["ok"]
        assert guess["duplicate"]
        assert await keys.state(ev.WARD, d) is KeyState.ERASED  # never a new key
        # history --show-personal-data has nothing to show, in one plain line.
        code, _, err = await lienthong(
            nats_server.url, "history", "--unit", ev.WARD, "--dossier", d, "--show-personal-data"
        )
        assert code == 2
        assert "erased" in err
        assert "Traceback" not in err
    finally:
        await sealer.abort()
        await sealer_client.close()


async def test_erasing_twice_or_what_has_no_personal_data_is_answered_plainly(
    gateway: Gateway, client: Client, nats_server: NatsServer
) -> None:
    await accepted(client, [ev.received("HS-T1", applicant=APPLICANT), ev.received("HS-T2")])
    url = nats_server.url
    base = ["erase", "--unit", ev.WARD, "--reason", "purpose ended"]
    code, out, _ = await lienthong(url, *base, "--dossier", "HS-T1", "--dry-run")
    assert code == 0
    assert out.startswith("would erase")
    assert await keys_of(client).state(ev.WARD, "HS-T1") is KeyState.PRESENT
    code, _, err = await lienthong(url, *base, "--dossier", "HS-T2", "--dry-run")
    assert code == 2
    assert "no personal data" in err
    assert (await lienthong(url, *base, "--dossier", "HS-T1"))[0] == 0
    code, _, err = await lienthong(url, *base, "--dossier", "HS-T1")
    assert code == 2
    assert "erased already" in err
    assert "Traceback" not in err
    code, _, err = await lienthong(url, *base, "--dossier", "HS-T2")
    assert code == 2
    assert "no personal data" in err
    code, _, err = await lienthong(url, *base, "--dossier", "HS-NEVER")
    assert code == 2
    assert "no dossier" in err
    code, _, err = await lienthong(url, "erase", "--unit", ev.WARD, "--dossier", "HS-T1")
    assert code == 2
    assert "reason" in err
    # Each answered without changing anything: one erasure recorded, on HS-T1.
    lines = await dossier_history(client, ev.WARD, "HS-T1")
    assert len([line for line in lines if line.what == "applicant erased"]) == 1


async def test_a_copy_of_a_wrapped_key_is_useless_after_the_kek_is_rotated(
    gateway: Gateway, client: Client, nats_server: NatsServer, lienthong_home: Path
) -> None:
    await accepted(client, [ev.received("HS-K1", applicant=APPLICANT)])
    old = await key_record(client, "HS-K1")  # what a backup or a raft log would keep
    keks = KeyEncryptionKeys()
    assert keks.directory == lienthong_home / "kek"
    assert (keks.directory / f"{old.kek}.kek").stat().st_mode & 0o077 == 0
    code, out, err = await lienthong(nats_server.url, "rotate-kek")
    assert code == 0, err
    assert "1 dossier keys rewrapped" in out
    new = await key_record(client, "HS-K1")
    assert new.kek != old.kek
    from plumbing.dossier_keys import context

    with pytest.raises(KekError):
        keks.unwrap(old.kek, old.nonce, old.wrapped, context(ev.WARD, "HS-K1"))
    assert not (keks.directory / f"{old.kek}.kek").exists()
    # The dossier's own key still opens, under the new KEK; the old message is erased on disk.
    assert files_containing(jetstream_dir(nats_server), base64.b64encode(old.wrapped)) == []
    code, out, err = await lienthong(
        nats_server.url, "history", "--unit", ev.WARD, "--dossier", "HS-K1", "--show-personal-data"
    )
    assert code == 0, err
    assert NAME in out
    assert ID_NUMBER in out
    # The reading is recorded, and history shows to whom.
    lines = await dossier_history(client, ev.WARD, "HS-K1")
    [shown] = [line for line in lines if line.what == "applicant shown"]
    assert shown.at is not None
    assert "to " in shown.detail


async def test_a_restored_key_store_is_erased_again_by_replaying_the_erasures(
    gateway: Gateway, client: Client, nats_server: NatsServer
) -> None:
    await accepted(client, [ev.received("HS-B1", applicant=APPLICANT)])
    backup = await key_record(client, "HS-B1")  # the key store as a backup holds it
    code, _, err = await lienthong(
        nats_server.url, "erase", "--unit", ev.WARD, "--dossier", "HS-B1", "--reason", "asked"
    )
    assert code == 0, err
    # The key store restored from the backup: the key is back.
    js = client.jetstream()
    await js.delete_stream(KEYS_STREAM)
    await js.add_stream(keys_config(StreamSettings()))
    await js.publish(key_subject(ev.WARD, "HS-B1"), msgspec.json.encode(backup))
    keys = keys_of(client)
    assert await keys.get(ev.WARD, "HS-B1") is not None
    code, out, err = await lienthong(nats_server.url, "erase", "--replay")
    assert code == 0, err
    assert out.startswith("1 keys")
    assert await keys.state(ev.WARD, "HS-B1") is KeyState.ERASED
    assert await keys.get(ev.WARD, "HS-B1") is None


async def test_the_retention_sweep_erases_exactly_the_dossiers_closed_before_the_date(
    gateway: Gateway, client: Client, nats_server: NatsServer
) -> None:
    april, may = "2021-04-20T10:00:00+07:00", "2021-05-10T10:00:00+07:00"
    await accepted(
        client,
        [
            ev.received("HS-OLD", applicant=APPLICANT),
            ev.dossier_event("resolved", "HS-OLD", occurred_at=april),
            ev.received("HS-GONE", applicant=APPLICANT),
            ev.dossier_event("withdrawn", "HS-GONE", occurred_at=april),
            ev.received("HS-NEW", applicant=APPLICANT),
            ev.dossier_event("resolved", "HS-NEW", occurred_at=may),
            ev.received("HS-OPEN", applicant=APPLICANT),
        ],
    )
    await accepted(
        client,
        [
            ev.received("HS-OTHER", ev.OTHER_WARD, applicant=APPLICANT),
            ev.dossier_event("resolved", "HS-OTHER", ev.OTHER_WARD, occurred_at=april),
        ],
        unit=ev.OTHER_WARD,
    )
    url = nats_server.url
    code, out, _ = await lienthong(url, "erase", "--resolved-before", "2021-05-01", "--dry-run")
    assert (code, out.split()[0]) == (0, "3")
    code, out, _ = await lienthong(
        url, "erase", "--resolved-before", "2021-05-01", "--unit", ev.WARD, "--dry-run"
    )
    assert (code, out.split()[0]) == (0, "2")
    keys = keys_of(client)
    assert await keys.state(ev.WARD, "HS-OLD") is KeyState.PRESENT  # a dry run changed nothing
    code, out, err = await lienthong(url, "erase", "--resolved-before", "2021-05-01")
    assert code == 0, err
    assert "of 3 dossiers" in out
    states = {
        d: await keys.state(u, d)
        for u, d in [
            (ev.WARD, "HS-OLD"),
            (ev.WARD, "HS-GONE"),
            (ev.WARD, "HS-NEW"),
            (ev.WARD, "HS-OPEN"),
            (ev.OTHER_WARD, "HS-OTHER"),
        ]
    }
    assert states == {
        "HS-OLD": KeyState.ERASED,
        "HS-GONE": KeyState.ERASED,
        "HS-NEW": KeyState.PRESENT,
        "HS-OPEN": KeyState.PRESENT,
        "HS-OTHER": KeyState.ERASED,
    }
    code, _, err = await lienthong(url, "erase", "--resolved-before", "2021-13-01")
    assert code == 2
    assert "not a date" in err


# -- who sees it: the entitled province, before erasure and not after ----------------------------


def entitled_registry(tmp_path: Path) -> Registry:
    default = Registry.load()
    units = [
        msgspec.structs.replace(u, entitled_to_personal_data=True) if u.code == ev.PROVINCE else u
        for u in (default[c] for c in default.codes())
    ]
    path = tmp_path / "registry.json"
    path.write_bytes(msgspec.json.encode(RegistryFile(units=units)))
    return Registry.load(path)


async def test_an_entitled_province_gets_the_applicant_before_erasure_and_not_after(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    from consumers.interconnect.forwarder import Forwarder
    from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
    from tests.test_contract_5_outbound import FAST

    registry = entitled_registry(tmp_path)
    gateway = Gateway(NatsSettings(servers=(nats_server.url,)), StreamSettings(), registry)
    await gateway.start()
    nc = await nats.connect(nats_server.url)
    forwarder = Forwarder(nc, registry, FAST)
    await forwarder.start()
    province_nc = await nats.connect(nats_server.url)
    sim: ProvinceSimulator | None = None
    try:

        def transfer(d: str) -> list[dict[str, Any]]:
            return [
                ev.received(d, applicant=APPLICANT),
                ev.dossier_event("transferred", d, interconnect=True),
            ]

        # Before the province listens: both transfers wait in the outbox, sealed.
        await accepted(nc, transfer("HS-P1") + transfer("HS-P2"))
        await until(lambda: _outbox_has(nc, 2), what="both transfers in the outbox")
        for needle in secrets_of(APPLICANT):
            assert files_containing(jetstream_dir(nats_server), needle) == []
        # HS-P2's applicant is erased while its transfer waits.
        code, _, err = await lienthong(
            nats_server.url, "erase", "--unit", ev.WARD, "--dossier", "HS-P2", "--reason", "asked"
        )
        assert code == 0, err
        sim = ProvinceSimulator(
            province_nc, ProvinceSettings(results=False, request_timeout=2.0, retry_delay=0.05)
        )
        await sim.start()
        await until(lambda: sim is not None and sim.received_unique == 2, what="the transfers")
        bodies = {m.dossier_id: msgspec.json.decode(m.body) for m in sim.messages.values()}
        assert bodies["HS-P1"]["applicant"] == APPLICANT
        assert "applicant" not in bodies["HS-P2"]
        assert all(b"sealed_applicant" not in p for p in sim.payloads)
    finally:
        if sim is not None:
            await sim.stop()
        await province_nc.close()
        await forwarder.stop()
        await nc.close()
        await gateway.stop()


async def _outbox_has(client: Client, count: int) -> bool:
    info = await client.jetstream().stream_info(OUTBOX_STREAM)
    messages: int = info.state.messages
    return messages >= count
