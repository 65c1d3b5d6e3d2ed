"""The documents vendors validate against follow the contract; the checked-in copies are current."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import structlog

from lienthong import cli
from lienthong.docs import ASYNCAPI_FILE, SCHEMA_FILE, asyncapi, json_schema, render

# CONTRACT section 3, as written there: each event type and its fields (beyond the common four).
COMMON = {"type", "event_id", "unit", "occurred_at"}
EVENT_FIELDS = {
    "dossier.received": {
        "dossier_id",
        "procedure_code",
        "channel",
        "service_level",
        "due_at",
        "applicant",
    },
    "dossier.deadline_changed": {"dossier_id", "due_at", "reason"},
    "dossier.supplement_requested": {"dossier_id", "note"},
    "dossier.transferred": {"dossier_id", "to_agency", "interconnect"},
    "dossier.resolved": {"dossier_id", "outcome"},
    "dossier.withdrawn": {"dossier_id"},
    "dossier.result_returned": {"dossier_id", "method"},
    "document.issued": {"document_id", "digitally_signed", "sent_via_axis"},
    "copy.certified": {"certification_id", "electronic"},
}
OPTIONAL = {"service_level", "applicant", "note"}
# Compatible extensions: fields only the gateway writes (in its log), optional, each described as
# an extension in the schema itself.
EXTENSIONS = {"dossier.received": {"sealed_applicant"}}
# CONTRACT section 2's subjects and what each carries.
SUBJECTS = {
    "onestop.submit.{unit}": "Submission",
    "onestop.events.{unit}.{entity}.{key}": "Event",
    "onestop.reports.{unit}.{period}": "Report",
    "onestop.inbound.{unit}": "Envelope",
    "province.{province}.inbox.{unit}": "Envelope",
}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`lienthong` configures structlog for its process; put the tests' configuration back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_json_schema_file_is_current() -> None:
    assert render(json_schema()) == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "schemas/lienthong.schema.json is out of date: regenerate it with "
        "`lienthong schema > schemas/lienthong.schema.json`"
    )


def test_asyncapi_file_is_current() -> None:
    # Compared as JSON, not as text: faststream keeps publishers in a WeakSet, so the order of
    # the channels it lists can differ from one generation to the next.
    assert json.loads(render(asyncapi())) == json.loads(ASYNCAPI_FILE.read_text("utf-8")), (
        "schemas/asyncapi.json is out of date: regenerate it with "
        "`lienthong schema --asyncapi > schemas/asyncapi.json`"
    )


@pytest.mark.usefixtures("restore_logging")
def test_lienthong_schema_prints_the_checked_in_json_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "schemas/lienthong.schema.json differs from `lienthong schema`: regenerate it with "
        "`lienthong schema > schemas/lienthong.schema.json`"
    )


@pytest.mark.usefixtures("restore_logging")
def test_lienthong_schema_asyncapi_prints_the_checked_in_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["schema", "--asyncapi"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(ASYNCAPI_FILE.read_text(encoding="utf-8")), (
        "schemas/asyncapi.json differs from `lienthong schema --asyncapi`: regenerate it with "
        "`lienthong schema --asyncapi > schemas/asyncapi.json`"
    )


def _event_defs(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Event type tag -> its JSON Schema object, following the Event union's discriminator."""
    defs = schema["$defs"]
    mapping = defs["Event"]["discriminator"]["mapping"]
    return {tag: defs[ref.rsplit("/", 1)[1]] for tag, ref in mapping.items()}


def test_every_event_type_of_the_contract_is_in_the_json_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    events = _event_defs(schema)
    assert set(events) == set(EVENT_FIELDS)
    for tag, definition in events.items():
        assert definition["properties"]["type"] == {"enum": [tag]}


@pytest.mark.parametrize("tag", sorted(EVENT_FIELDS))
def test_every_event_field_of_the_contract_is_in_the_json_schema(tag: str) -> None:
    definition = _event_defs(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))[tag]
    fields = COMMON | EVENT_FIELDS[tag]
    extensions = EXTENSIONS.get(tag, set())
    assert set(definition["properties"]) == fields | extensions
    assert set(definition["required"]) == fields - OPTIONAL
    for name in extensions:
        assert definition["properties"][name]["description"].startswith("Extension:")


def test_ids_are_1_to_128_characters_in_the_json_schema() -> None:
    events = _event_defs(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    for definition in events.values():
        for name, prop in definition["properties"].items():
            if name.endswith("_id"):
                assert (prop["minLength"], prop["maxLength"]) == (1, 128), name


def test_submission_is_one_event_or_an_array_of_events() -> None:
    defs = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]
    event_union = defs["Event"]
    options = defs["Submission"]["anyOf"]
    arrays = [o for o in options if o.get("type") == "array"]
    objects = [o for o in options if o.get("type") != "array"]
    assert len(arrays) == 1
    assert len(objects) == 1
    for union in (arrays[0]["items"], objects[0]):
        assert union in (event_union, {"$ref": "#/$defs/Event"})


def test_asyncapi_has_a_channel_for_each_subject_of_the_contract_with_its_payload() -> None:
    """CONTRACT section 2, subject by subject: a channel at the subject's address (its
    placeholders as NATS wildcards) whose message carries the contract's payload."""
    document = json.loads(ASYNCAPI_FILE.read_text(encoding="utf-8"))
    channels, messages = document["channels"], document["components"]["messages"]
    for subject, payload in SUBJECTS.items():
        assert subject in channels, f"no channel for {subject}"
        channel = channels[subject]
        assert channel["address"] == re.sub(r"\{[a-z]+\}", "*", subject)
        assert channel["bindings"]["nats"]["subject"] == channel["address"]
        (ref,) = [m["$ref"] for m in channel["messages"].values()]
        message = messages[unquote(ref.rpartition("/")[2])]
        assert message["payload"] == {"$ref": f"#/components/schemas/{payload}"}, subject


@pytest.mark.parametrize("document", [SCHEMA_FILE, ASYNCAPI_FILE], ids=lambda p: p.name)
def test_every_definition_resolves_to_a_schema_not_to_itself(document: Path) -> None:
    loaded = json.loads(document.read_text(encoding="utf-8"))
    defs = loaded["$defs"] if "$defs" in loaded else loaded["components"]["schemas"]
    for name, definition in defs.items():
        assert definition.get("$ref", "").rpartition("/")[2] != name, name
    for name in ("Report", "Envelope", "Accepted", "Refused", "Seal"):
        assert defs[name]["type"] == "object", name
        assert defs[name]["properties"], name
