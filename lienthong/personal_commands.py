"""The personal-data commands: `erase` (one dossier, a retention sweep, or a replay after a
restore), `rotate-kek`, and `history --show-personal-data`. Every expected failure is a
CommandError or a connection's error, which `lienthong` says in one plain line, exit code 2."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from typing import Any

from nats.aio.client import Client

from consumers.audit.erasure import NotErasable, NotShown, closed_before, disclose, ensure_streams
from consumers.audit.erasure import erase as erase_dossier
from consumers.audit.erasure import replay as replay_erasures
from lienthong import environment
from lienthong.command_errors import CommandError
from lienthong.session import connected
from plumbing.dossier_keys import DossierKeys, KeyStoreError
from plumbing.jetstream import JetStream
from plumbing.key_encryption import KekError
from plumbing.settings import NatsSettings
from schemas.periods import VN

MINE = (NotErasable, NotShown, KekError, KeyStoreError)
"""This module's expected failures: said in one line, exit code 2 (lienthong.command_errors);
the connection's own (no server, no right, a time-out) are said there too."""


def _run(settings: NatsSettings, work: Callable[[Client, DossierKeys], Awaitable[int]]) -> int:
    async def run() -> int:
        async with connected(settings) as client:
            await ensure_streams(client, environment.stream_settings())
            return await work(client, DossierKeys(JetStream(client, settings.request_timeout)))

    try:
        return asyncio.run(run())
    except MINE as e:
        raise CommandError(str(e)) from e


def _day(text: str) -> datetime:
    """YYYY-MM-DD as the start of that day in Vietnam (UTC+07:00)."""
    try:
        return datetime.combine(date.fromisoformat(text), time(), VN)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def cmd_erase(args: argparse.Namespace, settings: NatsSettings) -> int:
    modes = sum(bool(m) for m in (args.dossier, args.resolved_before, args.replay))
    if modes != 1:
        raise CommandError("give one of --dossier (with --unit), --resolved-before or --replay")
    if args.dossier and not args.unit:
        raise CommandError("--dossier needs --unit")
    if args.dossier and not (args.reason or "").strip():
        raise CommandError("an erasure needs a reason (--reason TEXT)")

    async def one(client: Client, keys: DossierKeys) -> int:
        record = await erase_dossier(
            client, keys, args.unit, args.dossier, args.reason, dry_run=args.dry_run
        )
        if args.dry_run:
            print(f"would erase the personal data of unit {args.unit}'s dossier {args.dossier!r}")
            return 0
        print(
            f"erased the personal data of unit {record.unit}'s dossier {record.dossier_id!r} "
            f"at {record.erased_at.isoformat(timespec='seconds')}, by {record.by}"
        )
        return 0

    async def sweep(client: Client, keys: DossierKeys) -> int:
        before: datetime = args.resolved_before
        due = await closed_before(client, keys, before, args.unit)
        whose = f"unit {args.unit}" if args.unit else "every unit"
        day = before.date().isoformat()
        if args.dry_run:
            print(f"{len(due)} dossiers of {whose} closed before {day} would be erased")
            return 0
        reason = args.reason or f"retention: closed before {day}"
        for unit, dossier_id in due:
            await erase_dossier(client, keys, unit, dossier_id, reason)
        print(f"erased the personal data of {len(due)} dossiers of {whose} closed before {day}")
        return 0

    async def replay(client: Client, keys: DossierKeys) -> int:
        again = await replay_erasures(client, keys)
        print(f"{again} keys of recorded erasures were found again and destroyed")
        return 0

    if args.dossier:
        return _run(settings, one)
    return _run(settings, sweep if args.resolved_before else replay)


def cmd_rotate_kek(args: argparse.Namespace, settings: NatsSettings) -> int:
    del args

    async def rotate(client: Client, keys: DossierKeys) -> int:
        keks = keys.keks
        old = keks.ids()
        new = keks.new()
        count = await keys.rewrap_all(new)
        for kek_id in old:  # every dossier key is under the new one: the old can go
            keks.destroy(kek_id)
        print(
            f"{count} dossier keys rewrapped under key-encryption key {new}; "
            f"{len(old)} old key-encryption keys destroyed in {keks.directory}"
        )
        return 0

    return _run(settings, rotate)


def show_personal_data(args: argparse.Namespace, settings: NatsSettings) -> int:
    """The applicant of `--dossier`, for `history --show-personal-data`; recorded first."""

    async def show(client: Client, keys: DossierKeys) -> int:
        applicant = await disclose(client, keys, args.unit, args.dossier)
        print(f"applicant: name={applicant.name or '-'}, id_number={applicant.id_number or '-'}")
        print("(this disclosure is recorded: history shows who was shown it, and when)")
        return 0

    return _run(settings, show)


def add_commands(
    sub: argparse._SubParsersAction[Any],
    nats_url: Callable[[argparse.ArgumentParser], None],
    command_nats: Callable[[argparse.Namespace], NatsSettings],
) -> None:
    erase = sub.add_parser(
        "erase",
        help="erase applicants' personal data: destroy their dossiers' keys (crypto-shredding)",
        description="Destroy the key of one dossier (--unit, --dossier, --reason), of every "
        "dossier closed before a date (--resolved-before, a unit or all; --dry-run says how "
        "many), or again of every recorded erasure after a store was restored (--replay). "
        "The event log is untouched; each erasure is recorded (when, by whom, why).",
    )
    erase.add_argument("--unit")
    erase.add_argument("--dossier", help="a dossier id (as the unit submitted it)")
    erase.add_argument("--reason", help="why (kept with the erasure's record)")
    erase.add_argument(
        "--resolved-before", type=_day, metavar="YYYY-MM-DD", help="retention: closed before"
    )
    erase.add_argument("--replay", action="store_true", help="after a restore from a backup")
    erase.add_argument("--dry-run", action="store_true", help="say what would be erased")
    nats_url(erase)
    erase.set_defaults(run=lambda a: cmd_erase(a, command_nats(a)))

    rotate = sub.add_parser(
        "rotate-kek",
        help="rewrap every dossier key under a new key-encryption key and destroy the old one",
    )
    nats_url(rotate)
    rotate.set_defaults(run=lambda a: cmd_rotate_kek(a, command_nats(a)))


def add_history_option(history: argparse.ArgumentParser) -> None:
    history.add_argument(
        "--show-personal-data",
        action="store_true",
        help="also show the applicant (for a party with that right; recorded as a disclosure)",
    )
