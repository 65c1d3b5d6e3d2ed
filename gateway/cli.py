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

from nats.aio.client import Client

from consumers.delivery import ForwarderSettings
from consumers.projector import ProjectorSettings
from consumers.sealer import SealerSettings
from gateway import connection, failures, logs
from gateway.client import submit_all
from gateway.docs import asyncapi, json_schema, render
from gateway.node import Node
from gateway.progress import Progress
from gateway.registry import Registry
from gateway.runtime import EMBEDDED_PORT, nats_available
from gateway.settings import NatsSettings, StreamSettings, data_home
from schemas.replies import Accepted, Refused


def _nats(args: argparse.Namespace, url: str | None = None) -> NatsSettings:
    return NatsSettings.from_env(
        url or getattr(args, "nats_url", None),
        creds=getattr(args, "creds", None),
        tls_ca=getattr(args, "tls_ca", None),
    )


def _registry(args: argparse.Namespace) -> Registry:
    path: Path | None = getattr(args, "registry", None)
    return Registry.load(path)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def serve(settings: NatsSettings) -> None:
        roles = frozenset(r.strip() for r in args.roles.split(",") if r.strip())
        node = Node(
            settings,
            StreamSettings.from_env(),
            registry,
            roles=roles,
            forwarder=ForwarderSettings.from_env(),
            projector=ProjectorSettings.from_env(),
            sealer=SealerSettings.from_env(),
        )
        await node.start()
        print(f"lienthong serving on {', '.join(settings.servers)}", file=sys.stderr)
        await _until_signalled()
        await node.stop()

    settings, config_file = _nats(args), None
    if args.security is not None:  # the embedded server with security init's configuration
        config_file = args.security / "nats-server.conf"
        if not config_file.exists():
            print(f"{config_file} not found: run `lienthong security init {args.security}`")
            return 2
        ca = args.security / "tls" / "ca.pem"
        settings = NatsSettings.from_env(
            getattr(args, "nats_url", None),
            creds=args.creds or args.security / "creds" / "gateway.nk",
            tls_ca=args.tls_ca or (ca if ca.exists() else None),
        )
    with nats_available(
        settings, store_dir=data_home() / "nats", port=args.port, config_file=config_file
    ) as settings:
        asyncio.run(serve(settings))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    # Bytes, split on newlines only: a bad line is refused on its own, never the whole file,
    # and a JSON string may hold U+2028 and the like, where str.splitlines would cut it.
    data = Path(args.file).read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
    lines = [(n, line.strip()) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    settings = _command_nats(args)

    async def submit() -> int:
        # A request the party may not make is never answered: stop at the server's refusal
        # rather than wait out the time-out.
        denied = asyncio.Event()
        client = await connection.connect(settings, service=False, on_denied=lambda _: denied.set())
        progress = Progress(len(lines), f"submitting as {args.unit}")
        try:
            submitting = asyncio.create_task(  # noqa: RUF006 (awaited or cancelled below)
                submit_all(
                    client,
                    args.unit,
                    [line for _, line in lines],
                    batch_size=args.batch,
                    on_progress=progress.advance,
                )
            )
            refusal = asyncio.create_task(denied.wait())
            await asyncio.wait({submitting, refusal}, return_when=asyncio.FIRST_COMPLETED)
            refusal.cancel()
            if not submitting.done():
                submitting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await submitting
            replies = None if denied.is_set() else submitting.result()
        finally:
            progress.close(summary=not denied.is_set())
            await client.close()
        if replies is None:
            print(failures.permission_line(settings), file=sys.stderr)
            return 2
        accepted = [r for r in replies if isinstance(r, Accepted)]
        refused = [
            (n, r) for (n, _), r in zip(lines, replies, strict=True) if isinstance(r, Refused)
        ]
        codes = Counter(r.error.code.value for _, r in refused)
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
    from consumers import report_format, report_store
    from gateway.jetstream import JetStream

    settings = _command_nats(args)
    registry = _registry(args)

    async def fetch() -> int:
        client = await connection.connect(settings, service=False)
        try:
            found = await report_store.current_report(
                JetStream(client, settings.request_timeout), args.unit, args.period
            )
        finally:
            await client.close()
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
    from consumers.delivery import delivery_status, status_table
    from consumers.periods import now_vn
    from consumers.skips import skipped, skips_table
    from gateway.operations import describe, operator_actions

    settings = _command_nats(args)
    registry = _registry(args)

    async def status() -> int:
        client = await connection.connect(settings, service=False)
        try:
            rows = await delivery_status(client)
            skips = await skipped(client)
            actions = await operator_actions(client)
        finally:
            await client.close()
        sys.stdout.write(status_table(rows, registry, now_vn()))
        sys.stdout.write(skips_table(skips))
        if actions:
            print(f"Operator actions ({len(actions)} recorded), the latest:")
            for action in actions[-RECENT_ACTIONS:]:
                print(f"  {describe(action)}")
        return 0

    return asyncio.run(status())


RECENT_ACTIONS = 5
"""How many of the latest operator actions `lienthong status` shows."""


def cmd_resume_delivery(args: argparse.Namespace) -> int:
    from consumers.delivery import resume_parked
    from gateway.operations import OperationsLog, Target

    settings = _command_nats(args)
    command = " ".join(
        ["resume-delivery"]
        + ([f"--unit {args.unit}"] if args.unit else [])
        + ([f"--dossier {args.dossier}"] if args.dossier else [])
    )

    async def resume() -> int:
        client = await connection.connect(settings, service=False)
        try:
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
        finally:
            await client.close()
        for r in resumed:
            print(f"resumed {r.unit} {r.dossier_id!r} {r.kind.value} {r.message_id}")
        print(f"{len(resumed)} parked deliveries set back to pending")
        print(f"recorded as {action.who}'s action at {action.at.isoformat(timespec='seconds')}")
        return 0

    return asyncio.run(resume())


def cmd_province_sim(args: argparse.Namespace) -> int:
    from gateway.province_sim import ProvinceSettings, ProvinceSimulator

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
    from gateway.history import dossier_history, render

    settings = _command_nats(args)

    async def history() -> int:
        client = await connection.connect(settings, service=False)
        try:
            lines = await dossier_history(client, args.unit, args.dossier)
        finally:
            await client.close()
        if not lines:
            print(f"unit {args.unit} has no dossier {args.dossier!r} in the log", file=sys.stderr)
            return 1
        sys.stdout.write(render(lines))
        return 0

    return asyncio.run(history())


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Shadow replay: the selected reports rebuilt from the log alone (as they stood at a past
    moment, with --as-of), each held figure by figure against the revision published (current
    then). Exit 0 when all are equal, 1 when any differs, 2 on an error. Changes nothing and
    sends nothing: read-only rights are enough."""
    from datetime import UTC

    import nats.errors

    from consumers import rebuild_format
    from consumers.rebuild import BadSelection, compare, published, rebuild, selection
    from consumers.replay import last_seq
    from gateway.refusals import Unavailable

    settings = _command_nats(args)
    registry = _registry(args)
    try:
        chosen = selection(registry, args.unit, args.period)
        moment = _moment(args.as_of) if args.as_of else None
    except (BadSelection, ValueError) as e:
        print(e, file=sys.stderr)
        return 2

    async def run() -> int:
        client = await connection.connect(settings, service=False)
        try:
            progress = Progress(await last_seq(client), "replaying the log")
            try:
                rebuilt = await rebuild(
                    client,
                    registry,
                    stored_by=moment,
                    on_progress=progress.advance,
                )
            finally:
                progress.close()
            seen = await published(client, chosen, moment)
        finally:
            await client.close()
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

    try:
        return asyncio.run(run())
    except (nats.errors.Error, Unavailable, OSError) as e:
        if (denied := failures.permission_line(settings)) is not None:
            print(denied, file=sys.stderr)
            return 2
        where = ", ".join(settings.servers)
        print(
            f"cannot read the log or the reports (at {where}): {e or type(e).__name__}",
            file=sys.stderr,
        )
        return 2


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
    --witness the province's copy. Exit 0 intact, 1 altered. Changes nothing."""
    from nats.js.errors import NotFoundError

    from consumers.verify import first_disagreement, read_seals, verify
    from consumers.witness import WITNESS_STREAM
    from gateway.streams import SEALS_STREAM

    settings = _command_nats(args)

    async def run() -> int:
        client = await connection.connect(settings, service=False)
        witness: Client | None = None
        try:
            if args.witness:
                # The province's server is not the city's: none of the city's settings apply.
                province = (
                    NatsSettings(servers=(args.witness,))
                    if args.witness_creds is None
                    else NatsSettings.from_env(args.witness, creds=args.witness_creds)
                )
                witness = await connection.connect(province, service=False)
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
        finally:
            await client.close()
            if witness is not None:
                await witness.close()
        whose = f"the witness's seals ({args.witness}, {stream})" if witness else "its seals"
        print(
            f"{result.events} events in the log (last sequence {result.last_seq}), "
            f"{result.seals} seals checked: the log against {whose}"
        )
        for unreadable in result.unreadable:
            print(unreadable.line())
        for foreign in result.foreign:
            print(f"ALTERED: message {foreign.seq} on {foreign.subject}: {foreign.why}")
        if result.foreign_count > len(result.foreign):
            print(f"ALTERED: {result.foreign_count} messages not written by the gateway in all")
        for bad in result.bad_seals:
            print(f"ALTERED: message {bad.seq} of the seals is {bad.why}")
        if result.broken_seal_seq is not None:
            which = "the witness's seal" if witness else "the seal"
            print(
                f"ALTERED: the log no longer matches {which} at sequence "
                f"{result.broken_seal_seq}; it matches seals up to sequence "
                f"{result.verified_seq} only"
            )
        if disagree is not None:
            print(
                f"ALTERED: the city's own seals differ from the witness's from the seal at "
                f"sequence {disagree} on"
            )
        if result.gaps:
            print(f"ALTERED: events missing from the log at sequences {result.gaps[:10]}")
        intact = result.intact and disagree is None
        if intact:
            print(f"intact: the log matches every seal, up to sequence {result.verified_seq}")
        if result.unsealed:
            print(f"{result.unsealed} events after the last seal are not sealed yet")
        return 0 if intact else 1

    return asyncio.run(run())


def cmd_witness(args: argparse.Namespace) -> int:
    """On the province's server: create the stream that mirrors the city's seals. Idempotent."""
    from consumers.witness import WITNESS_STREAM, keep_witness

    settings = _command_nats(args)
    name = args.stream or WITNESS_STREAM

    async def run() -> int:
        client = await connection.connect(settings, service=False)
        try:
            created = await keep_witness(client, args.city_domain, name)
        finally:
            await client.close()
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
    import nats.errors

    from consumers.export import export, selection
    from consumers.replay import Unreadable

    settings = _command_nats(args)
    try:
        chosen = selection(_registry(args), args.period, args.unit)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    output: Path | None = args.output
    # Written beside the file and renamed when complete: an export file is never half an export.
    partial = output.with_name(output.name + ".partial") if output is not None else None

    skipped: list[Unreadable] = []

    def report(unreadable: Unreadable) -> None:  # said at once, and counted at the end
        skipped.append(unreadable)
        print(unreadable.line(), file=sys.stderr)

    async def run() -> int:
        client = await connection.connect(settings, service=False)
        try:
            if partial is None:
                return await export(client, chosen, sys.stdout.buffer, report)
            with partial.open("wb") as out:
                return await export(client, chosen, out, report)
        finally:
            await client.close()

    try:
        count = asyncio.run(run())
    except (nats.errors.Error, OSError) as e:
        if partial is not None:
            partial.unlink(missing_ok=True)
        writing = isinstance(e, OSError) and not isinstance(e, TimeoutError | nats.errors.Error)
        if not writing and (line := failures.permission_line(settings)) is not None:
            print(line, file=sys.stderr)
            return 2
        where = ", ".join(settings.servers)
        what = "cannot read the event log"
        if isinstance(e, OSError) and output is not None:
            what = f"cannot write {output}"
        print(f"{what} (at {where}): {str(e) or type(e).__name__}", file=sys.stderr)
        return 1
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
    from gateway.security import Layout, init

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
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    if args.log_level == "info":  # the demo's story is its printed output, not the batch logs
        logs.configure("warning")
    return demo.main(seed=args.seed, keep=args.keep, secure=args.secure)


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render(asyncapi() if args.asyncapi else json_schema()))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lienthong", description=__doc__)
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
        default="gateway,projector,forwarder,sealer",
        help="what this process runs, comma-separated: gateway, projector, forwarder, sealer "
        "(default: all; the projector, forwarder and sealer run in one process at a time, "
        "the others stand by)",
    )
    serve.set_defaults(run=cmd_serve)

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
    nats_url(resume)
    resume.set_defaults(run=cmd_resume_delivery)

    sim = sub.add_parser("province-sim", help="run a stand-in for the province's system")
    nats_url(sim)
    sim.add_argument("--province", default="52", help="province code (default: 52, Bình Định)")
    sim.add_argument("--drop-every", type=int, default=0, help="leave every Nth request unanswered")
    sim.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    sim.add_argument("--down", action="store_true", help="answer nothing")
    sim.add_argument("--no-results", action="store_true", help="send no receipts or results back")
    sim.add_argument(
        "--supplement-every",
        type=int,
        default=0,
        metavar="N",
        help="ask for a supplement, before the result, on about one dossier in N (default: none)",
    )
    sim.set_defaults(run=cmd_province_sim)

    submit = sub.add_parser("submit", help="submit a file of events (JSON lines) as a unit")
    submit.add_argument("file", type=Path)
    submit.add_argument("--unit", required=True)
    submit.add_argument("--batch", type=int, default=500)
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
        "--secure",
        action="store_true",
        help="with security on: security init's configuration, every unit, the province and "
        "the gateway on its own key",
    )
    demo.set_defaults(run=cmd_demo)

    history = sub.add_parser("history", help="one dossier's events and interconnection records")
    history.add_argument("--unit", required=True)
    history.add_argument("--dossier", required=True)
    nats_url(history)
    history.set_defaults(run=cmd_history)

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
    from gateway.parties import PartiesError
    from gateway.registry import RegistryError

    args = parser().parse_args(argv)
    logs.configure(args.log_level)
    try:
        code: int = args.run(args)
    except (PartiesError, RegistryError) as e:
        print(e, file=sys.stderr)
        return 2
    except Exception as e:
        line = failures.one_line(e, _settings_of(args))
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
