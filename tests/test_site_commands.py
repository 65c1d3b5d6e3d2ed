"""Issue 13, item 1: `lienthong site init U` writes a site server's configuration, and
`lienthong serve --site U` runs a ward site: an embedded nats-server that is a leaf node of the
city's with its own JetStream domain, and the gateway for U, answering as the city's would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from lienthong.embedded import find_nats_server
from schemas.registry import Registry, RegistryFile
from tests import events as ev
from tests.helpers import (
    LienthongProcess,
    answering,
    connected,
    error_of,
    free_port,
    log_subjects,
    submit,
    until,
)

LIENTHONG = [sys.executable, "-m", "lienthong.cli"]


def sites_registry(path: Path) -> Path:
    """The default registry with ward 21550 marked as a site."""
    default = Registry.load()
    units = [msgspec.structs.replace(default[c], site=c == ev.WARD) for c in default.codes()]
    path.write_bytes(msgspec.json.encode(RegistryFile(units=units)))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIENTHONG, *args], capture_output=True, text=True, timeout=60)


def test_site_init_writes_a_configuration_nats_server_accepts(tmp_path: Path) -> None:
    registry = sites_registry(tmp_path / "units.json")
    conf = tmp_path / "site.conf"
    done = run(
        "site", "init", ev.WARD, "--registry", str(registry), "--output", str(conf),
        "--city-leaf", "nats-leaf://city-1:7422,nats-leaf://city-2:7422",
        "--leaf-creds", "/etc/lienthong/site-21550.creds", "--store", str(tmp_path / "js"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = conf.read_text()
    assert f"domain: site-{ev.WARD}" in text
    assert 'credentials: "/etc/lienthong/site-21550.creds"' in text
    assert '"onestop.events.>"' in text  # the log's subjects never cross the leaf connection
    checked = subprocess.run(
        [str(find_nats_server()), "-t", "-c", str(conf)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["site", "init", ev.OTHER_WARD, "--city-leaf", "nats-leaf://c:7422"], "not marked"),
        (["site", "init", "99999", "--city-leaf", "nats-leaf://c:7422"], "not in the registry"),
        (["site", "init", ev.WARD], "leaf-node URL"),
        (["serve", "--site", ev.OTHER_WARD, "--city-leaf", "nats-leaf://c:7422"], "not marked"),
        (["serve", "--site", ev.OTHER_WARD, "--nats-url", "nats://127.0.0.1:1"], "not marked"),
        (["serve", "--site", ev.WARD], "leaf-node URL"),
    ],
)
def test_bad_site_options_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], said: str
) -> None:
    registry = sites_registry(tmp_path / "units.json")
    done = run(*args, "--registry", str(registry))
    assert done.returncode == 2
    assert said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
async def test_serve_site_answers_the_ward_and_the_city_takes_its_events_in(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    registry = str(sites_registry(tmp_path / "units.json"))
    leaf, city_port, site_port = free_port(), free_port(), free_port()
    city = LienthongProcess(
        [*LIENTHONG, "serve", "--registry", registry, "--port", str(city_port),
         "--leaf-listen", f"127.0.0.1:{leaf}"],
        {**subprocess_env, "LIENTHONG_HOME": str(tmp_path / "city")},
    )  # fmt: skip
    site = LienthongProcess(
        [*LIENTHONG, "serve", "--registry", registry, "--port", str(site_port),
         "--site", ev.WARD, "--city-leaf", f"nats-leaf://127.0.0.1:{leaf}"],
        {**subprocess_env, "LIENTHONG_HOME": str(tmp_path / "site")},
    )  # fmt: skip
    try:
        city.wait_for("lienthong serving on")
        site.wait_for("lienthong serving on")
        site_url, city_url = f"nats://127.0.0.1:{site_port}", f"nats://127.0.0.1:{city_port}"
        await until(lambda: answering(site_url, ev.WARD), 30, "the site's gateway")
        async with connected(site_url) as ward, connected(city_url) as c:
            reply = await submit(ward, ev.WARD, ev.received("HS-SITE-1"))
            assert reply["ok"] is True
            assert reply["seq"] == 1  # the site's own log
            # A unit the site does not write is not written there.
            other = await submit(ward, ev.OTHER_WARD, ev.received("HS-X", unit=ev.OTHER_WARD))
            assert error_of(other) == ("unavailable", None)
            assert "is written by the city's gateway" in other["error"]["message"]

            async def at_city() -> bool:
                subjects = await log_subjects(c)
                return f"onestop.events.{ev.WARD}.dossier.HS-SITE-1" in subjects

            await until(at_city, 60, "the site's event in the city's log")
    finally:
        assert site.stop() == 0, site.stderr
        assert city.stop() == 0, city.stderr
