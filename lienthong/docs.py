"""The documents vendors validate against: JSON Schema of the contract, AsyncAPI of the subjects.

Both are generated (from the msgspec types and from faststream's declaration of the gateway's
subscribers); the copies checked in under `schemas/` are kept in step by a test.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import msgspec
from faststream.nats import NatsBroker, NatsMessage
from faststream.specification import AsyncAPI

from gateway.responders import QUEUE_GROUP
from gateway.submit import MAX_EVENTS
from plumbing.subjects import INBOUND_PREFIX, SUBMIT_PREFIX
from schemas.events import Event
from schemas.interconnect import DeliveryAck, Envelope, NoteBody, ResultBody, TransferBody
from schemas.replies import Accepted, Refused
from schemas.report import Report
from schemas.seal import Seal

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "lienthong.schema.json"
ASYNCAPI_FILE = Path(__file__).resolve().parent.parent / "schemas" / "asyncapi.json"

_DOCUMENTED: dict[str, Any] = {
    "Event": Event,
    "Submission": Event | Annotated[list[Event], msgspec.Meta(max_length=MAX_EVENTS)],
    "Accepted": Accepted,
    "Refused": Refused,
    "Envelope": Envelope,
    "TransferBody": TransferBody,
    "ResultBody": ResultBody,
    "NoteBody": NoteBody,
    "DeliveryAck": DeliveryAck,
    "Report": Report,
    "Seal": Seal,
}


def json_schema() -> dict[str, Any]:
    refs, components = msgspec.json.schema_components(
        list(_DOCUMENTED.values()), ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lienthong wire contract, version 1",
        "description": (
            "Events, replies, interconnection envelopes, reports and seals (CONTRACT.md)."
        ),
        "$defs": {**_aliases(refs), **_cleaned(components)},
    }


def _cleaned(node: Any) -> Any:
    """Descriptions with their docstring indentation removed, whatever msgspec's version keeps of
    it (0.23 stopped dedenting), so the documents are the same on every allowed version."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _cleaned(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_cleaned(item) for item in node]
    return node


def _aliases(refs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """A definition under each documented name that is not a Struct's own (Event, Submission):
    a Struct's component is its definition, and must not be replaced by a reference to itself."""
    return {
        name: ref
        for name, ref in zip(_DOCUMENTED, refs, strict=True)
        if ref.get("$ref", "").rpartition("/")[2] != name
    }


async def _no_handler(msg: NatsMessage) -> bytes:
    raise NotImplementedError("documentation only")


def _declare_served(broker: NatsBroker) -> None:
    """What the gateway serves (gateway.responders answers these subjects on nats-py itself:
    faststream declares them here for the document only)."""
    broker.subscriber(
        f"{SUBMIT_PREFIX}.*",
        queue=QUEUE_GROUP,
        title="onestop.submit.{unit}",
        description=(
            "A unit's system submits one event (JSON object) or up to 1,000 (JSON array), "
            "request/reply; answered with one reply per event (CONTRACT section 4)."
        ),
    )(_no_handler)
    broker.subscriber(
        f"{INBOUND_PREFIX}.*",
        queue=QUEUE_GROUP,
        title="onestop.inbound.{unit}",
        description=(
            "The province sends an interconnection envelope to a unit, request/reply; answered "
            '{"ok": true} once stored, or an error as in CONTRACT section 4.'
        ),
    )(_no_handler)


_PUBLISHED = {
    "onestop.events.{unit}.{entity}.{key}": (
        "Event",
        "The event log, stream ONESTOP_EVENTS: each accepted event once, in order. `key` is the "
        "entity id in the quoted-printable-style encoding of plumbing/subjects.py.",
    ),
    "onestop.reports.{unit}.{period}": (
        "Report",
        "Monthly reports, stream ONESTOP_REPORTS (direct get): every revision is a message; the "
        "last on a subject is the current report.",
    ),
    "onestop.seals": (
        "Seal",
        "Seals over the event log, stream ONESTOP_SEALS: its hash chain up to a sequence, so a "
        "copy of them lets anyone check later that the log was not altered (`lienthong verify`).",
    ),
    "province.{province}.inbox.{unit}": (
        "Envelope",
        'Interconnection from a unit to its province, request/reply; `{"ok": true}` acknowledges.',
    ),
}


def _with_payloads(spec: dict[str, Any]) -> dict[str, Any]:
    """faststream knows the subjects; the payloads are the contract's msgspec types."""
    refs, components = msgspec.json.schema_components(
        list(_DOCUMENTED.values()), ref_template="#/components/schemas/{name}"
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("EmptyPayload", None)
    schemas.update(_aliases(refs))
    schemas.update(_cleaned(components))
    payload_of = {"onestop.submit.{unit}": "Submission", "onestop.inbound.{unit}": "Envelope"}
    payload_of.update({subject: name for subject, (name, _) in _PUBLISHED.items()})
    for name, message in spec["components"].get("messages", {}).items():
        channel = name.split(":", 1)[0]
        if channel in payload_of:
            message["payload"] = {"$ref": f"#/components/schemas/{payload_of[channel]}"}
    # faststream keeps publishers in a WeakSet: sort, so the document is the same on every run.
    for section in (spec, spec["components"]):
        for key in ("channels", "operations", "messages", "schemas"):
            if isinstance(section.get(key), dict):
                section[key] = dict(sorted(section[key].items()))
    return spec


def asyncapi() -> dict[str, Any]:
    broker = NatsBroker("nats://127.0.0.1:4222", logger=None)
    _declare_served(broker)
    for subject, (_, description) in _PUBLISHED.items():
        broker.publisher(
            subject.replace("{unit}", "*")
            .replace("{entity}", "*")
            .replace("{key}", "*")
            .replace("{period}", "*")
            .replace("{province}", "*"),
            title=subject,
            description=description,
        )
    document = AsyncAPI(
        broker,
        title="lienthong gateway",
        version="1",
        description=(
            "Subjects of the lienthong gateway (CONTRACT.md section 2). Message payloads are "
            "described by the JSON Schema printed by `lienthong schema`."
        ),
    ).to_specification()
    spec: dict[str, Any] = msgspec.json.decode(document.to_json())
    return _with_payloads(spec)


def render(document: dict[str, Any]) -> str:
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"
