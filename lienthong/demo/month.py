"""`lienthong demo`: March and April 2021 of Quy Nhơn, through the gateway, into the city's report.

Starts an embedded nats-server in a fresh folder, runs the gateway and the projector, plays the
generated traffic of the city's 22 units through `onestop.submit.<unit>` as their systems would
(duplicates and all), and prints the city's April 2021 report, which must equal the city's own
published figures, then the five wards or communes with the most overdue dossiers.

A simulated province (lienthong.demo.province_sim) takes the dossiers transferred with
interconnection and sends each one's result back in May 2021, after a supplement request on one in
SUPPLEMENT_EVERY, so April's figures are untouched by it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import msgspec
from nats.aio.client import Client

from consumers.reports import report_store
from consumers.reports.projector import ProjectorSettings
from consumers.reports.report_format import table, vn_number
from lienthong import environment
from lienthong.client import submit_all
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.demo.traffic import generate
from lienthong.embedded import NatsServer
from lienthong.node import Node
from lienthong.progress import Progress
from lienthong.security import Layout, init
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import OUTBOX_STREAM
from schemas.registry import Level, Registry
from schemas.replies import Accepted, Refused, Reply
from schemas.report import Figures

CITY = "540"
PERIOD = "2021-04"
INTERCONNECTION_WAIT = 60.0
SUPPLEMENT_EVERY = 4


def month_names(months: dict[str, int]) -> str:
    """`2021-05` -> `May 2021`, for the months results were dated in."""
    names = [msgspec.json.decode(f'"{m}-01"'.encode(), type=date) for m in sorted(months)]
    return ", ".join(d.strftime("%B %Y") for d in names) or "no month yet"


async def interconnection(
    node: Node, client: Client, sim: ProvinceSimulator, transfers: int
) -> str:
    """Wait (bounded) until the outbox is delivered and the province's results are stored."""
    settled = await sim.settled(transfers, timeout=INTERCONNECTION_WAIT)
    js = client.jetstream()
    for _ in range(int(INTERCONNECTION_WAIT * 10)):  # status messages, if any, delivered too
        if not (await js.stream_info(OUTBOX_STREAM)).state.messages:
            break
        await asyncio.sleep(0.1)
    assert node.projector is not None
    await node.projector.wait_until_current(timeout=120)
    line = (
        f"Interconnection: {sim.by_kind.get('transfer', 0)} transfers and "
        f"{sim.by_kind.get('status', 0)} status messages sent to the province, "
        f"{sim.results_acknowledged} results, {sim.supplements_acknowledged} supplement requests "
        f"and {sim.receipts_acknowledged} receipts came back "
        f"(stored in {month_names(sim.result_months)})"
    )
    return line if settled else line + " - still incomplete when the demo stopped waiting"


def differences(expected: Figures, actual: Figures) -> list[str]:
    """Figure-by-figure differences, as `path: expected != actual`."""
    out: list[str] = []

    def walk(path: str, a: object, b: object) -> None:
        if isinstance(a, msgspec.Struct) and isinstance(b, msgspec.Struct):
            for field in a.__struct_fields__:
                walk(f"{path}.{field}" if path else field, getattr(a, field), getattr(b, field))
        elif a != b:
            out.append(f"{path}: expected {a}, got {b}")

    walk("", expected, actual)
    return out


DASHBOARD_PORT = 8080


async def serve_dashboard(settings: NatsSettings, registry: Registry, port: int) -> None:
    """Keep the dashboard serving on the demo's data until Ctrl-C (or SIGTERM)."""
    import signal

    from dashboard.server import Dashboard
    from dashboard.settings import DashboardSettings

    board = Dashboard(settings, registry, DashboardSettings(port=port))
    await board.start()
    print(f"\nDashboard: open {board.url}/?unit={CITY}&period={PERIOD} (Ctrl-C stops the demo)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await board.stop()


class Parties:
    """Whose settings each part of the demo connects with: one for all, or with `--secure`
    each party's own key from `security init`."""

    def __init__(self, url: str, folder: Path | None) -> None:
        self.url = url
        self.folder = folder

    def __call__(self, party: str) -> NatsSettings:
        if self.folder is None:
            return NatsSettings(servers=(self.url,))
        return environment.nats_settings(self.url, creds=self.folder / "creds" / f"{party}.nk")


def _server(store: Path, registry: Registry, secure: bool) -> NatsServer:
    if not secure:
        return NatsServer(store, name="lienthong-demo")
    folder = store / "security"
    init(folder, registry, Layout(listen_host="127.0.0.1", port=-1, leaf_port=-1))
    print(f"security on: every party's key and rights in {folder} (parties.json)")
    return NatsServer(store, config_file=folder / "nats-server.conf")


async def run_demo(
    store: Path, seed: int, dashboard: int | None = None, secure: bool = False
) -> int:
    registry = Registry.load()
    traffic = generate(seed)
    with _server(store, registry, secure) as server:
        print(f"embedded nats-server with JetStream at {server.url}, data in {store}")
        party = Parties(server.url, store / "security" if secure else None)
        node = Node(
            party("gateway"), StreamSettings(), registry, ProjectorSettings(coalesce_seconds=0.5)
        )
        await node.start()
        client = await connection.connect(party("operator"), service=False)
        province_client = await connection.connect(party("province-52"), service=False)
        province = ProvinceSimulator(
            province_client, ProvinceSettings(province="52", supplement_every=SUPPLEMENT_EVERY)
        )
        await province.start()
        total = sum(len(events) for events in traffic.events_by_unit.values())
        progress = Progress(total, f"22 units submitting March-April 2021 ({total} events)")
        replies: list[Reply] = []

        async def unit_system(unit: str, events: list[bytes]) -> None:
            # Each desk's system on its own connection (and, secure, its own key).
            own = await connection.connect(party(f"unit-{unit}"), service=False)
            try:
                replies.extend(
                    await submit_all(
                        own, unit, events, batch_size=250, on_progress=progress.advance
                    )
                )
            finally:
                await own.close()

        await asyncio.gather(*(unit_system(u, e) for u, e in traffic.events_by_unit.items()))
        progress.close()
        assert node.projector is not None
        await node.projector.wait_until_current(timeout=120)

        accepted = sum(isinstance(r, Accepted) and not r.duplicate for r in replies)
        duplicates = sum(isinstance(r, Accepted) and r.duplicate for r in replies)
        refused = Counter(r.error.code.value for r in replies if isinstance(r, Refused))
        print(
            f"\n{accepted} events accepted, {duplicates} resent duplicates answered as such, "
            f"{sum(refused.values())} refused{f' {dict(refused)}' if refused else ''}"
        )
        print(await interconnection(node, client, province, traffic.interconnect_transfers) + "\n")
        await province.stop()
        await province_client.close()

        # The city reads its own report and its wards' (what its key allows, secure or not).
        city_client = await connection.connect(party(f"unit-{CITY}"), service=False)
        js = JetStream(city_client, 5.0)
        city = await report_store.current_report(js, CITY, PERIOD)
        if city is None:
            print(f"no report for {CITY} {PERIOD}", file=sys.stderr)
            return 1
        print(table(city.report, registry[CITY].name))
        diff = differences(traffic.expected_city_april, city.report.figures)
        if diff:
            print("DOES NOT match the city's published April 2021 report:", *diff, sep="\n  ")
        else:
            print("Matches the city's published April 2021 report figure for figure.")

        overdue: list[tuple[int, int, str]] = []
        for unit in registry.children(CITY):
            if registry[unit].level in (Level.WARD, Level.COMMUNE):
                found = await report_store.current_report(js, unit, PERIOD)
                if found is not None:
                    d = found.report.dossiers.in_progress
                    overdue.append((d.overdue, d.total, unit))
        overdue.sort(reverse=True)
        print("\nFive wards and communes with the most overdue dossiers, end of April 2021:")
        for n, (late, in_progress, unit) in enumerate(overdue[:5], 1):
            print(
                f"  {n}. {registry[unit].name:<28} {vn_number(late, 'n'):>4} overdue "
                f"of {vn_number(in_progress, 'n')} in progress"
            )
        await city_client.close()
        await client.close()
        if dashboard is not None:
            await serve_dashboard(party("dashboard"), registry, dashboard)
        else:
            print(
                "\nThe dashboard of these reports: `./dev demo --dashboard` keeps the demo "
                f"serving it at http://127.0.0.1:{DASHBOARD_PORT}/ (or `lienthong dashboard` "
                "against a running gateway)"
            )
        await node.stop()
        return 1 if diff else 0


def main(
    seed: int = 2021, keep: Path | None = None, dashboard: int | None = None, secure: bool = False
) -> int:
    if keep is not None:
        return asyncio.run(run_demo(keep, seed, dashboard, secure))
    with tempfile.TemporaryDirectory(prefix="lienthong-demo-") as tmp:
        return asyncio.run(run_demo(Path(tmp), seed, dashboard, secure))
