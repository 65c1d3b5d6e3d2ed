"""Dossier keys: one random 256-bit key per dossier, for its applicant's personal data.

A key per dossier, not per applicant: erasure is asked for one dossier (its purpose ended, or
its applicant asked), and the gateway knows dossiers, not people (an ID number may be missing or
mistyped, and linking one person's dossiers would itself be processing nobody asked for).

Stream ONESTOP_KEYS holds one message per dossier on `onestop.keys.<unit>.<dossier_key>`: the
key wrapped under the KEK (plumbing.key_encryption), created compare-and-set (a subject's first
write expects sequence 0), so two gateways racing on one dossier share one key. Erasure first
writes a tombstone on the subject (no key material: the intake then knows the dossier was
erased and never makes it a new key), then deletes every earlier message with JetStream's
message delete, which overwrites the bytes in the block file. No KV bucket: KV purges and
deletes only mark a message removed (and KV refuses the erasing delete).
"""

from __future__ import annotations

import enum
import secrets

import msgspec
import nats.errors
from nats.aio.client import Client

from plumbing.errors import LogUnavailable
from plumbing.jetstream import JS_API, BatchRefused, JetStream, Outgoing, WrongLastSequence
from plumbing.key_encryption import KEY_BYTES, KeyEncryptionKeys
from plumbing.streams import KEYS_PREFIX, KEYS_STREAM
from plumbing.subjects import decode_key, encode_key


class KeyStoreError(Exception):
    """The key store could not do what was asked (a race lost too often, a delete refused)."""


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A dossier key wrapped under KEK `kek`; or, with `erased`, the tombstone of one."""

    kek: str = ""
    nonce: bytes = b""
    wrapped: bytes = b""
    erased: bool = False


class KeyState(enum.StrEnum):
    NONE = "none"
    """The dossier never had personal data sealed."""
    PRESENT = "present"
    ERASED = "erased"


_RECORD = msgspec.json.Decoder(KeyRecord)
_ENCODE = msgspec.json.encode
TOMBSTONE = _ENCODE(KeyRecord(erased=True))
RACE_RETRIES = 5


class _DeleteReply(msgspec.Struct):
    success: bool = False


_DELETE = msgspec.json.Decoder(_DeleteReply)


def key_subject(unit: str, dossier_id: str) -> str:
    return f"{KEYS_PREFIX}.{unit}.{encode_key(dossier_id)}"


def context(unit: str, dossier_id: str) -> bytes:
    """Associated data binding a wrapped key or a sealed applicant to its dossier."""
    return f"{unit}\x00{dossier_id}".encode()


class DossierKeys:
    def __init__(self, js: JetStream, keks: KeyEncryptionKeys | None = None) -> None:
        self.js = js
        self.keks = keks or KeyEncryptionKeys()

    async def _last(self, unit: str, dossier_id: str) -> tuple[KeyRecord | None, int]:
        msg = await self.js.last_on_subject(KEYS_STREAM, key_subject(unit, dossier_id))
        if msg is None:
            return None, 0
        return _RECORD.decode(msg.data), msg.seq

    def _open(self, record: KeyRecord, unit: str, dossier_id: str) -> bytes:
        return self.keks.unwrap(record.kek, record.nonce, record.wrapped, context(unit, dossier_id))

    async def state(self, unit: str, dossier_id: str) -> KeyState:
        record, _ = await self._last(unit, dossier_id)
        if record is None:
            return KeyState.NONE
        return KeyState.ERASED if record.erased else KeyState.PRESENT

    async def get(self, unit: str, dossier_id: str) -> bytes | None:
        """The dossier's key, or None if it has none (never had one, or erased)."""
        record, _ = await self._last(unit, dossier_id)
        if record is None or record.erased:
            return None
        return self._open(record, unit, dossier_id)

    async def get_or_create(self, unit: str, dossier_id: str) -> bytes | None:
        """The dossier's key, made now if it has none; None if it was erased (never remade)."""
        subject = key_subject(unit, dossier_id)
        for _ in range(RACE_RETRIES):
            # Written first, read only if the subject has a message: most dossiers are new,
            # and so cost one round trip.
            key = secrets.token_bytes(KEY_BYTES)
            kek, nonce, wrapped = self.keks.wrap(key, context(unit, dossier_id))
            data = _ENCODE(KeyRecord(kek=kek, nonce=nonce, wrapped=wrapped))
            try:
                await self.js.publish(subject, data, {}, expected_last_subject_seq=0)
            except WrongLastSequence:
                pass  # it has a key (or a tombstone) already: use that
            else:
                return key
            record, _ = await self._last(unit, dossier_id)
            if record is not None:
                return None if record.erased else self._open(record, unit, dossier_id)
        raise KeyStoreError("the dossier's key is being written by many writers at once")

    async def create_all(self, dossiers: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """New keys for (unit, dossier_id)s none of which has one, in one atomic write (a large
        batch of new dossiers: one round trip, not one each). Empty when it did not go through
        whole (one had a key, or no answer): then each is asked for on its own."""
        made: dict[tuple[str, str], bytes] = {}
        outgoing: list[Outgoing] = []
        for unit, dossier_id in dict.fromkeys(dossiers):
            key = secrets.token_bytes(KEY_BYTES)
            kek, nonce, wrapped = self.keks.wrap(key, context(unit, dossier_id))
            data = _ENCODE(KeyRecord(kek=kek, nonce=nonce, wrapped=wrapped))
            outgoing.append(Outgoing(key_subject(unit, dossier_id), data, {}, 0))
            made[(unit, dossier_id)] = key
        try:
            await self.js.publish_batch(outgoing)
        except (BatchRefused, LogUnavailable):
            return {}  # none written, or not known: get_or_create reads before it writes
        return made

    async def erase(self, unit: str, dossier_id: str) -> bool:
        """Destroy the dossier's key: a tombstone, then every earlier message deleted with
        erasure. False if it had no key to destroy (never had one, or erased already).
        Also what a replay after a restore does, so a restored copy's key is destroyed too."""
        subject = key_subject(unit, dossier_id)
        record, last_seq = await self._last(unit, dossier_id)
        if record is None or record.erased:
            if record is not None:
                await self._shred_before(subject, last_seq)  # a restored store's leftovers
            return False
        ack = await self.js.publish(subject, TOMBSTONE, {}, expected_last_subject_seq=last_seq)
        await self._shred_before(subject, ack.seq)
        return True

    async def _shred_before(self, subject: str, tombstone_seq: int) -> None:
        seq = 1
        while (msg := await self.js.next_on_subject(KEYS_STREAM, subject, seq)) is not None:
            if msg.seq >= tombstone_seq:
                return
            await self.delete(msg.seq)
            seq = msg.seq + 1

    async def delete(self, seq: int) -> None:
        """JetStream's message delete, erasing (its default: `no_erase` unset), so the bytes
        are overwritten in the block file, not only marked removed."""
        await _erasing_delete(self.js.client, seq, self.js.timeout)

    async def subjects(self) -> list[str]:
        """Every dossier key subject (tombstones included)."""
        info = await self.js.client.jetstream().stream_info(KEYS_STREAM, subjects_filter=">")
        return sorted(info.state.subjects or {})

    async def rewrap_all(self, new_kek: str) -> int:
        """Rewrap every dossier key under KEK `new_kek` (a rotation): a new message per dossier,
        expecting the old one, then the old one erased. Passes are repeated until one finds
        nothing left under another KEK (a gateway may have made a key under the old one while
        the pass ran), so the old KEK can then go. How many keys were rewrapped."""
        total = 0
        while (count := await self._rewrap_pass(new_kek)) > 0:
            total += count
        return total

    async def _rewrap_pass(self, new_kek: str) -> int:
        count = 0
        for subject in await self.subjects():
            msg = await self.js.last_on_subject(KEYS_STREAM, subject)
            if msg is None:
                continue
            record = _RECORD.decode(msg.data)
            if record.erased or record.kek == new_kek:
                continue
            unit, key = subject.removeprefix(f"{KEYS_PREFIX}.").split(".", 1)
            dossier_id = decode_key(key)
            ctx = context(unit, dossier_id)
            plain = self.keks.unwrap(record.kek, record.nonce, record.wrapped, ctx)
            kek, nonce, wrapped = self.keks.wrap(plain, ctx)
            if kek != new_kek:
                raise KeyStoreError(f"the KEK changed to {kek} while rotating to {new_kek}")
            try:
                ack = await self.js.publish(
                    subject,
                    _ENCODE(KeyRecord(kek=kek, nonce=nonce, wrapped=wrapped)),
                    {},
                    expected_last_subject_seq=msg.seq,
                )
            except WrongLastSequence:
                count += 1  # erased meanwhile: the next pass looks again
                continue
            await self._shred_before(subject, ack.seq)
            count += 1
        return count


async def _erasing_delete(client: Client, seq: int, timeout: float) -> None:
    try:
        reply = await client.request(
            f"{JS_API}.STREAM.MSG.DELETE.{KEYS_STREAM}", _ENCODE({"seq": seq}), timeout=timeout
        )
    except nats.errors.Error as e:
        raise KeyStoreError(f"the key store did not answer a delete ({type(e).__name__})") from e
    if not _DELETE.decode(reply.data).success:
        raise KeyStoreError(f"the key store refused to delete a key: {reply.data[:200]!r}")
