"""CONTRACT section 6 as one pure fold: events in, in log order; monthly figures out.

No I/O and no clock: the live projector, rebuilds and audits all use this one `ReportBook`, so a
report is the same whoever computes it.

How it stays small and fast. Memory grows with dossiers, never with events: a dossier is a row of
compact facts in parallel arrays (times as int microseconds since the epoch, so comparisons are
exact to the wire's precision), plus its deadline changes when it has any. Each dossier
*contributes* to per (report unit, period) counters; when a dossier's facts change, its old
contribution is taken away and its new one added, whatever order the `occurred_at` values came in.
In-progress counts are difference arrays over periods: a dossier within its deadline at the ends
of periods A..B-1 adds +1 at A and -1 at B, so an open dossier needs no horizon and
`in_progress(P)` is a prefix sum. `carried_over(P)` is `in_progress(P - 1)`, which is exactly
"received before start, neither resolved nor withdrawn before start".

Boundaries (the contract's "before X" is read as strictly earlier everywhere):

- an event exactly at a period's start (00:00:00+07:00) belongs to that period;
- a resolution exactly at its due_at is not late (late means strictly after);
- a deadline change judges a resolution only if it occurred strictly before it, and counts for
  the in-progress split at a period's end only if it occurred strictly before that end; a
  dossier closed exactly at a period's end is still in progress at that end (it closed in the
  next period);
- a dossier whose due_at equals the end is within its deadline (overdue means due strictly
  before the end);
- among deadline changes that qualify, the one with the latest `occurred_at` is "the last";
  equal times go to the one later in the log.

Robustness: the gateway refuses lifecycle breaks, but a projector must never crash on the log.
Here an event for an unknown dossier, a second `dossier.received`, a second closing event and a
second `dossier.result_returned` are ignored. Documents and copies are counted per event: the
gateway guarantees each id once, and remembering every id would make memory grow with events.

Rates (`on_time_rate`, documents `rate`) are rounded to 4 decimals half-to-even on the exact
fraction (not on a float), and are None when the denominator is 0.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import msgspec

from schemas.events import (
    Channel,
    CopyCertified,
    DocumentIssued,
    DossierDeadlineChanged,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierWithdrawn,
    Event,
    ReturnMethod,
)
from schemas.periods import VN, period_index, period_name
from schemas.report import (
    CopyFigures,
    DocumentFigures,
    DossierFigures,
    Figures,
    InProgress,
    NewByChannel,
    OnlineProcedures,
    Received,
    Resolved,
)

__all__ = ["ReportBook", "rate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_VN_SHIFT_US = 7 * 3_600_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

NEVER = 1 << 62
"""The close time of a dossier that is still open: after every real instant."""
_INF = 1 << 40
"""A period index after every real period: the end of an open-ended in-progress span."""

# Counter fields of one (report unit, period) cell.
NEW_DIRECT, NEW_ONLINE, NEW_POSTAL = 0, 1, 2
EARLY, ON_TIME, LATE = 3, 4, 5
WITHDRAWN = 6
WITHIN_DELTA, OVERDUE_DELTA = 7, 8  # difference arrays: prefix sums give in_progress
RETURNED_POST = 9
DOCS, DOCS_SIGNED_SENT = 10, 11
COPIES, COPIES_ELECTRONIC = 12, 13
NF = 14

_CHANNEL_FIELD = {
    Channel.DIRECT: NEW_DIRECT,
    Channel.ONLINE: NEW_ONLINE,
    Channel.POSTAL: NEW_POSTAL,
}

# Bits of a dossier's flags byte.
_RESOLVED = 1
_WITHDRAWN = 2
_RETURNED = 4

_SNAPSHOT_VERSION = 1


def _us(ts: datetime) -> int:
    """Microseconds since the epoch: exact (floats are not), and cheap to store in an array."""
    return (ts - _EPOCH) // _ONE_US


def _vn_day(us: int) -> int:
    """Days since 1970-01-01 on Vietnam's calendar."""
    return (us + _VN_SHIFT_US) // _DAY_US


_DAY_PERIOD: dict[int, int] = {}
_PERIOD_END: dict[int, int] = {}


def _period(us: int) -> int:
    """The period index of an instant; memoised per day (few days, many events)."""
    day = (us + _VN_SHIFT_US) // _DAY_US
    p = _DAY_PERIOD.get(day)
    if p is None:
        d = date.fromordinal(day + _EPOCH_ORDINAL)
        p = _DAY_PERIOD[day] = d.year * 12 + d.month - 1
    return p


_NAMES: dict[int, str] = {}


def _name(p: int) -> str:
    name = _NAMES.get(p)
    if name is None:
        name = _NAMES[p] = period_name(p)
    return name


def _period_end_us(p: int) -> int:
    end = _PERIOD_END.get(p)
    if end is None:
        year, month0 = divmod(p + 1, 12)
        end = _PERIOD_END[p] = _us(datetime(year, month0 + 1, 1, tzinfo=VN))
    return end


def rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator to 4 decimals, half to even on the exact fraction; None for /0."""
    if denominator == 0:
        return None
    q, r = divmod(numerator * 10_000, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2 == 1):
        q += 1
    return q / 10_000


def _span(out: dict[int, int], start: int, stop: int, due_p: int) -> None:
    """In progress at the ends of periods [start, stop) with a due_at in period `due_p`.

    At the end of period p the dossier is overdue iff due_at < end(p), i.e. iff due_p <= p.
    """
    m = min(stop, max(start, due_p))
    if start < m:
        k = start * NF + WITHIN_DELTA
        out[k] = out.get(k, 0) + 1
        if m < _INF:
            k = m * NF + WITHIN_DELTA
            out[k] = out.get(k, 0) - 1
    if m < stop:
        k = m * NF + OVERDUE_DELTA
        out[k] = out.get(k, 0) + 1
        if stop < _INF:
            k = stop * NF + OVERDUE_DELTA
            out[k] = out.get(k, 0) - 1


def _due_before(due0: int, changes: list[tuple[int, int]] | None, instant: int) -> int:
    """due_at as last changed strictly before `instant` (latest occurred_at; ties: later in log)."""
    due = due0
    if changes:
        best = -1 << 63
        for occurred, new_due in changes:
            if occurred < instant and occurred >= best:
                best, due = occurred, new_due
    return due


class _Snapshot(msgspec.Struct, array_like=True, frozen=True):
    version: int
    byteorder: str
    units: list[str]
    chains: list[tuple[int, ...]]
    first: list[int]
    latest: int
    index: dict[str, dict[str, int]]
    chain: bytes
    recv: bytes
    due: bytes
    close: bytes
    flags: bytes
    changes: dict[int, list[tuple[int, int]]]
    cells: list[dict[int, list[int]]]
    online: list[tuple[int, int, int, list[str]]]


class ReportBook:
    """Every report unit's monthly figures, kept up to date one event at a time.

    `apply` events in log order; read `figures`, `periods`, `units`. `snapshot`/`restore` let a
    projector resume without replaying the log.
    """

    def __init__(self) -> None:
        # Report units and the chains (unit, parent, ...) dossiers and events count in.
        self._units: list[str] = []
        self._unit_ix: dict[str, int] = {}
        self._chains: list[tuple[int, ...]] = []
        self._chain_ix: dict[tuple[str, ...], int] = {}
        self._chains_of: list[list[int]] = []  # report unit -> chains that contain it
        self._first: list[int] = []  # report unit -> period of its first event (_INF: none)
        self._latest = -1  # latest period holding any event; -1 while empty
        # Dossiers: (event.unit, dossier_id) -> row in the parallel arrays below.
        self._index: dict[str, dict[str, int]] = {}
        self._chain = array("I")  # the chain the dossier was received under
        self._recv = array("q")  # received at, microseconds since the epoch
        self._due = array("q")  # due_at given on receipt
        self._close = array("q")  # resolved or withdrawn at; NEVER while open
        self._flags = array("B")  # _RESOLVED | _WITHDRAWN | _RETURNED
        self._changes: dict[int, list[tuple[int, int]]] = {}  # row -> [(occurred, due_at)]
        # Aggregates: report unit -> period -> NF counters.
        self._cells: list[dict[int, list[int]]] = []
        # (report unit, period, level) -> procedure codes received online (a set: never shrinks).
        self._online: dict[tuple[int, int, int], set[str]] = {}
        # For provisional figures: open rows per chain; closed rows per (chain, close period).
        self._open: list[set[int]] = []
        self._closed: dict[tuple[int, int], array[int]] = {}

    # -- reading ------------------------------------------------------------------------------

    def units(self) -> list[str]:
        """Every report unit (event units and their ancestors) with at least one counted event."""
        return [u for u, first in zip(self._units, self._first, strict=True) if first < _INF]

    def latest_period(self) -> str | None:
        return None if self._latest < 0 else period_name(self._latest)

    def periods(self, unit: str) -> list[str]:
        """From the unit's first event's period to the book's latest period, both included."""
        ru = self._unit_ix.get(unit)
        if ru is None or self._first[ru] >= _INF:
            return []
        return [period_name(p) for p in range(self._first[ru], self._latest + 1)]

    def figures(self, unit: str, period: str, as_of: datetime | None = None) -> Figures:
        """The unit's figures for `period`, final, or provisional as of `as_of` before its end."""
        p = period_index(period)
        ru = self._unit_ix.get(unit)
        cells = self._cells[ru] if ru is not None else {}
        zero = [0] * NF
        c = cells.get(p, zero)
        carried = within = overdue = 0
        for q, cell in cells.items():
            if q < p:
                carried += cell[WITHIN_DELTA] + cell[OVERDUE_DELTA]
            if q <= p:
                within += cell[WITHIN_DELTA]
                overdue += cell[OVERDUE_DELTA]
        if as_of is not None and ru is not None:
            instant = _us(as_of)
            if instant < _period_end_us(p):
                within, overdue = self._in_progress_at(ru, instant)
        new = c[NEW_DIRECT] + c[NEW_ONLINE] + c[NEW_POSTAL]
        resolved = c[EARLY] + c[ON_TIME] + c[LATE]
        level3 = len(self._online.get((ru, p, 3), ())) if ru is not None else 0
        level4 = len(self._online.get((ru, p, 4), ())) if ru is not None else 0
        return Figures(
            dossiers=DossierFigures(
                received=Received(
                    total=carried + new,
                    carried_over=carried,
                    new=new,
                    new_by_channel=NewByChannel(
                        direct=c[NEW_DIRECT], online=c[NEW_ONLINE], postal=c[NEW_POSTAL]
                    ),
                ),
                resolved=Resolved(
                    total=resolved,
                    early=c[EARLY],
                    on_time=c[ON_TIME],
                    late=c[LATE],
                    on_time_rate=rate(c[EARLY] + c[ON_TIME], resolved),
                ),
                withdrawn=c[WITHDRAWN],
                in_progress=InProgress(
                    total=within + overdue, within_deadline=within, overdue=overdue
                ),
                returned_by_post=c[RETURNED_POST],
                online_procedures=OnlineProcedures(level3=level3, level4=level4),
            ),
            documents=DocumentFigures(
                issued=c[DOCS],
                signed_and_sent=c[DOCS_SIGNED_SENT],
                rate=rate(c[DOCS_SIGNED_SENT], c[DOCS]),
            ),
            copies=CopyFigures(certified=c[COPIES], electronic=c[COPIES_ELECTRONIC]),
        )

    def _in_progress_at(self, ru: int, instant: int) -> tuple[int, int]:
        """(within, overdue) as of an instant: only open rows and rows closed at or after it."""
        since = _period(instant)
        within = overdue = 0
        recv, due, close, changes = self._recv, self._due, self._close, self._changes
        for chain in self._chains_of[ru]:
            rows: list[Iterable[int]] = [self._open[chain]]
            rows += [r for (ch, p), r in self._closed.items() if ch == chain and p >= since]
            for group in rows:
                for i in group:
                    if recv[i] < instant and close[i] >= instant:
                        if _due_before(due[i], changes.get(i), instant) < instant:
                            overdue += 1
                        else:
                            within += 1
        return within, overdue

    # -- applying -----------------------------------------------------------------------------

    def apply(self, event: Event, report_units: Sequence[str]) -> str | None:
        """Count one event (the next in log order) in each of `report_units`.

        `report_units` is the event's unit followed by its ancestors. Returns the earliest period
        whose figures, or whose existence, may have changed for those report units (that period
        and every later one), or None when nothing did. A dossier's later events count in the
        units it was received under.
        """
        if isinstance(event, DossierReceived):
            return self._received(event, report_units)
        if isinstance(event, DocumentIssued):
            p = _period(_us(event.occurred_at))
            chain = self._chains[self._intern(report_units)]
            self._bump(chain, p, DOCS)
            if event.digitally_signed and event.sent_via_axis:
                self._bump(chain, p, DOCS_SIGNED_SENT)
            return _name(min(p, self._seen(chain, p)))
        if isinstance(event, CopyCertified):
            p = _period(_us(event.occurred_at))
            chain = self._chains[self._intern(report_units)]
            self._bump(chain, p, COPIES)
            if event.electronic:
                self._bump(chain, p, COPIES_ELECTRONIC)
            return _name(min(p, self._seen(chain, p)))
        rows = self._index.get(event.unit)
        i = rows.get(event.dossier_id) if rows is not None else None
        if i is None:
            return None  # unknown dossier: the gateway refuses it; never crash on the log
        occurred = _us(event.occurred_at)
        p = _period(occurred)
        chain = self._chains[self._chain[i]]
        changed = False
        if isinstance(event, DossierDeadlineChanged):
            old = self._contribution(i)
            self._changes.setdefault(i, []).append((occurred, _us(event.due_at)))
            self._shift(chain, old, self._contribution(i))
            changed = True  # also a provisional in-progress split may have moved
        elif isinstance(event, DossierResolved | DossierWithdrawn):
            if self._close[i] != NEVER:
                return None  # closed twice: ignored
            old = self._contribution(i)
            self._close[i] = occurred
            self._flags[i] |= _RESOLVED if isinstance(event, DossierResolved) else _WITHDRAWN
            self._shift(chain, old, self._contribution(i))
            self._open[self._chain[i]].discard(i)
            key = (self._chain[i], p)
            closed = self._closed.get(key)
            if closed is None:
                closed = self._closed[key] = array("I")
            closed.append(i)
            changed = True
        elif isinstance(event, DossierResultReturned):
            if self._flags[i] & _RETURNED:
                return None  # returned twice: ignored
            self._flags[i] |= _RETURNED
            if event.method is ReturnMethod.POSTAL:
                self._bump(chain, p, RETURNED_POST)
                changed = True
        earliest = min(p if changed else _INF, self._seen(chain, p))
        # supplement_requested and transferred change no figure
        return _name(earliest) if earliest < _INF else None

    def _received(self, event: DossierReceived, report_units: Sequence[str]) -> str | None:
        rows = self._index.get(event.unit)
        if rows is None:
            rows = self._index[event.unit] = {}
        if event.dossier_id in rows:
            return None  # received twice: ignored
        ch = self._intern(report_units)
        chain = self._chains[ch]
        recv = _us(event.occurred_at)
        p = _period(recv)
        i = len(self._recv)
        rows[event.dossier_id] = i
        self._chain.append(ch)
        self._recv.append(recv)
        self._due.append(_us(event.due_at))
        self._close.append(NEVER)
        self._flags.append(0)
        self._open[ch].add(i)
        self._bump(chain, p, _CHANNEL_FIELD[event.channel])
        level = event.service_level
        if event.channel is Channel.ONLINE and level in (3, 4):
            code = sys.intern(event.procedure_code)
            online = self._online
            for ru in chain:
                key = (ru, p, level)
                codes = online.get(key)
                if codes is None:
                    codes = online[key] = set()
                codes.add(code)
        self._shift(chain, {}, self._contribution(i))
        return _name(min(p, self._seen(chain, p)))

    def _contribution(self, i: int) -> dict[int, int]:
        """What row i adds to the counters, {period * NF + field: count}, from its facts alone."""
        out: dict[int, int] = {}
        recv_p = _period(self._recv[i])
        due0 = self._due[i]
        changes = self._changes.get(i)
        close = self._close[i]
        if close == NEVER:
            close_p = _INF
        else:
            close_p = _period(close)
            if self._flags[i] & _RESOLVED:
                due = _due_before(due0, changes, close)
                if close > due:
                    field = LATE
                elif _vn_day(close) < _vn_day(due):
                    field = EARLY
                else:
                    field = ON_TIME
            else:
                field = WITHDRAWN
            out[close_p * NF + field] = 1
        if recv_p >= close_p:
            return out
        if not changes:
            _span(out, recv_p, close_p, _period(due0))
            return out
        # The due_at in force at the end of period p is decided by the changes that occurred in
        # periods <= p, so it can only move at the periods of changes: split the span there.
        cuts = sorted(
            {recv_p} | {q for q in (_period(o) for o, _ in changes) if recv_p < q < close_p}
        )
        for k, start in enumerate(cuts):
            stop = cuts[k + 1] if k + 1 < len(cuts) else close_p
            due = _due_before(due0, changes, _period_end_us(start))
            _span(out, start, stop, _period(due))
        return out

    def _shift(self, chain: tuple[int, ...], old: dict[int, int], new: dict[int, int]) -> None:
        """Replace a row's old contribution by its new one in every unit of its chain."""
        delta = dict(new)
        for k, v in old.items():
            delta[k] = delta.get(k, 0) - v
        for k, v in delta.items():
            if v:
                p, field = divmod(k, NF)
                for ru in chain:
                    cells = self._cells[ru]
                    cell = cells.get(p)
                    if cell is None:
                        cell = cells[p] = [0] * NF
                    cell[field] += v

    def _bump(self, chain: tuple[int, ...], p: int, field: int) -> None:
        for ru in chain:
            cells = self._cells[ru]
            cell = cells.get(p)
            if cell is None:
                cell = cells[p] = [0] * NF
            cell[field] += 1

    def _seen(self, chain: tuple[int, ...], p: int) -> int:
        """Note an event in period p; the earliest period this makes exist, or _INF if none.

        When the book's latest period moves on, every unit gains the periods in between, not
        only those of `chain`: a projector must watch `latest_period()` for that.
        """
        earliest = _INF
        if p > self._latest:
            earliest = p if self._latest < 0 else self._latest + 1
            self._latest = p
        first = self._first
        for ru in chain:
            if p < first[ru]:
                first[ru] = p
                earliest = min(earliest, p)
        return earliest

    def _intern(self, report_units: Sequence[str]) -> int:
        key = report_units if isinstance(report_units, tuple) else tuple(report_units)
        ch = self._chain_ix.get(key)
        if ch is None:
            if not key:
                raise ValueError("report_units must name at least the event's unit")
            ch = len(self._chains)
            self._chains.append(tuple(self._unit(u) for u in key))
            self._chain_ix[key] = ch
            self._open.append(set())
            for ru in self._chains[ch]:
                if ch not in self._chains_of[ru]:
                    self._chains_of[ru].append(ch)
        return ch

    def _unit(self, unit: str) -> int:
        ru = self._unit_ix.get(unit)
        if ru is None:
            ru = self._unit_ix[unit] = len(self._units)
            self._units.append(unit)
            self._first.append(_INF)
            self._cells.append({})
            self._chains_of.append([])
        return ru

    # -- snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything needed to carry on exactly where this book is (msgpack)."""
        chain_names = [tuple(self._units[ru] for ru in ch) for ch in self._chains]
        assert all(self._chain_ix[n] == k for k, n in enumerate(chain_names))
        return msgspec.msgpack.encode(
            _Snapshot(
                version=_SNAPSHOT_VERSION,
                byteorder=sys.byteorder,
                units=self._units,
                chains=self._chains,
                first=self._first,
                latest=self._latest,
                index=self._index,
                chain=self._chain.tobytes(),
                recv=self._recv.tobytes(),
                due=self._due.tobytes(),
                close=self._close.tobytes(),
                flags=self._flags.tobytes(),
                changes=self._changes,
                cells=self._cells,
                online=[
                    (ru, p, lvl, sorted(codes)) for (ru, p, lvl), codes in self._online.items()
                ],
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> ReportBook:
        """The book a `snapshot` was taken of; indexes for provisional figures are rebuilt."""
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
        if snap.version != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported report book snapshot version {snap.version}")
        book = cls()
        for unit in snap.units:
            book._unit(unit)
        for ch, chain in enumerate(snap.chains):
            book._chains.append(tuple(chain))
            book._chain_ix[tuple(snap.units[ru] for ru in chain)] = ch
            book._open.append(set())
            for ru in chain:
                book._chains_of[ru].append(ch)
        book._first = list(snap.first)
        book._latest = snap.latest
        book._index = snap.index
        for arr, raw in (
            (book._chain, snap.chain),
            (book._recv, snap.recv),
            (book._due, snap.due),
            (book._close, snap.close),
            (book._flags, snap.flags),
        ):
            arr.frombytes(raw)
            if snap.byteorder != sys.byteorder:
                arr.byteswap()
        book._changes = {i: [(o, d) for o, d in ch] for i, ch in snap.changes.items()}
        book._cells = snap.cells
        book._online = {
            (ru, p, lvl): {sys.intern(c) for c in codes} for ru, p, lvl, codes in snap.online
        }
        for i, (ch, close) in enumerate(zip(book._chain, book._close, strict=True)):
            if close == NEVER:
                book._open[ch].add(i)
            else:
                key = (ch, _period(close))
                closed = book._closed.get(key)
                if closed is None:
                    closed = book._closed[key] = array("I")
                closed.append(i)
        return book
