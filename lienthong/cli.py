"""`lienthong`: the command line of the gateway (serve, submit, schema, report, demo, ...)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import msgspec
import nats.errors
from nats.aio.client import Client

from dashboard.settings import DashboardSettings
from gateway.refusals import Unavailable
from lienthong import environment, logs, personal_commands
from lienthong.client import submit_all
from lienthong.command_errors import USAGE_EXIT, CommandError, explain
from lienthong.docs import asyncapi, json_schema, render
from lienthong.node import ROLES, Node
from lienthong.progress import Progress
from lienthong.runtime import EMBEDDED_PORT, nats_available
from lienthong.session import connected, said_if_denied
from lienthong.site_commands import add_site_commands, add_site_options
from plumbing import connection, key_encryption
from plumbing.errors import LogUnavailable
from plumbing.settings import NatsSettings
from schemas.registry import Registry

if TYPE_CHECKING:
    from consumers.audit.verify import Verification
    from dashboard.server import Dashboard
from schemas.replies import Accepted, Refused


def _nats(args: argparse.Namespace, url: str | None = None) -> NatsSettings:
    """Flags first (--nats-url, --creds, --tls-ca), then `LIENTHONG_NATS_*`."""
    return environment.nats_settings(
        url or getattr(args, "nats_url", None),
        creds=getattr(args, "creds", None),
        tls_ca=getattr(args, "tls_ca", None),
    )


def _registry(args: argparse.Namespace) -> Registry:
    path: Path | None = getattr(args, "registry", None)
    return Registry.load(path)


def _known_unit(registry: Registry, unit: str) -> str:
    if unit not in registry:
        raise CommandError(
            f"unit {unit} is not in the registry: check the code, or give the gateway's own "
            "registry with --registry"
        )
    return unit


def _period(text: str) -> str:
    from schemas.periods import period_index

    try:
        period_index(text)
    except ValueError as e:
        raise CommandError(f"--period {text!r} is not a period: give YYYY-MM") from e
    return text


async def _reachable(settings: NatsSettings) -> None:
    """Fail at once, in one line, when a service's NATS is not there at start: a service
    connection would wait for it for ever, and a wrong URL would look like a hang."""
    async with connected(settings):
        pass


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    from lienthong.site_commands import Embedded, embedded_options, secure_server

    registry = _registry(args)
    # Every setting read, and judged, before anything starts.
    streams = environment.stream_settings()
    forwarder = environment.forwarder_settings()
    projector = environment.projector_settings()
    sealer = environment.sealer_settings()
    roles = frozenset(r.strip() for r in args.roles.split(",") if r.strip())
    if unknown := sorted(roles - set(SERVE_ROLES)) or (not roles and ["(none)"]):
        raise CommandError(
            f"--roles: no role {', '.join(unknown)}; give some of {', '.join(SERVE_ROLES)}"
        )
    sites = environment.catch_up_settings()
    try:
        secure = None if args.security is None else secure_server(args, registry)
        embedded = (
            embedded_options(args, registry, embedded=not _nats(args).servers)
            if secure is None
            else Embedded()  # the configuration file says it all
        )
    except ValueError as e:
        raise CommandError(str(e)) from e
    board_settings = dashboard_settings(args) if "dashboard" in roles else None
    board_creds = _dashboard_creds(args) if board_settings is not None else None

    async def serve(settings: NatsSettings) -> int:
        await _reachable(settings)
        node = Node(
            settings,
            streams,
            registry,
            roles=roles,
            forwarder=forwarder,
            projector=projector,
            sealer=sealer,
            sites=sites,
            site=args.site,
        )
        await node.start()
        board = None
        if board_settings is not None:
            try:
                board = await _start_dashboard(
                    _as_dashboard(settings, board_creds), registry, board_settings
                )
            except BaseException:
                await node.stop()
                raise
        print(f"lienthong serving on {', '.join(settings.servers)}", file=sys.stderr)
        await _until_signalled()
        if board is not None:
            await board.stop()
        await node.stop()
        return 0

    settings, config_file = _nats(args), None
    if secure is not None:  # the embedded server with security init's configuration
        config_file = secure.config_file
        # A site's own server listens on the ward's loopback without TLS (security.ward_config).
        ca = args.security / "tls" / "ca.pem"
        settings = environment.nats_settings(
            getattr(args, "nats_url", None),
            creds=secure.creds,
            tls_ca=args.tls_ca or (ca if ca.exists() and args.site is None else None),
        )
    store = environment.data_home() / "nats"
    with nats_available(
        settings,
        store_dir=store,
        port=args.port,
        name=embedded.name,
        domain=embedded.domain,
        extra_config=embedded.extra_config,
        config_file=config_file,
    ) as settings:
        return asyncio.run(serve(settings))


def _dashboard_creds(args: argparse.Namespace) -> Path | None:
    """The dashboard role's own read-only party: --dashboard-creds, else that of `--security
    DIR`; None: the dashboard shares the process's connection settings."""
    creds: Path | None = args.dashboard_creds
    if creds is None and args.security is not None:
        creds = args.security / "creds" / "dashboard.nk"
        if not creds.exists():
            raise CommandError(
                f"{creds} not found: run `lienthong security init {args.security}` again, "
                "which adds the read-only dashboard party and keeps every other key"
            )
    return creds


def _as_dashboard(settings: NatsSettings, creds: Path | None) -> NatsSettings:
    """The process's servers (the embedded one's too) and CA, with the dashboard's party."""
    if creds is None:
        return settings
    return environment.nats_settings(
        ",".join(settings.servers), creds=creds, tls_ca=settings.tls_ca
    )


SERVE_ROLES = (*ROLES, "dashboard")
"""What `serve --roles` takes: the node's parts, and the dashboard beside them."""


def dashboard_settings(args: argparse.Namespace) -> DashboardSettings:
    """`LIENTHONG_DASHBOARD_*`, then the command's own --port / --host."""
    settings = environment.dashboard_settings()
    if args.dashboard_port is not None:
        settings = msgspec.structs.replace(settings, port=args.dashboard_port)
    if args.dashboard_host is not None:
        settings = msgspec.structs.replace(settings, host=args.dashboard_host)
    return settings


async def _start_dashboard(
    settings: NatsSettings, registry: Registry, board_settings: DashboardSettings
) -> Dashboard:
    from dashboard.server import CannotListen, Dashboard

    board = Dashboard(settings, registry, board_settings)
    try:
        await board.start()
    except CannotListen as e:
        raise CommandError(f"cannot serve the dashboard: {e}") from e
    except (TimeoutError, nats.errors.Error, LogUnavailable, Unavailable) as e:
        if board.client is not None:  # what timed out may have been refused
            said_if_denied(board.client, settings, e)
        raise
    print(f"dashboard at {board.url}/", file=sys.stderr)
    return board


def cmd_dashboard(args: argparse.Namespace) -> int:
    """The read-only dashboard on its own, against a running deployment."""
    settings = _command_nats(args)
    registry = _registry(args)
    board_settings = dashboard_settings(args)

    async def run() -> int:
        await _reachable(settings)
        board = await _start_dashboard(settings, registry, board_settings)
        try:
            await _until_signalled()
        finally:
            await board.stop()
        return 0

    return asyncio.run(run())


def cmd_submit(args: argparse.Namespace) -> int:
    # Bytes, split on newlines only: a bad line is refused on its own, never the whole file,
    # and a JSON string may hold U+2028 and the like, where str.splitlines would cut it.
    if args.batch < 1:
        raise CommandError(f"--batch {args.batch}: give a number of events of 1 or more")
    data = Path(args.file).read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
    lines = [(n, line.strip()) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    settings = _command_nats(args)

    async def submit() -> int:
        # A request the party may not make is never answered: stop at the server's refusal
        # rather than wait out the time-out.
        refused_right = asyncio.Event()
        async with connected(settings, on_denied=lambda _: refused_right.set()) as client:
            progress = Progress(len(lines), f"submitting as {args.unit}")
            submitting = asyncio.ensure_future(  # noqa: RUF006 (awaited or cancelled below)
                submit_all(
                    client,
                    args.unit,
                    [line for _, line in lines],
                    batch_size=args.batch,
                    on_progress=progress.advance,
                )
            )
            refusal = asyncio.ensure_future(refused_right.wait())
            try:
                await asyncio.wait({submitting, refusal}, return_when=asyncio.FIRST_COMPLETED)
                if not submitting.done():
                    submitting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await submitting
                said_if_denied(client, settings)
                replies = submitting.result()
            except BaseException:
                progress.abandon()
                raise
            finally:
                refusal.cancel()
            progress.close()
        accepted = [r for r in replies if isinstance(r, Accepted)]
        refused = [
            (n, r) for (n, _), r in zip(lines, replies, strict=True) if isinstance(r, Refused)
        ]
        codes = Counter(r.error.code.value for _, r in refused)
        if refused and codes == {"unknown_unit": len(lines)}:
            raise CommandError(
                f"the gateway does not know unit {args.unit}: every event was refused "
                "unknown_unit (check --unit against the gateway's registry)"
            )
        print(
            f"{len(lines)} events: {sum(not r.duplicate for r in accepted)} accepted, "
            f"{sum(r.duplicate for r in accepted)} duplicates, {len(refused)} refused"
            + (f" ({', '.join(f'{c}: {k}' for c, k in sorted(codes.items()))})" if codes else "")
        )
        for n, r in refused:
            field = f" [{r.error.field}]" if r.error.field else ""
            print(f"  line {n} {r.event_id or '?'}: {r.error.code.value}{field}: {r.error.message}")
        return 1 if refused else 0

    return asyncio.run(submit())


def cmd_report(args: argparse.Namespace) -> int:
    from consumers.reports import report_format, report_store
    from plumbing.jetstream import JetStream

    settings = _command_nats(args)
    registry = _registry(args)
    _known_unit(registry, args.unit)
    _period(args.period)

    async def fetch() -> int:
        async with connected(settings) as client:
            found = await report_store.current_report(
                JetStream(client, settings.request_timeout), args.unit, args.period
            )
        if found is None:
            print(f"no report for unit {args.unit}, period {args.period}", file=sys.stderr)
            return 1
        report = found.report
        if args.format == "json":
            sys.stdout.write(report_format.as_json(report))
        elif args.format == "csv":
            sys.stdout.write(report_format.as_csv(report))
        else:
            name = registry[args.unit].name if args.unit in registry else ""
            sys.stdout.write(report_format.table(report, name))
        return 0

    return asyncio.run(fetch())


def _command_nats(args: argparse.Namespace) -> NatsSettings:
    """A one-shot command's settings: the URL given, else the embedded server's port. Called
    as a command starts: permission refusals heard before are not this command's."""
    connection.PERMISSION_DENIED.clear()
    return _settings_of(args)


def _settings_of(args: argparse.Namespace) -> NatsSettings:
    settings = _nats(args)
    if not settings.servers:
        settings = _nats(args, f"nats://127.0.0.1:{EMBEDDED_PORT}")
    return settings


def cmd_status(args: argparse.Namespace) -> int:
    from consumers.audit.operations import describe, operator_actions
    from consumers.audit.skips import skipped, skips_table
    from consumers.interconnect.status import delivery_status, status_table
    from consumers.sites.status import site_lags, sites_table
    from schemas.periods import now_vn

    settings = _command_nats(args)
    registry = _registry(args)

    async def status() -> int:
        async with connected(settings) as client:
            rows = await delivery_status(client)
            skips = await skipped(client)
            actions = await operator_actions(client)
            lags = await site_lags(client, registry)
        sys.stdout.write(status_table(rows, registry, now_vn()))
        sys.stdout.write(skips_table(skips))
        sys.stdout.write(sites_table(lags, registry, now_vn()))
        if actions:
            print(f"Operator actions ({len(actions)} recorded), the latest:")
            for action in actions[-RECENT_ACTIONS:]:
                print(f"  {describe(action)}")
        return 0

    return asyncio.run(status())


RECENT_ACTIONS = 5
"""How many of the latest operator actions `lienthong status` shows."""


def cmd_resume_delivery(args: argparse.Namespace) -> int:
    from consumers.audit.operations import OperationsLog, Target
    from consumers.interconnect.pending import resume_parked

    settings = _command_nats(args)
    if args.unit is not None:
        _known_unit(_registry(args), args.unit)
    command = " ".join(
        ["resume-delivery"]
        + ([f"--unit {args.unit}"] if args.unit else [])
        + ([f"--dossier {args.dossier}"] if args.dossier else [])
    )

    async def resume() -> int:
        async with connected(settings) as client:
            operations = OperationsLog(client)
            await operations.ready()  # nothing is changed that could not be recorded
            resumed = await resume_parked(client, args.unit, args.dossier)
            action = await operations.record(
                command,
                [
                    Target(unit=r.unit, dossier_id=r.dossier_id, message_id=r.message_id)
                    for r in resumed
                ],
            )
        for r in resumed:
            print(f"resumed {r.unit} {r.dossier_id!r} {r.kind.value} {r.message_id}")
        print(f"{len(resumed)} parked deliveries set back to pending")
        print(f"recorded as {action.who}'s action at {action.at.isoformat(timespec='seconds')}")
        return 0

    return asyncio.run(resume())


def cmd_province_sim(args: argparse.Namespace) -> int:
    from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator

    settings = _command_nats(args)
    province = ProvinceSettings(
        province=args.province,
        drop_every=args.drop_every,
        delay=args.delay,
        down=args.down,
        results=not args.no_results,
        supplement_every=args.supplement_every,
    )

    async def simulate() -> int:
        await _reachable(settings)
        client = await connection.connect(settings)
        sim = ProvinceSimulator(client, province)
        await sim.start()
        print(f"province {args.province} listening on {sim.inbox}", file=sys.stderr)
        try:
            await _until_signalled()
        finally:
            await sim.stop()
            await client.close()
        print(" ".join(f"{k}={v}" for k, v in sim.counters().items()))
        return 0

    return asyncio.run(simulate())


def cmd_history(args: argparse.Namespace) -> int:
    from consumers.audit.history import dossier_history, render

    settings = _command_nats(args)
    _known_unit(_registry(args), args.unit)

    async def history() -> int:
        async with connected(settings) as client:
            lines = await dossier_history(client, args.unit, args.dossier)
        if not lines:
            print(f"unit {args.unit} has no dossier {args.dossier!r} in the log", file=sys.stderr)
            return 1
        sys.stdout.write(render(lines))
        return 0

    code = asyncio.run(history())
    if code == 0 and args.show_personal_data:
        from lienthong.personal_commands import show_personal_data

        return show_personal_data(args, settings)
    return code


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Shadow replay: the selected reports rebuilt from the log alone (as they stood at a past
    moment, with --as-of), each held figure by figure against the revision published (current
    then). Exit 0 when all are equal, 1 when any differs, 2 on an error. Changes nothing and
    sends nothing: read-only rights are enough."""
    from datetime import UTC

    from consumers.audit import rebuild_format
    from consumers.audit.rebuild import BadSelection, compare, published, rebuild, selection
    from plumbing.replay import last_seq

    settings = _command_nats(args)
    registry = _registry(args)
    try:
        chosen = selection(registry, args.unit, args.period)
        moment = _moment(args.as_of) if args.as_of else None
    except (BadSelection, ValueError) as e:
        raise CommandError(str(e)) from e

    async def run() -> int:
        async with connected(settings) as client:
            progress = Progress(await last_seq(client), "replaying the log")
            try:
                rebuilt = await rebuild(
                    client,
                    registry,
                    stored_by=moment,
                    on_progress=progress.advance,
                )
            except BaseException:
                progress.abandon()
                raise
            progress.close()
            seen = await published(client, chosen, moment)
        comparisons = compare(rebuilt.book, seen, moment or datetime.now(UTC), chosen)
        if args.format == "json":
            sys.stdout.write(rebuild_format.as_json(comparisons, rebuilt.unreadable, as_of=moment))
        else:
            sys.stdout.write(
                rebuild_format.text(
                    comparisons,
                    registry,
                    rebuilt.unreadable,
                    as_of=moment,
                    show_all=args.unit is not None or args.period is not None,
                )
            )
        return 0 if all(c.equal for c in comparisons) else 1

    return asyncio.run(run())


def _moment(text: str) -> datetime:
    """An RFC 3339 moment with its offset; ValueError if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"--as-of {text!r} is not an RFC 3339 moment") from e
    if moment.utcoffset() is None:
        raise ValueError(f"--as-of {text!r} needs an offset (Z or +07:00)")
    return moment


def cmd_verify(args: argparse.Namespace) -> int:
    """Recompute the log's hash chain and hold it against every seal: the city's own, or with
    --witness the province's copy. Exit 0 intact, 1 altered. Changes nothing in the log or the
    seals; the verdict is recorded for the dashboard where the rights allow."""
    from nats.js.errors import NotFoundError

    from consumers.audit.verifications import VerificationRecord, record_verification
    from consumers.audit.verify import first_disagreement, read_seals, verify
    from consumers.audit.witness import WITNESS_STREAM
    from plumbing.streams import SEALS_STREAM
    from schemas.periods import now_vn

    settings = _command_nats(args)

    async def run() -> int:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(connected(settings))
            witness: Client | None = None
            if args.witness:
                # The province's server is not the city's: none of the city's settings apply.
                province = (
                    NatsSettings(servers=(args.witness,))
                    if args.witness_creds is None
                    else environment.nats_settings(args.witness, creds=args.witness_creds)
                )
                try:
                    witness = await stack.enter_async_context(connected(province))
                except (nats.errors.Error, OSError) as e:
                    raise CommandError(
                        f"cannot reach the witness at {args.witness}: check --witness"
                    ) from e
            stream = (args.witness_stream or WITNESS_STREAM) if witness else SEALS_STREAM
            result = await verify(client, witness, stream)
            disagree = None
            if witness is not None:
                try:
                    own, _ = await read_seals(client)
                except NotFoundError:  # the city's seals are gone altogether
                    own = []
                theirs, _ = await read_seals(witness, stream)
                disagree = first_disagreement(own, theirs)
            whose = f"the witness's seals ({args.witness}, {stream})" if witness else "its seals"
            intact, altered = _verdict(result, witness is not None, disagree, whose)
            not_recorded = await record_verification(
                client,
                VerificationRecord(
                    at=now_vn(),
                    intact=intact,
                    against=whose,
                    events=result.events,
                    last_seq=result.last_seq,
                    seals=result.seals,
                    verified_seq=result.verified_seq,
                    unsealed=result.unsealed,
                    altered=altered[:20],
                ),
                environment.stream_settings().replicas,
            )
        if not_recorded:
            print(
                f"(the result is not recorded for the dashboard: {not_recorded})", file=sys.stderr
            )
        return 0 if intact else 1

    return asyncio.run(run())


def _verdict(
    result: Verification, witness: bool, disagree: int | None, whose: str
) -> tuple[bool, list[str]]:
    """Print verify's findings: whether the log is intact, and the ALTERED lines."""
    altered: list[str] = []

    def say(line: str) -> None:
        print(line)
        if line.startswith("ALTERED"):
            altered.append(line)

    say(
        f"{result.events} events in the log (last sequence {result.last_seq}), "
        f"{result.seals} seals checked: the log against {whose}"
    )
    for unreadable in result.unreadable:
        say(unreadable.line())
    for foreign in result.foreign:
        say(f"ALTERED: message {foreign.seq} on {foreign.subject}: {foreign.why}")
    if result.foreign_count > len(result.foreign):
        say(f"ALTERED: {result.foreign_count} messages not written by the gateway in all")
    for bad in result.bad_seals:
        say(f"ALTERED: message {bad.seq} of the seals is {bad.why}")
    if result.broken_seal_seq is not None:
        which = "the witness's seal" if witness else "the seal"
        say(
            f"ALTERED: the log no longer matches {which} at sequence "
            f"{result.broken_seal_seq}; it matches seals up to sequence "
            f"{result.verified_seq} only"
        )
    if disagree is not None:
        say(
            f"ALTERED: the city's own seals differ from the witness's from the seal at "
            f"sequence {disagree} on"
        )
    if result.gaps:
        say(f"ALTERED: events missing from the log at sequences {result.gaps[:10]}")
    intact = result.intact and disagree is None
    if intact:
        say(f"intact: the log matches every seal, up to sequence {result.verified_seq}")
    if result.unsealed:
        say(f"{result.unsealed} events after the last seal are not sealed yet")
    return intact, altered


def cmd_witness(args: argparse.Namespace) -> int:
    """On the province's server: create the stream that mirrors the city's seals. Idempotent."""
    from consumers.audit.witness import WITNESS_STREAM, keep_witness

    settings = _command_nats(args)
    name = args.stream or WITNESS_STREAM

    async def run() -> int:
        async with connected(settings) as client:
            created = await keep_witness(client, args.city_domain, name)
        state = "created" if created else "already there"
        print(
            f"witness stream {name} {state} on {', '.join(settings.servers)}: a mirror of "
            f"ONESTOP_SEALS in JetStream domain {args.city_domain!r}"
        )
        return 0

    return asyncio.run(run())


def cmd_export(args: argparse.Namespace) -> int:
    """Export a period's events as JSON Lines, without personal data. Changes nothing and
    sends nothing."""
    from consumers.audit.export import export, selection
    from plumbing.replay import Unreadable

    settings = _command_nats(args)
    try:
        chosen = selection(_registry(args), args.period, args.unit)
    except ValueError as e:
        raise CommandError(str(e)) from e
    output: Path | None = args.output
    # Written beside the file and renamed when complete: an export file is never half an export.
    partial = output.with_name(output.name + ".partial") if output is not None else None

    skipped: list[Unreadable] = []

    def report(unreadable: Unreadable) -> None:  # said at once, and counted at the end
        skipped.append(unreadable)
        print(unreadable.line(), file=sys.stderr)

    async def run() -> int:
        async with connected(settings) as client:
            if partial is None:
                return await export(client, chosen, sys.stdout.buffer, report)
            with partial.open("wb") as out:
                return await export(client, chosen, out, report)

    try:
        count = asyncio.run(run())
    except BaseException:
        if partial is not None:  # an export file is whole or not there
            partial.unlink(missing_ok=True)
        raise
    if output is not None and partial is not None:
        partial.replace(output)
    sys.stdout.flush()
    whose = f"unit {args.unit} and every unit below it" if args.unit else "every unit"
    print(f"exported {count} events of {args.period} (UTC+07:00), {whose}", file=sys.stderr)
    if skipped:
        print(
            f"{len(skipped)} messages of the log are not events and were skipped", file=sys.stderr
        )
    return 0


def cmd_security_init(args: argparse.Namespace) -> int:
    from lienthong.security import Layout, init

    layout = Layout(
        hosts=tuple(args.host),
        port=args.port,
        leaf_port=args.leaf_port,
        cluster_port=args.cluster_port,
        tls=args.tls,
        store_dir=args.store_dir,
    )
    try:
        result = init(args.dir, _registry(args), layout, rotate=tuple(args.rotate))
    except OSError as e:
        print(f"cannot write {args.dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(
        f"{args.dir}: {len(result.added)} parties added, {len(result.kept)} kept, "
        f"{len(result.rotated)} rotated ({', '.join(result.rotated) or 'none'})"
    )
    print(f"run the server with: nats-server -c {args.dir / 'nats-server.conf'}")
    print(f"serve as the gateway with: lienthong serve --security {args.dir}")
    print(f"a ward site (marked in the registry): lienthong serve --security {args.dir} --site U")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lienthong.demo import month as demo

    if args.log_level == "info":  # the demo's story is its printed output, not the batch logs
        logs.configure("warning")
    return demo.main(seed=args.seed, keep=args.keep, dashboard=args.dashboard, secure=args.secure)


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render(asyncapi() if args.asyncapi else json_schema()))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, saying a bad argument in one line with where to look, as every other
    expected failure is said."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give 0 or more")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lienthong", description=__doc__)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    def nats_url(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--nats-url",
            help="NATS server URL(s), comma-separated (default: $LIENTHONG_NATS_URL, "
            "else an embedded nats-server)",
        )
        sp.add_argument(
            "--creds",
            type=Path,
            metavar="FILE",
            help="the party's credentials: its NKey seed file from `security init` (its inbox "
            "prefix is read from the parties.json beside it) or a .creds file "
            "(default: $LIENTHONG_NATS_CREDS)",
        )
        sp.add_argument(
            "--tls-ca",
            type=Path,
            metavar="FILE",
            help="CA certificate to verify the server with (default: $LIENTHONG_NATS_TLS_CA)",
        )

    def dashboard_options(sp: argparse.ArgumentParser, port: str = "--dashboard-port") -> None:
        sp.add_argument(
            port,
            dest="dashboard_port",
            type=int,
            help="the dashboard's HTTP port (default: $LIENTHONG_DASHBOARD_PORT, else 8080)",
        )
        sp.add_argument(
            "--dashboard-host" if port != "--port" else "--host",
            dest="dashboard_host",
            help="the address it listens on (default: $LIENTHONG_DASHBOARD_HOST, else 127.0.0.1)",
        )

    serve = sub.add_parser("serve", help="run the gateway")
    nats_url(serve)
    serve.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    serve.add_argument("--port", type=int, default=EMBEDDED_PORT, help="embedded server's port")
    serve.add_argument(
        "--security",
        type=Path,
        metavar="DIR",
        help="run the embedded server with `security init DIR`'s configuration (no anonymous "
        "access, every party's rights) and serve as its gateway party",
    )
    serve.add_argument(
        "--roles",
        default="gateway,projector,forwarder,sealer,sites",
        help="what this process runs, comma-separated: gateway, projector, forwarder, sealer, "
        "sites, dashboard (default: all but the dashboard; all but the gateway and the "
        "dashboard run in one process at a time, the others stand by; a ward site runs its "
        "gateway only)",
    )
    add_site_options(serve)
    dashboard_options(serve)
    serve.add_argument(
        "--dashboard-creds",
        type=Path,
        metavar="FILE",
        help="the dashboard role's credentials: its read-only party (default with --security: "
        "DIR/creds/dashboard.nk; else the process's own)",
    )
    serve.set_defaults(run=cmd_serve)
    add_site_commands(sub)

    board = sub.add_parser(
        "dashboard",
        help="serve the read-only web dashboard: reports, trends, interconnection, /metrics",
    )
    nats_url(board)
    board.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    dashboard_options(board, "--port")
    board.set_defaults(run=cmd_dashboard)

    status = sub.add_parser(
        "status", help="interconnection: what is waiting for delivery to the province, per unit"
    )
    status.add_argument("--registry", type=Path)
    nats_url(status)
    status.set_defaults(run=cmd_status)

    resume = sub.add_parser(
        "resume-delivery", help="retry parked deliveries to the province (all, a unit, a dossier)"
    )
    resume.add_argument("--unit")
    resume.add_argument("--dossier", help="a dossier id (as the unit submitted it)")
    resume.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    nats_url(resume)
    resume.set_defaults(run=cmd_resume_delivery)

    sim = sub.add_parser("province-sim", help="run a stand-in for the province's system")
    nats_url(sim)
    sim.add_argument("--province", default="52", help="province code (default: 52, Bình Định)")
    sim.add_argument(
        "--drop-every", type=_positive, default=0, help="leave every Nth request unanswered"
    )
    sim.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    sim.add_argument("--down", action="store_true", help="answer nothing")
    sim.add_argument("--no-results", action="store_true", help="send no receipts or results back")
    sim.add_argument(
        "--supplement-every",
        type=_positive,
        default=0,
        metavar="N",
        help="ask for a supplement, before the result, on about one dossier in N (default: none)",
    )
    sim.set_defaults(run=cmd_province_sim)

    submit = sub.add_parser("submit", help="submit a file of events (JSON lines) as a unit")
    submit.add_argument("file", type=Path)
    submit.add_argument("--unit", required=True)
    submit.add_argument("--batch", type=int, default=500, help="events per request (1 to 1,000)")
    nats_url(submit)
    submit.set_defaults(run=cmd_submit)

    report = sub.add_parser("report", help="print the current report of a unit and period")
    report.add_argument("--unit", required=True)
    report.add_argument("--period", required=True, help="YYYY-MM")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    report.add_argument("--registry", type=Path)
    nats_url(report)
    report.set_defaults(run=cmd_report)

    demo = sub.add_parser("demo", help="a month of Quy Nhơn's traffic, ending in the city's report")
    demo.add_argument("--seed", type=int, default=2021)
    demo.add_argument("--keep", type=Path, help="keep the demo's data in this folder")
    demo.add_argument(
        "--dashboard",
        type=int,
        nargs="?",
        const=8080,
        metavar="PORT",
        help="at the end, keep serving the dashboard on the demo's data (port 8080 by default) "
        "until Ctrl-C",
    )
    demo.add_argument(
        "--secure",
        action="store_true",
        help="with security on: security init's configuration, every unit, the province and "
        "the gateway on its own key",
    )
    demo.set_defaults(run=cmd_demo)

    history = sub.add_parser("history", help="one dossier's events and interconnection records")
    history.add_argument("--unit", required=True)
    history.add_argument("--dossier", required=True)
    history.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    nats_url(history)
    history.set_defaults(run=cmd_history)
    personal_commands.add_history_option(history)
    personal_commands.add_commands(sub, nats_url, _command_nats)

    rebuild = sub.add_parser(
        "rebuild",
        help="rebuild reports from the log alone and compare them, figure by figure, with what "
        "was published (exit 0 equal, 1 differ, 2 error)",
        description="Shadow replay: rebuild the selected reports from the event log alone, with "
        "the projector's own rules, print each in the official form with the figures that "
        "differ from the published revision, and exit 0 when all are equal, 1 when any differs, "
        "2 on an error. With --as-of, only events stored by then count and each report is held "
        "against the revision that was current then. Reads only (an ephemeral consumer): "
        "changes nothing and sends nothing.",
    )
    rebuild.add_argument(
        "--as-of",
        help="RFC 3339 moment: only events stored by then, against the revision current then",
    )
    rebuild.add_argument(
        "--unit", help="a unit code: its reports (a roll-up when units are below it)"
    )
    rebuild.add_argument("--period", help="YYYY-MM: only that period's reports")
    rebuild.add_argument("--format", choices=["text", "json"], default="text")
    rebuild.add_argument("--registry", type=Path)
    nats_url(rebuild)
    rebuild.set_defaults(run=cmd_rebuild)

    verify = sub.add_parser(
        "verify",
        help="check that the event log was not altered: recompute its hash chain against the "
        "seals in ONESTOP_SEALS, or the province's copy of them (exit 1 if not)",
    )
    verify.add_argument(
        "--witness",
        metavar="URL",
        help="the province's nats-server holding its copy of the seals (lienthong witness): "
        "the log is held against that copy instead of the city's own",
    )
    verify.add_argument(
        "--witness-stream", help="the copy's stream name (default: ONESTOP_SEALS_WITNESS)"
    )
    verify.add_argument(
        "--witness-creds",
        type=Path,
        metavar="FILE",
        help="credentials on the province's server (a key of its own security init)",
    )
    nats_url(verify)
    verify.set_defaults(run=cmd_verify)

    witness = sub.add_parser(
        "witness",
        help="on the province's server: keep a copy of the city's seals (a JetStream mirror "
        "across a leaf node; see deploy/witness)",
    )
    witness.add_argument(
        "--city-domain", required=True, help="the city's JetStream domain (its jetstream.domain)"
    )
    witness.add_argument("--stream", help="the copy's name (default: ONESTOP_SEALS_WITNESS)")
    nats_url(witness)
    witness.set_defaults(run=cmd_witness)

    export = sub.add_parser(
        "export",
        help="write a period's events as JSON Lines, without the applicant's personal data",
        description="Write the events of a period (by occurred_at, in UTC+07:00) of a unit and "
        "every unit below it (default: every unit) as JSON Lines, one "
        '{"seq", "stored_at", "event"} object per event in log order. Events are written '
        "without their applicant field: personal data never leaves the log. Reads the log only: "
        "changes nothing and sends nothing.",
    )
    export.add_argument("--period", required=True, help="YYYY-MM")
    export.add_argument("--unit", help="a unit code: it and every unit below it (default: all)")
    export.add_argument("--output", type=Path, help="write to this file (default: stdout)")
    export.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    nats_url(export)
    export.set_defaults(run=cmd_export)

    security = sub.add_parser("security", help="credentials and authorization for NATS")
    security_sub = security.add_subparsers(dest="security_command", required=True)
    init = security_sub.add_parser(
        "init",
        help="write the server's configuration, one NKey per party, parties.json (and TLS)",
        description="Write into DIR everything a deployment needs to run with least privilege: "
        "nats-server.conf (runnable as is), cluster node and ward leaf-node configurations, "
        "one credential file per party and parties.json. Run again with a larger registry to "
        "add parties; existing keys are kept.",
    )
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name clients reach the server by (certificate names; with two or more, the "
        "cluster's nodes); repeatable",
    )
    init.add_argument("--tls", action="store_true", help="a CA, a server certificate, TLS on")
    init.add_argument(
        "--rotate", action="append", default=[], metavar="PARTY", help="replace this party's key"
    )
    init.add_argument("--port", type=int, default=4222, help="client port (default: 4222)")
    init.add_argument("--leaf-port", type=int, default=7422, help="leaf-node port (7422)")
    init.add_argument("--cluster-port", type=int, default=6222, help="route port (6222)")
    init.add_argument(
        "--store-dir",
        type=Path,
        help="where the servers keep JetStream's files (default: DIR/data; e.g. "
        "/var/lib/lienthong/nats on the nodes)",
    )
    init.set_defaults(run=cmd_security_init)

    schema = sub.add_parser("schema", help="print the JSON Schema of the contract")
    schema.add_argument("--asyncapi", action="store_true", help="the AsyncAPI document instead")
    schema.set_defaults(run=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, extra = top.parse_known_args(argv)
    if extra:  # said by the command's own parser, which knows its --help
        commands = top._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        commands[args.command].error(  # type: ignore[index]
            f"unrecognized arguments: {' '.join(extra)}"
        )
    logs.configure(args.log_level)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """A parsed command, run; an expected failure said in one line, with exit code 2."""
    key_encryption.use_directory(environment.kek_dir())
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        line = explain(e, _servers(args))
        if line is None:  # not an expected condition: a bug, with its traceback
            raise
        print(f"lienthong {args.command}: {line}", file=sys.stderr)
        return USAGE_EXIT
    return code


def _servers(args: argparse.Namespace) -> tuple[str, ...]:
    try:
        return _command_nats(args).servers
    except Exception:  # a setting that does not parse is not what this message is about
        return ()


if __name__ == "__main__":
    sys.exit(main())
