"""What the gateway counts of its own submissions and of the province's messages, in the process
that serves them.

Prometheus scrapes every process: each `lienthong serve` with the dashboard role exposes these
on its /metrics, beside the deployment's JetStream state that any process can read. Kept in
their own registry so the dashboard decides what it exposes, and a test can read them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas.replies import Accepted, Reply

REGISTRY = CollectorRegistry(auto_describe=True)

SUBMISSIONS = Counter(
    "lienthong_submissions",
    "Submissions answered on onestop.submit.<unit>, by outcome: accepted (every event ok or a "
    "duplicate), partly_refused, refused (every event refused, or the whole submission)",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "lienthong_events",
    "Events answered, by reply code: ok, duplicate, or the refusal's code (CONTRACT section 4)",
    ["code"],
    registry=REGISTRY,
)
INBOUND = Counter(
    "lienthong_inbound_messages",
    "Interconnection messages from the province answered on onestop.inbound.<unit>, by envelope "
    "kind (unreadable when it could not be read) and reply code: ok (stored now), duplicate (a "
    "resend, stored before: answered ok too), or the refusal's code (CONTRACT sections 4 and 5)",
    ["kind", "code"],
    registry=REGISTRY,
)
SUBMIT_SECONDS = Histogram(
    "lienthong_submit_seconds",
    "Time from a submission's arrival to its reply",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


def count_submission(replies: list[Reply], seconds: float) -> None:
    ok = 0
    for reply in replies:
        if isinstance(reply, Accepted):
            ok += 1
            EVENTS.labels("duplicate" if reply.duplicate else "ok").inc()
        else:
            EVENTS.labels(reply.error.code.value).inc()
    outcome = "accepted" if ok == len(replies) else "refused" if ok == 0 else "partly_refused"
    SUBMISSIONS.labels(outcome).inc()
    SUBMIT_SECONDS.observe(seconds)


def count_inbound(kind: str, code: str) -> None:
    """One province message: its kind (or `unreadable`) and its reply code, as for events."""
    INBOUND.labels(kind, code).inc()
