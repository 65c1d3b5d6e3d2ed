"""The rooms and their arrows: data flows one way, and each room imports only what lies below it.

schemas (the contract in types) <- plumbing (JetStream) <- gateway (the write side) and
consumers (what reads the log), which never import each other <- dashboard (the page over what
the consumers publish) <- lienthong (the wiring), the only room that reads the environment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BELOW = {
    "schemas": {"schemas"},
    "plumbing": {"plumbing", "schemas"},
    "gateway": {"gateway", "plumbing", "schemas"},
    "consumers": {"consumers", "plumbing", "schemas"},
    # The dashboard reads what the consumers publish; in a gateway's process it also shows
    # that gateway's own submission counters (gateway.metrics).
    "dashboard": {"dashboard", "consumers", "gateway", "plumbing", "schemas"},
    "lienthong": {"lienthong", "dashboard", "gateway", "consumers", "plumbing", "schemas"},
}


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            rooms.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            rooms.update(alias.name.split(".")[0] for alias in node.names)
    return rooms & set(BELOW)


@pytest.mark.parametrize("room", sorted(BELOW))
def test_a_room_imports_only_the_rooms_below_it(room: str) -> None:
    assert modules(room), room
    wrong = {
        str(p.relative_to(ROOT)): sorted(imported_rooms(p) - BELOW[room]) for p in modules(room)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_only_the_wiring_reads_the_environment() -> None:
    readers = [
        str(p.relative_to(ROOT))
        for room in BELOW
        if room != "lienthong"
        for p in modules(room)
        if "os.environ" in (text := p.read_text(encoding="utf-8")) or "getenv" in text
    ]
    assert readers == []
