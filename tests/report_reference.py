"""Section 6 read word for word, and random event streams to hold the report rules against it.

Shared by the pure rules' property test and the pipeline's (gateway, log, projector) one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

from hypothesis import strategies as st

from schemas.events import (
    Channel,
    CopyCertified,
    DeadlineReason,
    DocumentIssued,
    DossierDeadlineChanged,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierSupplementRequested,
    DossierTransferred,
    DossierWithdrawn,
    Event,
    Outcome,
    ReturnMethod,
    ServiceLevel,
)

CHAINS: dict[str, tuple[str, ...]] = {
    "21550": ("21550", "540", "52"),
    "21553": ("21553", "540", "52"),
    "540": ("540", "52"),
}

VN_TZ = timezone(timedelta(hours=7))
UNITS = ("21550", "21553", "540")


def ref_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = int(period[:4]), int(period[5:])
    start = datetime(year, month, 1, tzinfo=VN_TZ)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=VN_TZ)
    return start, end


def ref_period_of(ts: datetime) -> str:
    local = ts.astimezone(VN_TZ)
    return f"{local.year:04d}-{local.month:02d}"


def ref_rate(numerator: int, denominator: int) -> float | None:
    return float(round(Fraction(numerator, denominator), 4)) if denominator else None


@dataclass
class RefDossier:
    chain: tuple[str, ...]
    received: DossierReceived
    changes: list[DossierDeadlineChanged] = field(default_factory=list)
    closing: DossierResolved | DossierWithdrawn | None = None

    def closed_before(self, instant: datetime) -> bool:
        return self.closing is not None and self.closing.occurred_at < instant

    def due_before(self, instant: datetime) -> datetime:
        """due_at as last changed before the instant: latest occurred_at, ties to the log."""
        due, last = self.received.due_at, None
        for change in self.changes:
            if change.occurred_at < instant and (last is None or change.occurred_at >= last):
                due, last = change.due_at, change.occurred_at
        return due


class Reference:
    """Section 6 read word for word: loops over every dossier and event for every figure."""

    def __init__(self, stream: list[tuple[Event, tuple[str, ...]]]) -> None:
        self.dossiers: dict[tuple[str, str], RefDossier] = {}
        self.counted: list[tuple[tuple[str, ...], Event]] = []  # events not ignored
        returned_once: set[tuple[str, str]] = set()
        for event, chain in stream:
            if isinstance(event, DossierReceived):
                key = (event.unit, event.dossier_id)
                if key in self.dossiers:
                    continue
                self.dossiers[key] = RefDossier(chain, event)
            elif not isinstance(event, DocumentIssued | CopyCertified):
                key = (event.unit, event.dossier_id)
                dossier = self.dossiers.get(key)
                if dossier is None:
                    continue
                chain = dossier.chain
                if isinstance(event, DossierDeadlineChanged):
                    dossier.changes.append(event)
                elif isinstance(event, DossierResolved | DossierWithdrawn):
                    if dossier.closing is not None:
                        continue
                    dossier.closing = event
                elif isinstance(event, DossierResultReturned):
                    if key in returned_once:
                        continue
                    returned_once.add(key)
            self.counted.append((chain, event))

    def units(self) -> set[str]:
        return {unit for chain, _ in self.counted for unit in chain}

    def periods(self, unit: str) -> list[str]:
        mine = [ref_period_of(e.occurred_at) for chain, e in self.counted if unit in chain]
        if not mine:
            return []
        last = max(ref_period_of(e.occurred_at) for _, e in self.counted)
        out, period = [], min(mine)
        while period <= last:
            out.append(period)
            period = ref_period_of(ref_bounds(period)[1])
        return out

    def figures(self, unit: str, period: str, as_of: datetime | None = None) -> dict[str, object]:
        start, end = ref_bounds(period)
        cut = end if as_of is None or as_of >= end else as_of

        def in_p(ts: datetime) -> bool:
            return start <= ts < end

        mine = [d for d in self.dossiers.values() if unit in d.chain]
        events = [e for chain, e in self.counted if unit in chain]
        carried = sum(
            1 for d in mine if d.received.occurred_at < start and not d.closed_before(start)
        )
        new = {c: 0 for c in ("direct", "online", "postal")}
        early = on_time = late = withdrawn_ = within = overdue = 0
        levels: dict[int, set[str]] = {3: set(), 4: set()}
        for d in mine:
            r = d.received
            if in_p(r.occurred_at):
                new[r.channel.value] += 1
                if r.channel is Channel.ONLINE and r.service_level in (3, 4):
                    levels[r.service_level].add(r.procedure_code)
            if isinstance(d.closing, DossierResolved) and in_p(d.closing.occurred_at):
                resolved_at = d.closing.occurred_at
                due = d.due_before(resolved_at)
                if resolved_at > due:
                    late += 1
                elif resolved_at.astimezone(VN_TZ).date() < due.astimezone(VN_TZ).date():
                    early += 1
                else:
                    on_time += 1
            if isinstance(d.closing, DossierWithdrawn) and in_p(d.closing.occurred_at):
                withdrawn_ += 1
            if r.occurred_at < cut and not d.closed_before(cut):
                if d.due_before(cut) < cut:
                    overdue += 1
                else:
                    within += 1
        docs = [e for e in events if isinstance(e, DocumentIssued) and in_p(e.occurred_at)]
        signed_sent = sum(1 for e in docs if e.digitally_signed and e.sent_via_axis)
        copies = [e for e in events if isinstance(e, CopyCertified) and in_p(e.occurred_at)]
        posts = [
            e
            for e in events
            if isinstance(e, DossierResultReturned)
            and e.method is ReturnMethod.POSTAL
            and in_p(e.occurred_at)
        ]
        total_new = sum(new.values())
        resolved_total = early + on_time + late
        return {
            "dossiers": {
                "received": {
                    "total": carried + total_new,
                    "carried_over": carried,
                    "new": total_new,
                    "new_by_channel": new,
                },
                "resolved": {
                    "total": resolved_total,
                    "early": early,
                    "on_time": on_time,
                    "late": late,
                    "on_time_rate": ref_rate(early + on_time, resolved_total),
                },
                "withdrawn": withdrawn_,
                "in_progress": {
                    "total": within + overdue,
                    "within_deadline": within,
                    "overdue": overdue,
                },
                "returned_by_post": len(posts),
                "online_procedures": {"level3": len(levels[3]), "level4": len(levels[4])},
            },
            "documents": {
                "issued": len(docs),
                "signed_and_sent": signed_sent,
                "rate": ref_rate(signed_sent, len(docs)),
            },
            "copies": {
                "certified": len(copies),
                "electronic": sum(1 for e in copies if e.electronic),
            },
        }


_BOUNDARIES = [datetime(2021, month, 1, tzinfo=VN_TZ) for month in (2, 3, 4, 5)] + [
    datetime(2021, 3, 15, tzinfo=VN_TZ),
    datetime(2021, 4, 15, 17, tzinfo=VN_TZ),
]
_SMALL = [timedelta(microseconds=1), timedelta(seconds=1), timedelta(hours=1)]
_STEPS = [
    timedelta(0),
    *_SMALL,
    timedelta(hours=7),
    timedelta(hours=17),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=12),
    timedelta(days=31),
]
_OFFSETS = sorted({s for s in _STEPS} | {-s for s in _STEPS})

tz_choice = st.sampled_from([UTC, VN_TZ])
instants = st.one_of(
    st.builds(lambda b, o: b + o, st.sampled_from(_BOUNDARIES), st.sampled_from(_OFFSETS)),
    st.builds(
        lambda s: datetime(2021, 2, 1, tzinfo=VN_TZ) + timedelta(seconds=s),
        st.integers(0, 110 * 86_400),
    ),
)
durations = st.one_of(
    st.sampled_from(_STEPS), st.builds(lambda s: timedelta(seconds=s), st.integers(0, 50 * 86_400))
)
positive = st.one_of(
    st.sampled_from(_STEPS[1:]),
    st.builds(lambda s: timedelta(seconds=s), st.integers(1, 50 * 86_400)),
)


def later(t: datetime, *, strictly: bool = False) -> st.SearchStrategy[datetime]:
    """An instant at or after t (after, if strictly): often one of the boundary instants."""
    step = positive if strictly else durations
    return st.one_of(
        st.builds(lambda d: t + d, step),
        instants.filter(lambda i: i > t if strictly else i >= t),
    )


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """Dossiers, documents and copies of three units, interleaved, late and out of order."""
    sequences: list[list[Event]] = []
    n = itertools.count()

    def eid() -> str:
        return f"e{next(n)}"

    def ts(instant: datetime) -> datetime:
        return instant.astimezone(draw(tz_choice))

    for k in range(draw(st.integers(1, 10))):
        unit = draw(st.sampled_from(UNITS))
        dossier = f"000.00.21.H08-2104{k:02d}-000{k}"
        t0 = draw(instants)
        channel = draw(st.sampled_from(list(Channel)))
        levels: list[ServiceLevel | None] = [3, 4] if channel is Channel.ONLINE else [None, 2]
        level = draw(st.sampled_from(levels))
        seq: list[Event] = [
            DossierReceived(
                event_id=eid(),
                unit=unit,
                occurred_at=ts(t0),
                dossier_id=dossier,
                procedure_code=draw(st.sampled_from(["1.001612", "2.000889", "1.003003"])),
                channel=channel,
                service_level=level,
                due_at=ts(draw(later(t0, strictly=True))),
            )
        ]
        kinds = ["deadline", "deadline", "supplement", "transfer", "resolve", "withdraw", "return"]
        for kind in draw(st.lists(st.sampled_from(kinds), max_size=6)):
            when = draw(later(t0))  # never before the receipt, in no particular order
            eid_, at_ = eid(), ts(when)
            event: Event
            if kind == "deadline":
                event = DossierDeadlineChanged(
                    event_id=eid_,
                    unit=unit,
                    occurred_at=at_,
                    dossier_id=dossier,
                    due_at=ts(draw(later(when, strictly=True))),
                    reason=draw(st.sampled_from(list(DeadlineReason))),
                )
            elif kind == "supplement":
                event = DossierSupplementRequested(
                    event_id=eid_, unit=unit, occurred_at=at_, dossier_id=dossier
                )
            elif kind == "transfer":
                event = DossierTransferred(
                    event_id=eid_,
                    unit=unit,
                    occurred_at=at_,
                    dossier_id=dossier,
                    to_agency="000.00.12.H08",
                    interconnect=draw(st.booleans()),
                )
            elif kind == "resolve":
                event = DossierResolved(
                    event_id=eid_,
                    unit=unit,
                    occurred_at=at_,
                    dossier_id=dossier,
                    outcome=draw(st.sampled_from(list(Outcome))),
                )
            elif kind == "withdraw":
                event = DossierWithdrawn(
                    event_id=eid_, unit=unit, occurred_at=at_, dossier_id=dossier
                )
            else:
                event = DossierResultReturned(
                    event_id=eid_,
                    unit=unit,
                    occurred_at=at_,
                    dossier_id=dossier,
                    method=draw(st.sampled_from(list(ReturnMethod))),
                )
            seq.append(event)
        sequences.append(seq)
    for _ in range(draw(st.integers(0, 4))):
        unit = draw(st.sampled_from(UNITS))
        if draw(st.booleans()):
            event = DocumentIssued(
                event_id=eid(),
                unit=unit,
                occurred_at=ts(draw(instants)),
                document_id=f"{next(n)}/UBND-VP",
                digitally_signed=draw(st.booleans()),
                sent_via_axis=draw(st.booleans()),
            )
        else:
            event = CopyCertified(
                event_id=eid(),
                unit=unit,
                occurred_at=ts(draw(instants)),
                certification_id=f"{next(n)}/SCT-BS",
                electronic=draw(st.booleans()),
            )
        sequences.append([event])
    if draw(st.booleans()):  # an event for a dossier nobody received: must be ignored
        sequences.append(
            [
                DossierResolved(
                    event_id=eid(),
                    unit="21550",
                    occurred_at=ts(draw(instants)),
                    dossier_id="never-received",
                    outcome=Outcome.APPROVED,
                )
            ]
        )
    rnd = draw(st.randoms(use_true_random=False))
    out: list[Event] = []
    while sequences:  # interleave, keeping each dossier's own order
        seq = rnd.choice(sequences)
        out.append(seq.pop(0))
        if not seq:
            sequences.remove(seq)
    return out
