"""CONTRACT sections 3, 4 and 5: every refusal the gateway can give, rule by rule.

`RULES` lists each place in the source that makes a refusal (a `Refusal` subclass or a
`FieldProblem`), the contract sentence it rests on, and the tests that show it. The first tests
scan the source: a refusal that is not listed, a listed one that no longer exists, a sentence the
contract does not hold or a test that does not exist fails them. So no refusal exists without a
written rule and a test. The tests after those cover refusals no other module reached.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import nats
import pytest
from nats.aio.client import Client

from gateway.event_index import Claim, Entry, EventIndex
from gateway.event_log import EventLog
from gateway.intake import RACE_RETRIES, Intake
from gateway.service import Gateway
from gateway.submit import SubmitService
from lienthong.client import submit_batch
from lienthong.embedded import NatsServer
from plumbing.headers import DOSSIER_STATE
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM
from plumbing.subjects import inbound_subject
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import (
    GatewayStarter,
    connected,
    error_of,
    faulty_jetstream,
    log_size,
    submit,
    submit_service,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("gateway", "schemas", "consumers", "plumbing", "lienthong")
REFUSALS = {"Malformed", "Invalid", "UnitMismatch", "UnknownUnit", "UnknownEntity", "Conflict",
            "Unavailable", "LogUnavailable", "FieldProblem"}  # fmt: skip
CONTRACT = next(
    (p for p in (ROOT.parent / "shared" / "CONTRACT.md", ROOT / "CONTRACT.md") if p.exists()),
    None,
)


class Rule(NamedTuple):
    where: str
    """The module that makes the refusal."""
    refusal: str
    """Its class (or FieldProblem: an `invalid` naming the field)."""
    says: str
    """How its message starts (literal text, `{}` for what is filled in), or the expression
    that gives it when it is not a literal."""
    contract: str
    """The contract's sentence it rests on, word for word."""
    tests: tuple[str, ...]
    """`module::test` that show it."""


# The contract's sentences.
MALFORMED = "`malformed` (not JSON, not an object, too large)"
WHOLE = (
    "A submission refused whole (not JSON, neither an object nor an array, more than 1,000 "
    "events, larger than the server accepts) is answered with one refusal object, whatever it held."
)
INVALID = "`invalid` (a field missing or of the wrong form; `field` names it)"
CLOCK = (
    "a timestamp without an offset is refused, and so is one more than 5 minutes ahead of the "
    "gateway's clock (`invalid`, field `occurred_at`)"
)
ONLINE = "(required, 3 or 4, when `channel` is `online`)"
DUE = "`due_at` (timestamp, after `occurred_at`)"
SAME_UNIT = "must equal the `<unit>` of the subject it was submitted on"
NOT_REGISTERED = "An event from a unit that is not in the registry is refused."
NEVER_RECEIVED = "`unknown_entity` (an event for a dossier that was never received)"
CONFLICT = (
    "`conflict` (breaks the lifecycle: received twice, resolved twice, changed after closing; "
    "also the same `event_id` with different content)"
)
ONCE_PER_DOSSIER = "the first event of a dossier; once per dossier"
BEFORE_RECEIPT = (
    "A dossier's later events may not be dated before its `dossier.received` (`conflict`)."
)
AFTER_RESOLVED = "only after `dossier.resolved`; once"
WHILE_OPEN = "only while the dossier is open"
ONCE_PER_DOCUMENT = "once per document"
UNAVAILABLE = "`unavailable` (the gateway cannot store it now; safe to retry)"
PER_EVENT = "A submission is answered on its reply subject with one JSON object per event"
INBOUND = (
    'The gateway answers `{"ok": true}` once the message is stored, or an error as in section 4.'
)
INBOUND_KINDS = (
    "from province to unit: `receipt`, `status`, `supplement_request`, `result`, `rejected`"
)
KEEPS_RETRYING = "The gateway keeps retrying until it gets that answer"

T3 = "tests/test_contract_3_events.py"
T4D = "tests/test_contract_4_dedupe.py"
T4R = "tests/test_contract_4_replies.py"
T1 = "tests/test_contract_1_units.py"
TIN = "tests/test_contract_5_inbound.py"
TOUT = "tests/test_contract_5_outbound.py"
TSUB = "tests/test_submit_command.py"
TCON = "tests/test_gateway_concurrency.py"
TPD = "tests/test_personal_data.py"
HERE = "tests/test_contract_refusals.py"

RULES: list[Rule] = [
    # -- a submission, whole or event by event (gateway.submit) --------------------------------
    Rule("gateway/submit.py", "Malformed", "the submission is {} bytes", WHOLE,
         (f"{T4D}::test_submission_larger_than_the_gateway_limit_is_refused_whole",)),
    Rule("gateway/submit.py", "Malformed", "the batch holds {} events", WHOLE,
         (f"{T4D}::test_batch_of_1001_events_is_refused_whole",
          f"{T4R}::test_more_than_1000_events_are_refused_whole")),
    Rule("gateway/submit.py", "Malformed", "the submission must be one event", WHOLE,
         (f"{T4D}::test_json_neither_object_nor_array_is_one_malformed_refusal",)),
    Rule("gateway/submit.py", "Malformed", "the submission is not valid JSON", WHOLE,
         (f"{T4D}::test_submission_that_is_not_json_is_one_malformed_refusal",
          f"{T4D}::test_event_that_is_not_utf8_is_one_malformed_refusal",
          f"{T4R}::test_not_json_is_refused_whole_as_malformed")),
    Rule("gateway/submit.py", "Malformed", "each event must be a JSON object", MALFORMED,
         (f"{T4D}::test_array_element_that_is_not_an_object_is_refused_malformed_alone",)),
    Rule("gateway/submit.py", "Malformed", "the event is not valid JSON: its text must be UTF-8",
         MALFORMED, (f"{T4D}::test_batch_element_that_is_not_utf8_is_refused_malformed_alone",)),
    Rule("gateway/submit.py", "Invalid", "{}: {}", INVALID,
         (f"{T3}::test_field_of_the_wrong_type_is_refused_invalid_naming_the_field",
          f"{T3}::test_missing_field_is_refused_invalid_naming_the_field",
          f"{T3}::test_unknown_event_type_is_refused_invalid_type",
          f"{T3}::test_empty_id_is_refused_invalid_naming_the_field",
          f"{T3}::test_timestamp_without_offset_is_refused_invalid_occurred_at")),
    Rule("gateway/submit.py", "Invalid", "problem.message", INVALID,
         (f"{T3}::test_timestamp_more_than_5_minutes_ahead_is_refused_invalid_occurred_at",
          f"{T3}::test_online_with_service_level_2_is_refused_invalid_service_level",
          f"{T3}::test_due_at_not_after_occurred_at_is_refused_invalid_due_at")),
    Rule("gateway/submit.py", "UnitMismatch", "the event's unit {} differs", SAME_UNIT,
         (f"{T3}::test_event_unit_differing_from_the_subject_unit_is_refused_unit_mismatch",)),
    Rule("gateway/submit.py", "UnknownUnit", "unit {} is not in the gateway's registry",
         NOT_REGISTERED,
         (f"{T1}::test_event_from_a_unit_not_in_the_registry_is_refused_unknown_unit",
          f"{T1}::test_unknown_unit_is_refused_in_a_batch_event_by_event")),
    Rule("gateway/submit.py", "Unavailable", "the gateway could not finish this event", UNAVAILABLE,
         (f"{T4R}::test_unexpected_error_leaves_no_event_unanswered",)),
    # -- the rules of section 3 an event breaks on its own (schemas.rules) ----------------------
    Rule("schemas/rules.py", "FieldProblem", "occurred_at is more than 5 minutes ahead", CLOCK,
         (f"{T3}::test_timestamp_more_than_5_minutes_ahead_is_refused_invalid_occurred_at",
          f"{HERE}::test_a_result_resolved_more_than_5_minutes_ahead_is_invalid")),
    Rule("schemas/rules.py", "FieldProblem", "a dossier received online needs service_level",
         ONLINE, (f"{T3}::test_online_without_service_level_is_refused_invalid_service_level",
                  f"{T3}::test_online_with_service_level_2_is_refused_invalid_service_level")),
    Rule("schemas/rules.py", "FieldProblem", "due_at must be after occurred_at", DUE,
         (f"{T3}::test_due_at_not_after_occurred_at_is_refused_invalid_due_at",)),
    Rule("schemas/rules.py", "FieldProblem", "sealed_applicant is the gateway's own form",
         INVALID, (f"{TPD}::test_a_unit_cannot_submit_the_sealed_form",)),
    # -- the lifecycle, judged against the entity's history (gateway.lifecycle) -----------------
    Rule("gateway/lifecycle.py", "Conflict", "{} for this id was already accepted",
         ONCE_PER_DOCUMENT, (f"{T3}::test_document_issued_twice_is_refused_conflict",
                             f"{T3}::test_copy_certified_twice_is_refused_conflict")),
    Rule("gateway/lifecycle.py", "Conflict", "this dossier was already received", ONCE_PER_DOSSIER,
         (f"{T3}::test_dossier_received_twice_is_refused_conflict",)),
    Rule("gateway/lifecycle.py", "UnknownEntity", "no dossier {} was received by this unit",
         NEVER_RECEIVED,
         (f"{T3}::test_event_for_a_dossier_never_received_is_refused_unknown_entity",
          f"{T3}::test_dossier_received_in_another_unit_is_unknown_here")),
    Rule("gateway/lifecycle.py", "Conflict", "occurred_at is before the dossier was received",
         BEFORE_RECEIPT,
         (f"{T3}::test_dossier_event_dated_before_its_receipt_is_refused_conflict",)),
    Rule("gateway/lifecycle.py", "Conflict", "the result of this dossier was already returned",
         AFTER_RESOLVED, (f"{T3}::test_result_returned_twice_is_refused_conflict",)),
    Rule("gateway/lifecycle.py", "Conflict", "a result can be returned only after", AFTER_RESOLVED,
         (f"{T3}::test_result_returned_before_resolved_is_refused_conflict",
          f"{T3}::test_result_returned_after_withdrawal_is_refused_conflict")),
    Rule("gateway/lifecycle.py", "Conflict", "the dossier is already {}", WHILE_OPEN,
         (f"{T3}::test_change_after_the_dossier_is_closed_is_refused_conflict",
          f"{T3}::test_dossier_resolved_twice_is_refused_conflict",
          f"{T3}::test_change_after_the_result_was_returned_is_refused_conflict")),
    # -- recording once (gateway.intake) -------------------------------------------------------
    Rule("gateway/intake.py", "Conflict", "event_id {} was already used for a different event",
         CONFLICT, (f"{T4D}::test_same_event_id_with_different_content_is_refused_conflict",
                    f"{T4D}::test_same_event_id_with_different_content_is_conflict_after_the_window",
                    f"{T4D}::test_same_event_id_twice_in_one_batch_with_different_content_is_conflict")),
    Rule("gateway/intake.py", "Unavailable", "the event-id index changed during the write",
         UNAVAILABLE, (f"{HERE}::test_an_index_entry_that_vanishes_mid_write_is_unavailable",)),
    Rule("gateway/intake.py", "Unavailable", "the dossier is being changed by many writers",
         UNAVAILABLE,
         (f"{HERE}::test_a_dossier_changed_by_another_writer_every_time_is_unavailable",)),
    Rule("gateway/intake.py", "Unavailable", "this event_id is being submitted concurrently",
         UNAVAILABLE,
         (f"{TCON}::test_a_claim_made_on_a_newer_state_is_not_taken_over_while_its_write_is_in_flight",
          f"{TCON}::test_a_lost_writes_claim_is_taken_over_once_older_than_the_window")),
    Rule("gateway/intake.py", "Unavailable", "the gateway could not finish this event", UNAVAILABLE,
         (f"{T4R}::test_unexpected_error_on_one_entity_is_unavailable_for_its_events_only",)),
    Rule("gateway/intake.py", "Unavailable", "str(e)", UNAVAILABLE,
         (f"{T4R}::test_connection_trouble_on_the_event_log_is_unavailable",
          f"{T4R}::test_connection_trouble_is_answered_unavailable_event_by_event")),
    Rule("gateway/inbound.py", "Unavailable", "str(error)", UNAVAILABLE,
         (f"{HERE}::test_an_envelope_the_log_cannot_store_is_unavailable",)),
    # -- JetStream's answers (plumbing.jetstream) -----------------------------------------------
    Rule("plumbing/jetstream.py", "LogUnavailable", "the event log is not reachable", UNAVAILABLE,
         (f"{HERE}::test_a_write_nothing_stores_is_unavailable",
          f"{TCON}::test_jetstream_leader_gone_is_unavailable_and_safe_to_retry")),
    Rule("plumbing/jetstream.py", "LogUnavailable", "the event log did not {} in time", UNAVAILABLE,
         (f"{TCON}::test_jetstream_leader_gone_is_unavailable_and_safe_to_retry",
          f"{T4D}::test_resend_after_unavailable_of_a_stored_event_is_a_duplicate")),
    Rule("plumbing/jetstream.py", "LogUnavailable", "_connection_trouble(e, ", UNAVAILABLE,
         (f"{T4R}::test_connection_trouble_on_the_event_log_is_unavailable",
          f"{T4R}::test_connection_trouble_is_answered_unavailable_event_by_event")),
    Rule("plumbing/jetstream.py", "LogUnavailable", "the event log refused the write", UNAVAILABLE,
         (f"{HERE}::test_a_full_event_log_refuses_new_events_as_unavailable",)),
    Rule("plumbing/jetstream.py", "LogUnavailable", "the event log could not be read", UNAVAILABLE,
         (f"{HERE}::test_a_read_the_event_log_answers_with_an_error_is_unavailable",)),
    # -- the province's messages (gateway.inbound) ---------------------------------------------
    Rule("gateway/inbound.py", "Malformed", "the envelope is not UTF-8 text", INBOUND,
         (f"{TIN}::test_an_envelope_that_is_not_a_json_object_is_malformed",)),
    Rule("gateway/inbound.py", "Malformed", "the envelope must be a JSON object", INBOUND,
         (f"{TIN}::test_an_envelope_that_is_not_a_json_object_is_malformed",)),
    Rule("gateway/inbound.py", "Malformed", "the envelope is not valid JSON", INBOUND,
         (f"{TIN}::test_an_envelope_that_is_not_a_json_object_is_malformed",)),
    Rule("gateway/inbound.py", "Invalid", "{}: {}", INVALID,
         (f"{TIN}::test_malformed_envelope_is_invalid_and_names_the_field",
          f"{HERE}::test_an_envelope_field_of_the_wrong_form_is_invalid_naming_it")),
    Rule("gateway/inbound.py", "Invalid", "kind {} does not go from the province to a unit",
         INBOUND_KINDS, (f"{TIN}::test_malformed_envelope_is_invalid_and_names_the_field",)),
    Rule("gateway/inbound.py", "UnitMismatch", "the envelope's unit {} differs", SAME_UNIT,
         (f"{TIN}::test_malformed_envelope_is_invalid_and_names_the_field",)),
    Rule("gateway/inbound.py", "UnknownUnit", "unit {} is not in the gateway's registry",
         NOT_REGISTERED, (f"{HERE}::test_an_envelope_for_a_unit_not_in_the_registry_is_refused",)),
    Rule("gateway/inbound.py", "Invalid", "problem.message", CLOCK,
         (f"{HERE}::test_a_result_resolved_more_than_5_minutes_ahead_is_invalid",)),
    Rule("gateway/inbound.py", "UnknownEntity", "unit {} never received dossier", NEVER_RECEIVED,
         (f"{TIN}::test_a_receipt_for_a_dossier_never_received_is_unknown_entity",)),
    # -- `lienthong submit`'s own refusals, before sending (lienthong.client) ---------------------
    Rule("lienthong/client.py", "Malformed", "the event is {} bytes", MALFORMED,
         (f"{TSUB}::test_batches_respect_the_nats_servers_max_payload",)),
    Rule("lienthong/client.py", "Malformed", "each event must be a JSON object", MALFORMED,
         (f"{TSUB}::test_a_line_that_is_not_one_object_is_never_sent",)),
    Rule("lienthong/client.py", "Malformed", "not valid JSON ({})", MALFORMED,
         (f"{TSUB}::test_a_line_that_is_not_one_object_is_never_sent",
          f"{TSUB}::test_each_bad_line_is_refused_alone_and_the_rest_answered_in_line_order")),
    Rule("lienthong/client.py", "Malformed", "the batch of {} bytes is larger than the NATS server",
         WHOLE, (f"{TSUB}::test_batches_respect_the_nats_servers_max_payload",)),
    Rule("lienthong/client.py", "Unavailable", "no answer from the gateway", UNAVAILABLE,
         (f"{HERE}::test_a_submission_nobody_answers_is_unavailable_for_each_event",)),
    Rule("lienthong/client.py", "Unavailable", "the gateway answered {} replies for {} events",
         PER_EVENT, (f"{HERE}::test_a_reply_of_the_wrong_length_is_unavailable_for_each_event",)),
    # -- the forwarder's own retries: never sent to a unit (consumers) --------------------------
    Rule("consumers/interconnect/outbox.py", "LogUnavailable",
         "the dossier's dossier.received could not be read",
         KEEPS_RETRYING,
         (f"{TOUT}::test_an_error_while_translating_a_batch_is_retried_never_fatal",)),
    # -- one writer per unit: ward sites (gateway.sites) -------------------------------------
    Rule("gateway/sites.py", "Unavailable", "the site of unit {} ({}) is not reachable",
         UNAVAILABLE,
         ("tests/test_sites.py::test_a_cut_off_site_keeps_the_contract_and_the_city_catches_up_once_in_order",
          "tests/test_sites.py::test_a_cut_off_sites_interconnection_waits_then_goes_out_in_order")),
    Rule("gateway/sites.py", "Unavailable", "unit {} is written by {}, not here", UNAVAILABLE,
         ("tests/test_site_commands.py::test_serve_site_answers_the_ward_and_the_city_takes_its_events_in",)),
    Rule("consumers/interconnect/pending.py", "LogUnavailable", "the outbox could not be read",
         KEEPS_RETRYING,
         (f"{TOUT}::test_one_stuck_dossier_among_a_thousand_holds_back_no_other_then_parks_and_resumes",)),
    Rule("consumers/interconnect/delivery.py", "LogUnavailable", "the outbox could not be read",
         KEEPS_RETRYING,
         (f"{TOUT}::test_a_province_down_for_a_while_then_up_gets_everything_once_in_order",
          f"{TOUT}::test_the_forwarder_crashing_mid_delivery_loses_nothing_and_keeps_order")),
]  # fmt: skip


class Site(NamedTuple):
    where: str
    line: int
    refusal: str
    says: str


def _message(call: ast.Call) -> str:
    args = call.args[1:2] if getattr(call.func, "id", "") == "FieldProblem" else call.args[:1]
    if not args:
        return ""
    arg = args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
            for v in arg.values
        )
    return ast.unparse(arg)


def refusal_sites() -> list[Site]:
    """Every construction of a refusal in the gateway's source."""
    sites = []
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in REFUSALS:
                    sites.append(Site(where, node.lineno, name, _message(node)))
    return sites


def rules_for(site: Site) -> list[Rule]:
    return [
        r
        for r in RULES
        if (r.where, r.refusal) == (site.where, site.refusal) and site.says.startswith(r.says)
    ]


def test_every_refusal_in_the_source_rests_on_a_listed_rule() -> None:
    sites = refusal_sites()
    assert len(sites) > 40  # the scan sees the source at all
    unlisted = [s for s in sites if not rules_for(s)]
    assert unlisted == [], "refusals with no rule in RULES (add the rule and its test)"


def test_every_listed_rule_is_still_a_refusal_in_the_source() -> None:
    sites = refusal_sites()
    stale = [r for r in RULES if not any(r in rules_for(s) for s in sites)]
    assert stale == []


def test_refusals_are_made_only_by_their_classes() -> None:
    """No other way to make one (a class looked up by code) escapes the scan, except inbound's
    passing on of the intake's own refusal, listed with those it passes on."""
    text = "\n".join(
        p.read_text(encoding="utf-8") for pkg in SOURCES for p in (ROOT / pkg).rglob("*.py")
    )
    assert re.findall(r"_refusal_of\(", text) == ["_refusal_of(", "_refusal_of("]  # def, use


def _normal(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.skipif(CONTRACT is None, reason="CONTRACT.md is not beside this checkout")
def test_every_rule_quotes_the_contract_word_for_word() -> None:
    assert CONTRACT is not None
    contract = _normal(CONTRACT.read_text(encoding="utf-8"))
    missing = sorted({r.contract for r in RULES if _normal(r.contract) not in contract})
    assert missing == []


def test_every_rule_names_tests_that_exist() -> None:
    defined: dict[str, set[str]] = {}
    missing = []
    for rule in RULES:
        assert rule.tests, rule
        for test in rule.tests:
            module, name = test.split("::")
            if module not in defined:
                tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
                defined[module] = {
                    n.name
                    for n in tree.body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                }
            if name not in defined[module]:
                missing.append(test)
    assert missing == []


# -- refusals no other module reached -------------------------------------------------------


def envelope(kind: str, dossier_id: str, message_id: str, **body: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "kind": kind,
        "unit": ev.WARD,
        "dossier_id": dossier_id,
        "sent_at": "2021-04-09T09:00:00+07:00",
        "body": body,
    }


async def send(client: Client, unit: str, message: dict[str, Any]) -> Any:
    reply = await client.request(inbound_subject(unit), msgspec.json.encode(message), timeout=10)
    return msgspec.json.decode(reply.data)


async def test_an_envelope_for_a_unit_not_in_the_registry_is_refused(
    gateway: Gateway, client: Client
) -> None:
    message = {**envelope("receipt", "HS-1", "52-r-1", note="x"), "unit": "99999"}
    assert error_of(await send(client, "99999", message)) == ("unknown_unit", "unit")


async def test_an_envelope_field_of_the_wrong_form_is_invalid_naming_it(
    gateway: Gateway, client: Client
) -> None:
    message = {**envelope("receipt", "HS-1", "52-r-2", note="x"), "sent_at": "2021-04-09 09:00"}
    assert error_of(await send(client, ev.WARD, message)) == ("invalid", "sent_at")


async def test_a_result_resolved_more_than_5_minutes_ahead_is_invalid(
    gateway: Gateway, client: Client
) -> None:
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"]
    ahead = envelope("result", "HS-1", "52-res-1", outcome="approved",
                     resolved_at="2999-01-01T00:00:00+07:00")  # fmt: skip
    assert error_of(await send(client, ev.WARD, ahead)) == ("invalid", "body.resolved_at")
    assert await log_size(client) == 1


async def test_a_full_event_log_refuses_new_events_as_unavailable(
    gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    await gateways.start(streams=StreamSettings(events_max_bytes=4096))
    async with connected(nats_server.url) as client:
        replies = [await submit(client, ev.WARD, ev.copy(f"SC-{n}")) for n in range(40)]
    refused = [r for r in replies if not r["ok"]]
    assert refused, "the log never filled up"
    assert {error_of(r)[0] for r in refused} == {"unavailable"}
    assert "refused the write" in refused[0]["error"]["message"]


async def test_a_read_the_event_log_answers_with_an_error_is_unavailable(
    gateway: Gateway, client: Client
) -> None:
    js = JetStream(client, 2.0)
    with pytest.raises(Exception, match="could not be read") as raised:
        await js.by_seq(EVENTS_STREAM, 0)  # JetStream answers 408: no such request
    assert type(raised.value).__name__ == "LogUnavailable"  # the plumbing's, not a reply
    with pytest.raises(Exception, match="could not be read"):
        await js.duplicate_window("NO_SUCH_STREAM")


async def test_a_write_nothing_stores_is_unavailable(gateway: Gateway, client: Client) -> None:
    with pytest.raises(Exception, match="not reachable") as raised:
        await JetStream(client, 2.0).publish("not.a.stream", b"{}", {})
    assert type(raised.value).__name__ == "LogUnavailable"  # the plumbing's, not a reply


async def test_an_envelope_the_log_cannot_store_is_unavailable(
    gateway: Gateway, client: Client
) -> None:
    assert (await submit(client, ev.WARD, ev.received("HS-U")))["ok"]
    await client.jetstream().delete_stream(EVENTS_STREAM)  # nothing can read or store it now
    result = envelope("result", "HS-U", "52-res-u", outcome="approved",
                      resolved_at="2021-04-09T09:00:00+07:00")  # fmt: skip
    assert error_of(await send(client, ev.WARD, result))[0] == "unavailable"


async def test_a_submission_nobody_answers_is_unavailable_for_each_event(client: Client) -> None:
    events = [ev.wire(ev.copy("SC-1")), ev.wire(ev.copy("SC-2"))]
    replies = await submit_batch(client, ev.WARD, events, timeout=2.0)  # no gateway serves
    assert [r.error.code.value for r in replies if hasattr(r, "error")] == ["unavailable"] * 2


async def test_a_reply_of_the_wrong_length_is_unavailable_for_each_event(client: Client) -> None:
    async def one_reply_too_few(msg: Any) -> None:
        await msg.respond(b'[{"ok": true, "seq": 1, "duplicate": false}]')

    await client.subscribe(f"onestop.submit.{ev.WARD}", cb=one_reply_too_few)
    replies = await submit_batch(client, ev.WARD, [ev.wire(ev.copy("A")), ev.wire(ev.copy("B"))])
    assert [r.error.code.value for r in replies if hasattr(r, "error")] == ["unavailable"] * 2
    assert "answered 1 replies for 2 events" in replies[0].error.message  # type: ignore[union-attr]


class _VanishingIndex(EventIndex):
    """An index whose entries are there when created and gone when read (what a write racing
    the index's own expiry would look like)."""

    async def create(self, unit: str, event_id: str, claim: Claim) -> int | None:
        return None

    async def get(self, unit: str, event_id: str) -> Entry | None:
        return None


async def test_an_index_entry_that_vanishes_mid_write_is_unavailable(
    gateway: Gateway, nats_server: NatsServer, registry: Registry, client: Client
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = JetStream(nc, 2.0)
        service = SubmitService(Intake(EventLog(js), _VanishingIndex(js)), registry)
        reply = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(ev.copy("SC-1"))))
    finally:
        await nc.close()
    assert error_of(reply) == ("unavailable", None)
    assert "index changed during the write" in reply["error"]["message"]
    assert await log_size(client) == 0


async def test_a_dossier_changed_by_another_writer_every_time_is_unavailable(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"]
    subject = f"onestop.events.{ev.WARD}.dossier.HS-1"
    interlopers = itertools.count()

    async def another_writer_first(to: str) -> None:
        """Before each of our writes, another writer appends to the dossier (a copy of its last
        event, so the state stays one the lifecycle accepts)."""
        if to != subject:
            return
        last = await client.request(f"$JS.API.DIRECT.GET.{EVENTS_STREAM}.{subject}", b"")
        headers = {DOSSIER_STATE: (last.headers or {})[DOSSIER_STATE],
                   "Nats-Msg-Id": f"interloper-{next(interlopers)}"}  # fmt: skip
        await client.jetstream().publish(subject, last.data, headers=headers)

    service, nc = await submit_service(
        nats_settings.servers[0], registry, faulty_jetstream(before=another_writer_first)
    )
    try:
        change = ev.dossier_event("supplement_requested", "HS-1")
        reply = msgspec.json.decode(await service.submit(ev.WARD, ev.wire(change)))
    finally:
        await nc.close()
    assert error_of(reply) == ("unavailable", None)
    assert "many writers" in reply["error"]["message"]
    assert next(interlopers) == RACE_RETRIES


# -- the bounds of a field's form (schemas.events): `invalid` naming the field ------------------


class Bound(NamedTuple):
    name: str
    """The annotated type or field that carries the bound in schemas/events.py."""
    field: str
    """The field a refusal names."""
    min_length: int | None
    max_length: int
    contract: str
    """The contract's sentence: the bound itself where the contract writes it, else the rule
    that a field of the wrong form is `invalid` (the bound is then the project's own, kept so
    that no one field can fill the log, and written in the README's table of refusals)."""


BOUNDS = [
    Bound("EntityId", "dossier_id", 1, 128, "string, 1–128 chars"),
    Bound("UnitCode", "unit", 2, 16, INVALID),
    Bound("ProcedureCode", "procedure_code", 1, 64, INVALID),
    Bound("AgencyCode", "to_agency", 1, 64, INVALID),
    Bound("Note", "note", None, 2000, INVALID),
    Bound("name", "applicant.name", None, 256, INVALID),
    Bound("id_number", "applicant.id_number", None, 32, INVALID),
]


def schema_bounds() -> dict[str, tuple[int | None, int | None]]:
    """Every length bound in schemas/events.py, by the name it is declared under."""
    tree = ast.parse((ROOT / "schemas" / "events.py").read_text(encoding="utf-8"))
    found: dict[str, tuple[int | None, int | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "Meta":
                    kw: dict[str | None, int] = {
                        k.arg: k.value.value
                        for k in call.keywords
                        if isinstance(k.value, ast.Constant) and isinstance(k.value.value, int)
                    }
                    if "min_length" in kw or "max_length" in kw:
                        found[ast.unparse(target)] = (kw.get("min_length"), kw.get("max_length"))
    return found


def test_every_bound_of_a_fields_form_is_listed() -> None:
    assert schema_bounds() == {b.name: (b.min_length, b.max_length) for b in BOUNDS}


@pytest.mark.skipif(CONTRACT is None, reason="CONTRACT.md is not beside this checkout")
def test_every_bound_rests_on_the_contract_word_for_word() -> None:
    assert CONTRACT is not None
    contract = _normal(CONTRACT.read_text(encoding="utf-8"))
    assert [b.name for b in BOUNDS if _normal(b.contract) not in contract] == []


def _with(field: str, value: str) -> dict[str, Any]:
    if field == "dossier_id":
        return ev.received(value)
    if field == "unit":
        return {**ev.received("HS-B"), "unit": value}
    if field == "to_agency":
        return ev.dossier_event("transferred", "HS-B", to_agency=value)
    if field == "note":
        return ev.dossier_event("supplement_requested", "HS-B", note=value)
    if field.startswith("applicant."):
        return ev.received("HS-B", applicant={field.removeprefix("applicant."): value})
    return ev.received("HS-B", **{field: value})


@pytest.mark.parametrize("bound", BOUNDS, ids=[b.name for b in BOUNDS])
async def test_a_field_beyond_its_bound_is_invalid_naming_it_and_one_at_it_is_not(
    gateway: Gateway, client: Client, bound: Bound
) -> None:
    def submit_as(event: dict[str, Any]) -> Any:
        return submit(client, event["unit"], event)

    over = await submit_as(_with(bound.field, "x" * (bound.max_length + 1)))
    assert error_of(over) == ("invalid", bound.field)
    if bound.min_length is not None:
        under = await submit_as(_with(bound.field, "x" * (bound.min_length - 1)))
        assert error_of(under) == ("invalid", bound.field)
    if bound.field != "dossier_id":  # a later event needs the dossier received first
        assert (await submit(client, ev.WARD, ev.received("HS-B")))["ok"]
    at = await submit_as(_with(bound.field, "x" * bound.max_length))
    assert at["ok"] or error_of(at)[0] != "invalid", at  # a unit that long is just unknown
