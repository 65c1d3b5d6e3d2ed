"""The demo's mixed month as the benchmarks submit it: each unit's events in its system's order.

`lienthong.demo.traffic.generate(2021)` gives Quy Nhơn's 22 desks' March and April 2021: new
dossiers, their later events (deadline changes, supplements, resolutions, returns), documents,
copies and resends (the same bytes again), 24,232 events. Here each is read once for what the
benchmarks need besides its bytes: the entity it is about (the log subject's tail, and what a
unit's events must stay in order by) and its event id (the raw side's Nats-Msg-Id).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from lienthong.demo.traffic import generate
from plumbing.headers import msg_id
from plumbing.subjects import encode_key
from schemas.codec import EVENT_DECODER

_IDS = ("event_id", "dossier_id", "document_id", "certification_id")
_OBJECT = msgspec.json.Decoder(dict[str, Any])


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    body: bytes
    entity: str
    """`<entity>.<key>`, as in the log subject: a unit's events about one entity go in order."""
    msg_id: str
    """The Nats-Msg-Id the gateway gives the event; the raw side publishes with it too."""


def _submission(unit: str, body: bytes) -> Submission:
    event = EVENT_DECODER.decode(body)
    return Submission(
        unit=unit,
        body=body,
        entity=f"{event.entity.value}.{encode_key(event.entity_id)}",
        msg_id=msg_id(unit, event.event_id),
    )


def _renamed(body: bytes, suffix: str) -> bytes:
    """The same event with its ids suffixed: another month of the same shape, no id shared."""
    obj = _OBJECT.decode(body)
    for name in _IDS:
        if name in obj:
            obj[name] = f"{obj[name]}{suffix}"
    return msgspec.json.encode(obj)


def month(events: int | None = None) -> dict[str, list[Submission]]:
    """Each unit's events in order: the whole demo traffic, or about `events` of it (the
    same share of every unit, each unit's first ones, so every later event still follows its
    entity's first). More than the demo holds repeats it with renamed ids (`-r2`, `-r3`...)."""
    by_unit = generate(2021).events_by_unit
    total = sum(len(bodies) for bodies in by_unit.values())
    wanted = total if events is None else events
    rounds = max(1, math.ceil(wanted / total))
    share = wanted / (total * rounds)
    out: dict[str, list[Submission]] = {}
    for unit, bodies in by_unit.items():
        taken = bodies[: max(1, math.ceil(len(bodies) * share))]
        out[unit] = [_submission(unit, b) for b in taken]
        for r in range(2, rounds + 1):
            out[unit] += [_submission(unit, _renamed(b, f"-r{r}")) for b in taken]
    return out


def interleaved(by_unit: dict[str, list[Submission]]) -> list[Submission]:
    """All units' events in one sequence, each unit's spread evenly over it and in its order:
    the order of a paced run in which every desk submits at its own steady share of the rate."""
    placed = [
        ((j + 0.5) / len(subs), unit, j, s)
        for unit, subs in by_unit.items()
        for j, s in enumerate(subs)
    ]
    placed.sort(key=lambda p: (p[0], p[1], p[2]))
    return [s for *_, s in placed]
