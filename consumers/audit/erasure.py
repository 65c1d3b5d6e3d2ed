"""Erasing an applicant's personal data (crypto-shredding), and recording who was shown it.

An erasure destroys the dossier's key (plumbing.dossier_keys): the sealed applicant stays in the
log, byte for byte, so the seals still verify and every report is unchanged, but it can no
longer be opened, nor its keyed hash recomputed. Each erasure is first recorded in
ONESTOP_ERASURES (when, by which party, why; deletes and purges denied): an erasure that could
not be recorded is not done, and after a store is restored from a backup, `lienthong erase
--replay` destroys again every key the records name. Each time personal data is shown to a
party (`lienthong history --show-personal-data`) a disclosure is recorded in
ONESTOP_DISCLOSURES before it is shown.
"""

from __future__ import annotations

import getpass
from datetime import datetime

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from consumers.audit.operations import connection_user
from plumbing.dossier_keys import DossierKeys, KeyState
from plumbing.errors import LogUnavailable
from plumbing.headers import DOSSIER_STATE
from plumbing.jetstream import JetStream
from plumbing.personal_data import Purpose, may_open, open_sealed
from plumbing.settings import StreamSettings
from plumbing.streams import (
    DISCLOSURES_PREFIX,
    DISCLOSURES_STREAM,
    ERASURES_PREFIX,
    ERASURES_STREAM,
    EVENTS_STREAM,
    KEYS_PREFIX,
    KEYS_STREAM,
    disclosures_config,
    erasures_config,
    keys_config,
)
from plumbing.subjects import decode_key, encode_key, event_subject
from schemas.codec import EVENT_DECODER
from schemas.events import Applicant, DossierReceived, Entity
from schemas.lifecycle import DossierState, DossierStatus
from schemas.periods import now_vn


class ErasureRecord(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    dossier_id: str
    erased_at: datetime
    by: str
    """The party: the NATS user of the connection if the server names one, else the OS user."""
    nats_user: str | None = None
    os_user: str
    reason: str


class Disclosure(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    dossier_id: str
    at: datetime
    to: str
    """The party shown the personal data (as `ErasureRecord.by`)."""
    nats_user: str | None = None
    os_user: str
    purpose: Purpose


class NotErasable(Exception):
    """Nothing to erase: said in one plain line (erased already, no personal data, no dossier)."""


class NotShown(Exception):
    """Personal data that cannot be shown (none, erased, or not this party's to see)."""


_ERASURE = msgspec.json.Decoder(ErasureRecord)
_DISCLOSURE = msgspec.json.Decoder(Disclosure)
_STATE = msgspec.json.Decoder(DossierState)


def erasure_subject(unit: str, dossier_id: str) -> str:
    return f"{ERASURES_PREFIX}.{unit}.{encode_key(dossier_id)}"


def disclosure_subject(unit: str, dossier_id: str) -> str:
    return f"{DISCLOSURES_PREFIX}.{unit}.{encode_key(dossier_id)}"


async def ensure_streams(client: Client, settings: StreamSettings) -> None:
    """The key store and the two records, made if this server has none yet (a command run
    before any gateway): an action is never taken that could not be recorded."""
    js = client.jetstream()
    for name, config in (
        (KEYS_STREAM, keys_config(settings)),
        (ERASURES_STREAM, erasures_config(settings)),
        (DISCLOSURES_STREAM, disclosures_config(settings)),
    ):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)


async def _party(client: Client) -> tuple[str, str | None, str]:
    user, _ = await connection_user(client)
    os_user = getpass.getuser()
    return user or os_user, user, os_user


async def _on_subject(js: JetStream, stream: str, subject: str) -> list[bytes]:
    found: list[bytes] = []
    seq = 1
    while (msg := await js.next_on_subject(stream, subject, seq)) is not None:
        found.append(msg.data)
        seq = msg.seq + 1
    return found


async def erasures_of(js: JetStream, unit: str, dossier_id: str) -> list[ErasureRecord]:
    raw = await _on_subject(js, ERASURES_STREAM, erasure_subject(unit, dossier_id))
    return [_ERASURE.decode(r) for r in raw]


async def disclosures_of(js: JetStream, unit: str, dossier_id: str) -> list[Disclosure]:
    raw = await _on_subject(js, DISCLOSURES_STREAM, disclosure_subject(unit, dossier_id))
    return [_DISCLOSURE.decode(r) for r in raw]


async def _received(js: JetStream, unit: str, dossier_id: str) -> DossierReceived | None:
    first = await js.next_on_subject(
        EVENTS_STREAM, event_subject(unit, Entity.DOSSIER, dossier_id), 1
    )
    if first is None:
        return None
    try:
        event = EVENT_DECODER.decode(first.data)
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, DossierReceived) else None


async def erase(
    client: Client,
    keys: DossierKeys,
    unit: str,
    dossier_id: str,
    reason: str,
    *,
    dry_run: bool = False,
) -> ErasureRecord:
    """Record the erasure, then destroy the dossier's key (with `dry_run`, only the record it
    would be, nothing written). Raises NotErasable, changing nothing, when there is nothing to
    erase."""
    if not reason.strip():
        raise NotErasable("an erasure needs a reason (--reason): it is kept with the record")
    state = await keys.state(unit, dossier_id)
    if state is KeyState.ERASED:
        earlier = await erasures_of(keys.js, unit, dossier_id)
        when = f" on {earlier[-1].erased_at.isoformat(timespec='seconds')} by {earlier[-1].by}"
        raise NotErasable(
            f"the personal data of unit {unit}'s dossier {dossier_id!r} was erased already"
            + (when if earlier else "")
        )
    if state is KeyState.NONE:
        if await _received(keys.js, unit, dossier_id) is None:
            raise NotErasable(f"unit {unit} has no dossier {dossier_id!r} in the log")
        raise NotErasable(
            f"unit {unit}'s dossier {dossier_id!r} has no personal data to erase "
            "(it was received without an applicant, or before applicants were sealed)"
        )
    by, nats_user, os_user = await _party(client)
    record = ErasureRecord(
        unit=unit,
        dossier_id=dossier_id,
        erased_at=now_vn(),
        by=by,
        nats_user=nats_user,
        os_user=os_user,
        reason=reason,
    )
    if dry_run:
        return record
    await keys.js.publish(erasure_subject(unit, dossier_id), msgspec.json.encode(record), {})
    await keys.erase(unit, dossier_id)
    return record


async def _erasure_subjects(client: Client) -> list[str]:
    js = client.jetstream()
    info = await js.stream_info(ERASURES_STREAM, subjects_filter=">")
    return sorted(info.state.subjects or {})


def _dossier_of(subject: str, prefix: str) -> tuple[str, str]:
    unit, key = subject.removeprefix(f"{prefix}.").split(".", 1)
    return unit, decode_key(key)


async def replay(client: Client, keys: DossierKeys) -> int:
    """After a restore: every recorded erasure's key destroyed again (a backup taken before
    the erasure brought it back). How many keys were destroyed again."""
    again = 0
    for subject in await _erasure_subjects(client):
        unit, dossier_id = _dossier_of(subject, ERASURES_PREFIX)
        if await keys.erase(unit, dossier_id):
            again += 1
    return again


async def closed_at(js: JetStream, unit: str, dossier_id: str) -> datetime | None:
    """When the dossier left `open` (resolved or withdrawn), or None while it is open."""
    subject = event_subject(unit, Entity.DOSSIER, dossier_id)
    seq = 1
    while (msg := await js.next_on_subject(EVENTS_STREAM, subject, seq)) is not None:
        seq = msg.seq + 1
        raw = msg.headers.get(DOSSIER_STATE)
        if not raw:
            continue
        if _STATE.decode(raw).status is not DossierStatus.OPEN:
            try:
                return EVENT_DECODER.decode(msg.data).occurred_at
            except msgspec.DecodeError:
                return None
    return None


async def closed_before(
    client: Client, keys: DossierKeys, before: datetime, unit: str | None
) -> list[tuple[str, str]]:
    """(unit, dossier_id) of every dossier with personal data still kept that was closed
    before `before` (of `unit`, or of every unit)."""
    due: list[tuple[str, str]] = []
    for subject in await keys.subjects():
        dossier_unit, dossier_id = _dossier_of(subject, KEYS_PREFIX)
        if unit is not None and dossier_unit != unit:
            continue
        if await keys.state(dossier_unit, dossier_id) is not KeyState.PRESENT:
            continue
        closed = await closed_at(keys.js, dossier_unit, dossier_id)
        if closed is not None and closed < before:
            due.append((dossier_unit, dossier_id))
    return due


async def disclose(client: Client, keys: DossierKeys, unit: str, dossier_id: str) -> Applicant:
    """The applicant of a dossier, for the party of this connection, recorded as a disclosure
    before it is opened. Raises NotShown."""
    to, nats_user, os_user = await _party(client)
    if not may_open(to, Purpose.DISCLOSURE):
        raise NotShown(f"{to} has no right to see personal data")
    received = await _received(keys.js, unit, dossier_id)
    if received is None:
        raise NotShown(f"unit {unit} has no dossier {dossier_id!r} in the log")
    if received.sealed_applicant is None:
        raise NotShown(f"unit {unit}'s dossier {dossier_id!r} has no sealed personal data")
    key = await keys.get(unit, dossier_id)
    if key is None:
        raise NotShown(f"the personal data of unit {unit}'s dossier {dossier_id!r} was erased")
    disclosure = Disclosure(
        unit=unit,
        dossier_id=dossier_id,
        at=now_vn(),
        to=to,
        nats_user=nats_user,
        os_user=os_user,
        purpose=Purpose.DISCLOSURE,
    )
    await keys.js.publish(disclosure_subject(unit, dossier_id), msgspec.json.encode(disclosure), {})
    return open_sealed(key, unit, dossier_id, received.sealed_applicant)


class PersonalDataEntry(msgspec.Struct, frozen=True):
    """An erasure or a disclosure of a dossier's personal data, for its history."""

    at: datetime
    what: str
    detail: str


async def personal_data_entries(
    client: Client, unit: str, dossier_id: str
) -> list[PersonalDataEntry]:
    js = JetStream(client, 5.0)
    entries: list[PersonalDataEntry] = []
    try:
        erased = await erasures_of(js, unit, dossier_id)
        shown = await disclosures_of(js, unit, dossier_id)
    except LogUnavailable:  # a server from before personal data was sealed: nothing to show
        return entries
    for e in erased:
        entries.append(
            PersonalDataEntry(e.erased_at, "applicant erased", f"by {e.by}, reason: {e.reason}")
        )
    for d in shown:
        entries.append(PersonalDataEntry(d.at, "applicant shown", f"to {d.to} ({d.purpose})"))
    return entries
