"""Talking to the gateway as a unit's system does, and reading the log as an auditor does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from playwright.async_api import Browser, async_playwright

from consumers.reports.projector import ProjectorSettings
from dashboard.server import Dashboard
from dashboard.settings import DashboardSettings
from gateway.event_index import EventIndex
from gateway.event_log import EventLog
from gateway.intake import Intake
from gateway.service import Gateway
from gateway.submit import SubmitService
from lienthong import environment
from lienthong.embedded import NatsServer
from lienthong.security import Layout, init
from plumbing import connection
from plumbing.errors import LogUnavailable
from plumbing.headers import msg_id
from plumbing.jetstream import JetStream, PubAck
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM
from plumbing.subjects import submit_subject
from schemas.registry import Registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


SHORT_WINDOW = 0.5
"""A duplicate window JetStream forgets soon: for what must hold also after it."""


FAST_PROJECTOR = ProjectorSettings(coalesce_seconds=0.1, checkpoint_seconds=0.5)


class GatewayStarter:
    """Starts Gateways with chosen settings on the test's server; stops those left at teardown."""

    def __init__(self, nats_settings: NatsSettings, registry: Registry) -> None:
        self.nats_settings = nats_settings
        self.registry = registry
        self.running: list[Gateway] = []

    async def start(
        self,
        *,
        nats: NatsSettings | None = None,
        streams: StreamSettings | None = None,
        registry: Registry | None = None,
    ) -> Gateway:
        g = Gateway(
            nats or self.nats_settings, streams or StreamSettings(), registry or self.registry
        )
        await g.start()
        self.running.append(g)
        return g

    async def stop(self, g: Gateway) -> None:
        self.running.remove(g)
        await g.stop()


NO_RESPONDERS_TRIES = 10


async def submit(client: Client, unit: str, payload: Any, timeout: float = 10.0) -> Any:
    """Submit an event (dict), a batch (list) or raw bytes; the decoded JSON reply."""
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    # A connection opened before the gateway subscribed has been seen, rarely, to be told "no
    # responders" once after the SUBs were flushed (see `connected`). Nothing is stored on such
    # an answer, so asking again is what a desk's system does; a gateway that is not there still
    # fails the test after the last try.
    for attempt in range(NO_RESPONDERS_TRIES):
        try:
            reply = await client.request(submit_subject(unit), data, timeout=timeout)
        except nats.errors.NoRespondersError:
            if attempt == NO_RESPONDERS_TRIES - 1:
                raise
            await asyncio.sleep(0.1)
        else:
            return msgspec.json.decode(reply.data)
    raise AssertionError("unreachable")


async def log_size(client: Client) -> int:
    info = await client.jetstream().stream_info(EVENTS_STREAM)
    messages: int = info.state.messages
    return messages


async def log_subjects(client: Client) -> dict[str, int]:
    info = await client.jetstream().stream_info(EVENTS_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})


def error_of(reply: Any) -> tuple[str, str | None]:
    """(code, field) of a refusal; fails the test with the reply if it was accepted."""
    assert isinstance(reply, dict), reply
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error["code"], error.get("field")


async def last_on_subject(client: Client, subject: str, stream: str = EVENTS_STREAM) -> Any:
    """The decoded last message on a subject, by one direct get as any NATS tool does; or None."""
    msg = await client.request(f"$JS.API.DIRECT.GET.{stream}.{subject}", b"", timeout=5.0)
    if msg.headers and msg.headers.get("Status") == "404":
        return None
    assert not (msg.headers or {}).get("Status"), msg.headers
    return msgspec.json.decode(msg.data)


async def submit_service(
    url: str, registry: Registry, js_type: type[JetStream] = JetStream, timeout: float = 2.0
) -> tuple[SubmitService, Client]:
    """A gateway's submit path on its own connection, without the subscriber (close the client).

    Calling `.submit(unit, payload)` on two of these at once makes two instances judge against
    the same state, which requests through a queue group cannot force.
    """
    nc = await nats.connect(url)
    js = js_type(nc, timeout)
    return SubmitService(Intake(EventLog(js), EventIndex(js)), registry), nc


async def outlive_the_window(
    client: Client, unit: str, event_id: str, subject: str, window: float = SHORT_WINDOW
) -> None:
    """Until JetStream itself has forgotten the event's msg id (bounded; no fixed sleep)."""
    deadline = time.monotonic() + 10 * window + 5
    while await jetstream_remembers(client, unit, event_id, subject):
        assert time.monotonic() < deadline, "JetStream never forgot the msg id"
        await asyncio.sleep(window / 4)


async def jetstream_remembers(client: Client, unit: str, event_id: str, subject: str) -> bool:
    """Whether JetStream's own duplicate window still holds the event's Nats-Msg-Id.

    The probe (on `subject`, any subject of the event log) expects a last msg id that no stream
    ever has, so it is never stored: JetStream checks duplicates first and answers 'duplicate'
    while it remembers the id, and 'wrong last msg ID' once it has forgotten it.
    """
    msg = await client.request(
        subject,
        b"probe",
        timeout=5.0,
        headers={
            "Nats-Msg-Id": msg_id(unit, event_id),
            "Nats-Expected-Last-Msg-Id": "lienthong-tests: never a message id",
        },
    )
    ack = msgspec.json.decode(msg.data)
    if ack.get("duplicate"):
        return True
    assert ack.get("error", {}).get("err_code") == 10070, ack
    return False


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    """A unit's connection, opened after the gateway it talks to has started.

    A connection opened before a subscriber appeared has been seen, rarely, to get a 'no
    responders' answer to its first request even after the subscriber's connection had flushed
    its SUB (nats-py 2.16 / nats-server 2.15); a connection opened afterwards never has.
    """
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()


async def until(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0, what: str = ""
) -> None:
    """Poll `check` (sync or async) until it holds; fail saying `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def three_node_cluster(store: Path) -> AsyncIterator[list[NatsServer]]:
    """Three clustered nats-servers on free ports, once a meta leader can place a stream with
    three replicas; all stopped (also those a test killed) on the way out."""
    routes = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            store / f"n{i}",
            port=free_port(),
            name=f"n{i}",
            cluster=(routes[i], [p for j, p in enumerate(routes) if j != i]),
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with connected(servers[0].url) as admin:
            js = admin.jetstream(timeout=1.0)
            deadline = time.monotonic() + 30
            while True:
                try:
                    await js.add_stream(
                        name="PLACEMENT_PROBE", subjects=["probe.>"], num_replicas=3
                    )
                    await js.delete_stream("PLACEMENT_PROBE")
                    break
                except nats.errors.Error:  # no meta leader yet, or not all peers known
                    assert time.monotonic() < deadline, "no JetStream meta leader with 3 peers"
                    await asyncio.sleep(0.2)
        yield servers
    finally:
        for server in servers:
            server.stop()


Hook = Callable[[str], Awaitable[None]]


def faulty_jetstream(before: Hook | None = None, after: Hook | None = None) -> type[JetStream]:
    """A JetStream whose writes await `before(subject)` ahead of writing and `after(subject)`
    once stored: a hook that raises or waits stands for a failure or a race at that point."""

    class Faulty(JetStream):
        async def publish(
            self,
            subject: str,
            payload: bytes,
            headers: dict[str, str],
            *,
            expected_last_subject_seq: int | None = None,
        ) -> PubAck:
            if before is not None:
                await before(subject)
            ack = await super().publish(
                subject, payload, headers, expected_last_subject_seq=expected_last_subject_seq
            )
            if after is not None:
                await after(subject)
            return ack

    return Faulty


def failing_event_writes(error: Exception) -> Hook:
    """A hook raising `error` on writes to the event log (not to the event-id index)."""

    async def fail(subject: str) -> None:
        if subject.startswith("onestop.events."):
            raise error

    return fail


WRITE_LOST = faulty_jetstream(
    before=failing_event_writes(
        LogUnavailable("the event log is not reachable (no JetStream responder)")
    )
)
"""Claims the event_id, then fails before the event reaches the log (a crash in between)."""
ACK_LOST = faulty_jetstream(
    after=failing_event_writes(LogUnavailable("the event log did not confirm the write in time"))
)
"""Stores events but loses JetStream's answer, as a timed-out write that did land."""


async def lienthong(url: str, *args: str) -> tuple[int, str, str]:
    """Run a `lienthong` command as an operator would, against `url`, without blocking the
    test's event loop (an in-process gateway goes on serving): exit code, stdout, stderr.
    It inherits the test's LIENTHONG_HOME, so it finds the same key-encryption key."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lienthong.cli",
        *args,
        "--nats-url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose bytes hold `needle` (a scan of a store on disk)."""
    return [p for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


async def answering(url: str, unit: str) -> bool:
    """Whether a gateway answers `unit`'s submissions at `url` (an empty batch: nothing stored),
    e.g. once a gateway has reconnected to a restarted server."""
    try:
        async with connected(url) as nc:
            replies: list[Any] = await submit(nc, unit, [], timeout=1.0)
            return replies == []
    except (nats.errors.Error, OSError):
        return False


class SecureDeployment:
    """`lienthong security init`'s folder and a nats-server running its nats-server.conf."""

    def __init__(self, folder: Path, server: NatsServer, tls: bool) -> None:
        self.folder = folder
        self.server = server
        self.tls = tls

    def creds(self, party: str) -> Path:
        return self.folder / "creds" / f"{party}.nk"

    def settings(self, party: str, tls_ca: Path | None = None) -> NatsSettings:
        """`party`'s settings, as `--creds` alone gives them (its inbox prefix found)."""
        ca = tls_ca or (self.folder / "tls" / "ca.pem" if self.tls else None)
        return environment.nats_settings(self.server.url, creds=self.creds(party), tls_ca=ca)

    @contextlib.asynccontextmanager
    async def party(self, name: str) -> AsyncIterator[PartyConnection]:
        refused: list[str] = []
        client = await connection.connect(
            self.settings(name), service=False, on_denied=refused.append
        )
        try:
            yield PartyConnection(client, refused)
        finally:
            await client.close()


class PartyConnection:
    """One party's connection, with every permission violation the server reported to it.

    The server reports a refused publish or subscribe asynchronously (an -ERR that may come
    after the PONG of a flush), so a refusal is awaited until it arrives; what a party may do
    is shown by doing it (a request answered, a message received), never by a refusal's absence.
    """

    def __init__(self, client: Client, refused: list[str]) -> None:
        self.client = client
        self.refused = refused

    async def _refusal(self, verb: str, subject: str) -> bool:
        wanted = f'permissions violation for {verb} to "{subject.lower()}"'
        try:
            await until(lambda: wanted in self.refused, timeout=REFUSAL_WAIT, what=wanted)
        except AssertionError:
            return False
        return True

    async def refused_publish(self, subject: str, payload: bytes = b"{}") -> bool:
        """Whether the server refuses this party a publish on `subject`."""
        await self.client.publish(subject, payload, reply=self.client.new_inbox())
        await self.client.flush()
        return await self._refusal("publish", subject)

    async def refused_subscribe(self, subject: str) -> bool:
        sub = await self.client.subscribe(subject)
        await self.client.flush()
        refused = await self._refusal("subscription", subject)
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        return refused


REFUSAL_WAIT = 10.0
"""How long a refusal the server owes may take to arrive before the test fails."""


@contextlib.contextmanager
def secure_deployment(
    folder: Path, registry: Registry | None = None, *, tls: bool = False
) -> Iterator[SecureDeployment]:
    """A deployment as `security init` writes it, its server started from the written config."""
    init(
        folder,
        registry or Registry.load(),
        Layout(port=free_port(), leaf_port=free_port(), tls=tls),
    )
    with NatsServer(folder / "data", config_file=folder / "nats-server.conf") as server:
        yield SecureDeployment(folder, server, tls)


class LienthongProcess:
    """A lienthong process whose stderr is collected line by line as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        # Its own process group: if it must be killed, its embedded nats-server goes with it.
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"no {text!r} from {self.process.args!r}:\n{self.stderr}")
            time.sleep(0.02)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode


CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, which the browser tests drive (Playwright fetches no browser of its own)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless chromium under Playwright; fails in one line when Debian's chromium is missing
    (never skips: a browser test that cannot run is a failure to fix, not a pass)."""
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM}: run "
            "`apt-get install -y chromium` (./dev test does so itself when run as root)",
            pytrace=False,
        )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def dashboard_on(
    settings: NatsSettings, registry: Registry, **options: Any
) -> AsyncIterator[Dashboard]:
    """The dashboard on a free loopback port against the test's server, stopped on the way out."""
    board = Dashboard(settings, registry, DashboardSettings(port=0, **options))
    await board.start()
    try:
        yield board
    finally:
        await board.stop()


class Fetched(msgspec.Struct, frozen=True):
    status: int
    content_type: str
    body: bytes


async def http_get(url: str, method: str = "GET") -> Fetched:
    """One plain HTTP request (the standard library's client, in a thread)."""

    def fetch() -> Fetched:
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Fetched(response.status, response.headers["Content-Type"], response.read())
        except urllib.error.HTTPError as e:
            with e:
                return Fetched(e.code, e.headers["Content-Type"] or "", e.read())

    return await asyncio.to_thread(fetch)
