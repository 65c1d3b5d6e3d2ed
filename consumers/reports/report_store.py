"""Reports as published (stream ONESTOP_REPORTS): reading the current ones, adding revisions.

The stream itself is the memory of what was published: a projector starting up reads the last
report of every subject, so after a crash it neither repeats a revision number nor republishes
figures that did not change. Each publish expects the subject's last sequence, so two projectors
can never publish the same revision twice.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from plumbing.jetstream import JetStream, WrongLastSequence
from plumbing.last_values import last_per_subject
from plumbing.streams import REPORTS_STREAM
from plumbing.subjects import REPORTS_PREFIX, report_subject
from schemas.report import Report

REPORT_DECODER = msgspec.json.Decoder(Report)


class Published(msgspec.Struct, frozen=True):
    report: Report
    seq: int


async def current_reports(client: Client) -> dict[tuple[str, str], Published]:
    """The last report of every (unit, period), read with one ordered consumer."""
    out: dict[tuple[str, str], Published] = {}
    for msg in await last_per_subject(client, REPORTS_STREAM, f"{REPORTS_PREFIX}.>"):
        report = REPORT_DECODER.decode(msg.data)
        out[(report.unit, report.period)] = Published(report, msg.metadata.sequence.stream)
    return out


async def current_report(js: JetStream, unit: str, period: str) -> Published | None:
    """One direct get: the current report of a unit and period, or None."""
    msg = await js.last_on_subject(REPORTS_STREAM, report_subject(unit, period))
    return Published(REPORT_DECODER.decode(msg.data), msg.seq) if msg is not None else None


async def publish(js: JetStream, report: Report, expected_seq: int) -> int:
    """Append a revision; raises WrongLastSequence if another projector published first."""
    ack = await js.publish(
        report_subject(report.unit, report.period),
        msgspec.json.encode(report),
        {"Nats-Msg-Id": f"{report.unit}.{report.period}.r{report.revision}"},
        expected_last_subject_seq=expected_seq,
    )
    return ack.seq


__all__ = [
    "REPORT_DECODER",
    "Published",
    "WrongLastSequence",
    "current_report",
    "current_reports",
    "publish",
]
