"""The demo's traffic: Quy Nhơn's 22 one-stop desks submitting March and April 2021.

Generated deterministically from a seed so that the report of the city (unit 540, its centre and
21 wards and communes) for 2021-04 is exactly the city's own published figures
(`reference/quy-nhon-2021-04.md`), whatever the seed. How:

1. every dossier is first planned as a *kind* whose fate fixes what it counts as ("received in
   March, open at the end of March, resolved early in April"); the counts per kind add up to the
   reference (`_check_plan`);
2. its times are drawn at random within what its kind allows, on the desks' working calendar
   (07:30-17:00 on working days, Vietnam's holidays off; the online portal at any hour);
3. each unit's events are put in the order its system submits them: mostly as they happen, some
   late (a March batch sent in April), some resent (duplicates, byte for byte).

Everything a projector must get right is in it: deadline extensions that turn late into on time,
supplement requests, interconnection transfers left open for the province, timestamps in `Z` and
`+07:00`, events around midnight at the month boundaries (2021-03-31T17:30:00Z is April in
Vietnam), resolutions at 00:30 in Vietnam on the due day (on time, though the UTC day is earlier).
Applicants' personal data is obviously synthetic ("Công dân mẫu 0001", "TEST00000001").
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import msgspec

from schemas.periods import VN
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

__all__ = ["CITY", "DemoTraffic", "city_units", "generate", "wire_events"]

CITY = "540"

# -- the targets ------------------------------------------------------------------------------

EXPECTED_CITY_APRIL = Figures(
    dossiers=DossierFigures(
        received=Received(
            total=5618,
            carried_over=1139,
            new=4479,
            new_by_channel=NewByChannel(direct=4240, online=214, postal=25),
        ),
        resolved=Resolved(total=4306, early=4020, on_time=248, late=38, on_time_rate=0.9912),
        withdrawn=0,
        in_progress=InProgress(total=1312, within_deadline=1262, overdue=50),
        returned_by_post=37,
        online_procedures=OnlineProcedures(level3=21, level4=13),
    ),
    documents=DocumentFigures(issued=1658, signed_and_sent=1605, rate=0.968),
    copies=CopyFigures(certified=36, electronic=30),
)
"""The city's published April 2021 figures (reference/quy-nhon-2021-04.md)."""

EXPECTED_CITY_MARCH = Figures(
    dossiers=DossierFigures(
        received=Received(
            total=4350,
            carried_over=0,
            new=4350,
            new_by_channel=NewByChannel(direct=4124, online=196, postal=30),
        ),
        resolved=Resolved(total=3170, early=2935, on_time=190, late=45, on_time_rate=0.9858),
        withdrawn=41,
        in_progress=InProgress(total=1139, within_deadline=1107, overdue=32),
        returned_by_post=29,
        online_procedures=OnlineProcedures(level3=18, level4=11),
    ),
    documents=DocumentFigures(issued=1512, signed_and_sent=1431, rate=0.9464),
    copies=CopyFigures(certified=28, electronic=19),
)
"""March as this demo makes it: plausible, not published; the log starts in March."""

# -- the plan: how many dossiers of each kind -------------------------------------------------

# Received in March and closed in March; received in March and carried into April ("c_");
# received in April ("a_"). The name says what the dossier counts as.
KIND_COUNTS: dict[str, int] = {
    "m_early": 2935,
    "m_on_time": 190,
    "m_late": 45,
    "m_withdrawn": 41,
    "c_early": 1002,
    "c_on_time": 70,
    "c_late_due_march": 12,  # overdue at the end of March, resolved late in April
    "c_late_due_april": 10,
    "c_overdue_due_march": 15,  # overdue at both month ends
    "c_overdue_due_april": 15,
    "c_within_long": 10,  # long procedures, due in May
    "c_within_extended": 5,  # overdue at the end of March, extended in April to May
    "a_early": 3018,
    "a_on_time": 178,
    "a_late": 16,
    "a_overdue": 20,
    "a_within": 1247,
}
VARIANTS: dict[str, list[tuple[str, int]]] = {
    "m_early": [("extension_saves", 15), ("supplement", 20)],
    "m_late": [("extended_still_late", 5)],
    "c_early": [("extension_saves", 20)],
    "c_on_time": [("extension_saves", 5)],
    "a_early": [("extension_saves", 25), ("supplement", 40)],
    "a_on_time": [("supplement_extends", 10), ("vn_midnight", 3), ("at_due", 1)],
    "a_late": [("extended_still_late", 6), ("hours_late", 3)],
    "a_within": [("interconnect", 36), ("supplement", 30)],
}
"""extension_saves: resolved after its first due_at but within the extended one (not late)."""

# Online dossiers per month and service level; codes used: the first N of each level's pool.
ONLINE = {"2021-03": {3: (128, 18), 4: (68, 11)}, "2021-04": {3: (140, 21), 4: (74, 13)}}
POSTAL = {"2021-03": 30, "2021-04": 25}
RETURNED_BY_POST = {"2021-03": 29, "2021-04": 37}
# issued, signed and sent, signed but not sent (the rest neither)
DOCUMENTS = {"2021-03": (1512, 1431, 50), "2021-04": (1658, 1605, 30)}
COPIES = {"2021-03": (28, 19), "2021-04": (36, 30)}  # certified, electronic

# -- the city ---------------------------------------------------------------------------------

WEIGHTS: dict[str, float] = {
    "540": 14,  # the city's own desk at its administrative centre
    "21550": 9,  # Nhơn Bình
    "21553": 8,  # Nhơn Phú
    "21556": 7,  # Đống Đa
    "21559": 7,  # Trần Quang Diệu
    "21562": 5,  # Hải Cảng
    "21565": 6,  # Quang Trung
    "21568": 4,  # Thị Nại
    "21571": 4,  # Lê Hồng Phong
    "21574": 3.5,  # Trần Hưng Đạo
    "21577": 6,  # Ngô Mây
    "21580": 3,  # Lý Thường Kiệt
    "21583": 3.5,  # Lê Lợi
    "21586": 3,  # Trần Phú
    "21589": 5,  # Bùi Thị Xuân
    "21592": 4.5,  # Nguyễn Văn Cừ
    "21595": 6.5,  # Ghềnh Ráng
    "21598": 2,  # Nhơn Lý
    "21601": 2,  # Nhơn Hội
    "21604": 1.5,  # Nhơn Hải
    "21607": 0.6,  # Nhơn Châu (island)
    "21991": 2,  # Phước Mỹ
}
"""How busy each desk is: bigger wards receive more."""

OVERDUE_BY_UNIT: dict[str, int] = {
    "540": 7,
    "21550": 9,
    "21553": 7,
    "21595": 6,
    "21556": 5,
    "21559": 4,
    "21565": 3,
    "21577": 3,
    "21562": 2,
    "21589": 2,
    "21592": 1,
    "21571": 1,
}
"""Where the 50 dossiers overdue at the end of April are: a clear "five most overdue" list."""

# (code, working days to resolve); a desk's usual procedures, realistic in form only.
PROCEDURES: list[tuple[str, int]] = [
    ("2.000815", 0),
    ("2.000843", 0),
    ("2.000884", 0),
    ("2.000908", 0),
    ("1.001193", 1),
    ("1.000894", 1),
    ("1.001022", 1),
    ("1.000656", 3),
    ("1.001612", 3),
    ("2.000528", 3),
    ("1.004227", 3),
    ("1.000689", 3),
    ("2.001157", 5),
    ("1.004873", 5),
    ("2.000794", 5),
    ("1.003005", 5),
    ("1.001699", 5),
    ("2.002163", 7),
    ("1.004946", 7),
    ("1.000775", 7),
    ("1.003583", 10),
    ("1.008878", 10),
    ("2.001253", 10),
    ("1.004088", 12),
    ("1.001045", 15),
    ("2.000460", 15),
    ("1.004221", 15),
    ("1.005412", 20),
    ("1.003456", 20),
    ("1.000045", 25),
    ("1.004199", 30),
    ("1.001990", 30),
    ("2.000286", 1),
    ("1.003518", 2),
    ("2.001023", 2),
    ("1.001124", 3),
    ("2.000354", 4),
    ("1.002755", 5),
    ("1.000094", 7),
    ("2.001944", 8),
    ("2.000635", 3),
    ("1.001758", 5),
    ("1.004415", 10),
]
_PROCEDURE_WEIGHTS = [9 if k <= 1 else 6 if k <= 5 else 3 if k <= 15 else 1 for _, k in PROCEDURES]
_ONLINE_POOL = [c for c, k in PROCEDURES if 1 <= k <= 20]
LEVEL3_PROCEDURES = _ONLINE_POOL[:21]
"""Procedures offered online at level 3 (the form online, papers at the desk); March used 18."""
LEVEL4_PROCEDURES = _ONLINE_POOL[21:34]
"""Procedures offered online at level 4 (entirely online); March used 11."""
_DEADLINE = dict(PROCEDURES)

CITY_AGENCIES = ["000.05.21.H08", "000.07.21.H08", "000.09.21.H08", "000.11.21.H08"]
PROVINCE_AGENCIES = ["000.00.12.H08", "000.00.15.H08", "000.00.19.H08"]

HOLIDAYS = {date(2021, 4, 21), date(2021, 4, 30), date(2021, 5, 3)}
"""Hùng Kings' day, Reunion day, Labour day's compensation (2021-05-01 was a Saturday)."""
START = datetime(2021, 3, 1, tzinfo=VN)
END_MARCH = datetime(2021, 4, 1, tzinfo=VN)
END_APRIL = datetime(2021, 5, 1, tzinfo=VN)
MONTH = {
    "2021-03": (date(2021, 3, 1), date(2021, 3, 31)),
    "2021-04": (date(2021, 4, 1), date(2021, 4, 30)),
}
ONE_DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def city_units() -> list[tuple[str, str]]:
    """(code, name) of the city and every unit whose parent it is, from the shipped registry."""
    raw = resources.files("schemas").joinpath("units-quy-nhon.json").read_text("utf-8")
    units = json.loads(raw)["units"]
    return [(u["code"], u["name"]) for u in units if u["code"] == CITY or u["parent"] == CITY]


class DemoTraffic(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    events_by_unit: dict[str, list[bytes]]
    """Each unit's events as wire JSON, in the order its system submits them, resends included."""
    distinct_events: int
    duplicates: int
    """Events submitted a second time, byte for byte (same event_id): never counted twice."""
    interconnect_transfers: int
    expected_city_april: Figures
    expected_city_march: Figures


# -- the working calendar ---------------------------------------------------------------------


def is_workday(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS


def next_workday(d: date) -> date:
    d += ONE_DAY
    while not is_workday(d):
        d += ONE_DAY
    return d


def add_workdays(d: date, k: int) -> date:
    for _ in range(k):
        d = next_workday(d)
    return d


def workdays(lo: date, hi: date) -> list[date]:
    out, d = [], lo
    while d <= hi:
        if is_workday(d):
            out.append(d)
        d += ONE_DAY
    return out


def at(d: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, second, tzinfo=VN)


def vn_day(ts: datetime) -> date:
    return ts.astimezone(VN).date()


# -- one dossier's life -----------------------------------------------------------------------


@dataclass
class Life:
    """A dossier's events as times (Vietnam) and facts, before they become wire events."""

    received: datetime
    due: datetime
    changes: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    supplement: datetime | None = None
    transfer: tuple[datetime, str, bool] | None = None
    close: tuple[datetime, str] | None = None  # (when, "resolved" | "withdrawn")
    returned: tuple[datetime, str] | None = None
    midnight: bool = False  # closed at 00:30 in Vietnam, stamped in UTC (the day before)


@dataclass
class Plan:
    kind: str
    variant: str
    month: str
    channel: str = "direct"
    level: int | None = None
    code: str | None = None  # fixed for online dossiers that cover a level's procedures
    forced_received: datetime | None = None
    unit: str = CITY
    life: Life | None = None


class Sampler:
    """Draws a life for a plan: a receipt, a due date, and what the kind says happens next."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def instant(
        self, day: date, after: datetime | None = None, before: datetime | None = None
    ) -> datetime | None:
        """A time at the desk on `day`, strictly after `after`, at or before `before`."""
        lo, hi = at(day, 7, 30), at(day, 17, 0)
        if after is not None:
            lo = max(lo, after + SECOND)
        if before is not None:
            hi = min(hi, before + SECOND)
        if lo >= hi:
            return None
        return lo + timedelta(seconds=self.rng.randrange(int((hi - lo).total_seconds())))

    def day(self, lo: date, hi: date) -> date | None:
        days = workdays(lo, hi)
        return self.rng.choice(days) if days else None

    def between(self, after: datetime, before: datetime) -> datetime | None:
        """A desk time strictly after `after` and strictly before `before`."""
        d = self.day(vn_day(after), vn_day(before))
        return None if d is None else self.instant(d, after, before - SECOND)

    def received(self, plan: Plan, lo: date, hi: date) -> datetime | None:
        if plan.forced_received is not None:
            return plan.forced_received
        if plan.channel == "online":  # the national portal takes dossiers at any hour
            span = (hi - lo).days + 1
            d = lo + timedelta(days=self.rng.randrange(span))
            secs = (
                self.rng.randrange(86_400)
                if self.rng.random() < 0.3
                else self.rng.randrange(7 * 3600, 22 * 3600)
            )
            return at(d, 0) + timedelta(seconds=secs, milliseconds=self.rng.randrange(1000))
        day = self.day(lo, hi)
        return None if day is None else self.instant(day)

    def due(self, received: datetime, k: int) -> datetime:
        d = vn_day(received)
        start = d if is_workday(d) and received < at(d, 16) else next_workday(d)
        day = add_workdays(start, k)
        if day > d and self.rng.random() < 0.1:
            return at(day, 11)  # half-day deadlines
        return at(day, 17)

    def extended(self, due: datetime, lo: int, hi: int) -> datetime:
        return at(add_workdays(vn_day(due), self.rng.randint(lo, hi)), 17)

    # resolution times by verdict, within [first, last] days of the resolving month

    def early(self, life: Life, due: datetime, first: date, last: date) -> datetime | None:
        after = max([life.received, *(c[0] for c in life.changes)])
        d = self.day(max(first, vn_day(after)), min(last, vn_day(due) - ONE_DAY))
        return None if d is None else self.instant(d, after)

    def on_time(self, life: Life, due: datetime, first: date, last: date) -> datetime | None:
        d = vn_day(due)
        if not (first <= d <= last and is_workday(d)):
            return None
        return self.instant(d, max([life.received, *(c[0] for c in life.changes)]), due)

    def late(self, life: Life, due: datetime, first: date, last: date) -> datetime | None:
        after = max([life.received, due, *(c[0] for c in life.changes)])
        d = self.day(max(first, vn_day(after)), last)
        return None if d is None else self.instant(d, after)


_WINDOWS: dict[str, tuple[date, date]] = {
    "m_": (date(2021, 3, 1), date(2021, 3, 30)),
    "c_early": (date(2021, 3, 8), date(2021, 3, 31)),
    "c_on_time": (date(2021, 3, 8), date(2021, 3, 31)),
    "c_late_due_march": (date(2021, 3, 1), date(2021, 3, 24)),
    "c_late_due_april": (date(2021, 3, 10), date(2021, 3, 31)),
    "c_overdue_due_march": (date(2021, 3, 1), date(2021, 3, 24)),
    "c_overdue_due_april": (date(2021, 3, 8), date(2021, 3, 31)),
    "c_within_long": (date(2021, 3, 1), date(2021, 3, 31)),
    "c_within_extended": (date(2021, 3, 1), date(2021, 3, 22)),
    "a_within": (date(2021, 4, 8), date(2021, 4, 30)),
    "a_": (date(2021, 4, 1), date(2021, 4, 28)),
}
MARCH_DAYS = MONTH["2021-03"]
APRIL_DAYS = (date(2021, 4, 1), date(2021, 4, 29))  # the 30th is Reunion day


def _window(kind: str) -> tuple[date, date]:
    return _WINDOWS.get(kind) or _WINDOWS[kind[:2]]


def _live(s: Sampler, plan: Plan, k: int) -> Life | None:
    """One attempt at a life for the plan with a procedure of k working days; None to retry."""
    r = s.received(plan, *_window(plan.kind))
    if r is None:
        return None
    due = s.due(r, k)
    life = Life(received=r, due=due)
    kind, variant = plan.kind, plan.variant
    month_days = MARCH_DAYS if kind.startswith("m_") else APRIL_DAYS
    closing: Callable[[Life, datetime, date, date], datetime | None] | None = None
    judge_due = due
    if kind in ("c_late_due_march", "c_overdue_due_march", "c_within_extended"):
        if due >= END_MARCH:
            return None
    elif kind.startswith("c_") and due < END_MARCH:
        return None
    if kind in ("c_overdue_due_april", "a_overdue") and due >= END_APRIL:
        return None
    if kind in ("c_within_long", "a_within") and due < END_APRIL:
        return None

    if variant in ("extension_saves", "extended_still_late", "supplement_extends"):
        lo = vn_day(r) if not kind.startswith("c_") else max(vn_day(r), APRIL_DAYS[0])
        d = s.day(lo, vn_day(due))
        e = None if d is None else s.instant(d, r, due - SECOND)
        if e is None:
            return None
        if variant == "supplement_extends":
            sup = s.between(r, e)
            if sup is None:
                return None
            life.supplement = sup
            new_due = s.extended(due, 1, 3)
            life.changes.append((e, new_due, "supplement"))
        else:
            new_due = (
                s.extended(due, 2, 5) if variant == "extension_saves" else s.extended(due, 1, 2)
            )
            life.changes.append((e, new_due, "extension"))
        judge_due = new_due

    if kind.endswith("_early"):
        closing = s.early
        if variant == "extension_saves":  # after the first due_at: late but for the extension
            after = max(due, life.changes[0][0])
            d = s.day(
                max(month_days[0], vn_day(after)), min(month_days[1], vn_day(judge_due) - ONE_DAY)
            )
            t = None if d is None else s.instant(d, after)
            if t is None:
                return None
            life.close = (t, "resolved")
    elif kind.endswith("_on_time"):
        closing = s.on_time
        if variant == "vn_midnight" or variant == "at_due":
            d = vn_day(due)
            if not (APRIL_DAYS[0] <= d <= APRIL_DAYS[1] and is_workday(d)):
                return None
            t = at(d, 0, 30) if variant == "vn_midnight" else due
            if t <= r:
                return None
            life.close = (t, "resolved")
            life.midnight = variant == "vn_midnight"
    elif kind.startswith(("m_late", "a_late", "c_late")):
        closing = s.late
        if variant == "hours_late":  # due at 11:00, resolved that afternoon
            d = vn_day(due)
            judge_due = at(d, 11)
            if judge_due <= r or not (APRIL_DAYS[0] <= d <= APRIL_DAYS[1]):
                return None
            life.due = due = judge_due
            life.close = (at(d, 13, 30) + timedelta(seconds=s.rng.randrange(3 * 3600)), "resolved")
    elif kind == "m_withdrawn":
        d = s.day(vn_day(r), MARCH_DAYS[1])
        t = None if d is None else s.instant(d, r)
        if t is None:
            return None
        life.close = (t, "withdrawn")
    elif kind == "c_within_extended":
        d = s.day(*APRIL_DAYS)
        e = None if d is None else s.instant(d)
        if e is None:
            return None
        new_due = at(s.rng.choice(workdays(date(2021, 5, 5), date(2021, 5, 20))), 17)
        life.changes.append((e, new_due, "extension"))

    if closing is not None and life.close is None:
        t = closing(life, judge_due, *month_days)
        if t is None:
            return None
        life.close = (t, "resolved")

    end = life.close[0] if life.close is not None else END_APRIL
    if variant == "supplement" and life.supplement is None:
        life.supplement = s.between(r, end)
        if life.supplement is None:
            return None
    if variant == "interconnect":
        x = s.between(r, END_APRIL)
        if x is None:
            return None
        life.transfer = (x, s.rng.choice(PROVINCE_AGENCIES), True)
    elif s.rng.random() < 0.03:  # handed to a city department on the way
        after = max([r, *(c[0] for c in life.changes)])
        x = s.between(after, end)
        if x is not None:
            life.transfer = (x, s.rng.choice(CITY_AGENCIES), False)
    return life


def _plans(rng: random.Random) -> list[Plan]:
    """Every dossier's kind, month, channel, level, code and unit; counts exactly as planned."""
    plans: list[Plan] = []
    for kind, count in KIND_COUNTS.items():
        month = "2021-04" if kind.startswith("a_") else "2021-03"
        variants = [v for v, n in VARIANTS.get(kind, []) for _ in range(n)]
        variants += [""] * (count - len(variants))
        plans += [Plan(kind, v, month) for v in variants]
    rng.shuffle(plans)
    for month, online in ONLINE.items():
        mine = [p for p in plans if p.month == month and not p.variant]
        early = [p for p in mine if p.kind.endswith("_early")]
        # long procedures are never offered online
        rest = [p for p in mine if not p.kind.endswith("_early") and p.kind != "c_within_long"]
        # the dossiers that cover every procedure of a level are early ones (any deadline works)
        cover: list[tuple[Plan, int, str]] = []
        extra: list[int] = []
        for level, (n, codes) in online.items():
            pool = (LEVEL3_PROCEDURES if level == 3 else LEVEL4_PROCEDURES)[:codes]
            cover += [(early.pop(), level, code) for code in pool]
            extra += [level] * (n - codes)
        others = early + rest
        rng.shuffle(others)
        long = [p for p in mine if p.kind == "c_within_long"]
        for plan, level, code in cover:
            plan.channel, plan.level, plan.code = "online", level, code
        for level in extra:
            plan = others.pop()
            plan.channel, plan.level = "online", level
        others += long
        rng.shuffle(others)
        for plan in others[: POSTAL[month]]:
            plan.channel = "postal"
    # midnight at the end of March: the portal's clock is UTC
    april_online = next(p for p in plans if p.month == "2021-04" and p.kind == "a_early" and p.code)
    april_online.forced_received = datetime(2021, 3, 31, 17, 30, tzinfo=UTC)
    march_online = next(p for p in plans if p.kind == "c_early" and p.channel == "online")
    march_online.forced_received = datetime(2021, 3, 31, 16, 45, tzinfo=UTC)
    first_online = next(p for p in plans if p.kind == "m_early" and p.code)
    first_online.forced_received = datetime(2021, 2, 28, 17, 20, tzinfo=UTC)  # 1 March, 00:20
    units = [u for u, _ in city_units()]
    weights = [WEIGHTS[u] for u in units]
    overdue = [u for u, n in OVERDUE_BY_UNIT.items() for _ in range(n)]
    rng.shuffle(overdue)
    for plan in plans:
        plan.unit = overdue.pop() if "overdue" in plan.kind else rng.choices(units, weights)[0]
    assert not overdue
    return plans


def _check_plan() -> None:
    """The kind counts add up to the reference figures (a wrong edit fails at once)."""
    c, a = EXPECTED_CITY_APRIL.dossiers, KIND_COUNTS
    carried = sum(n for k, n in a.items() if k.startswith("c_"))
    new = sum(n for k, n in a.items() if k.startswith("a_"))
    early = a["c_early"] + a["a_early"]
    on_time = a["c_on_time"] + a["a_on_time"]
    late = a["c_late_due_march"] + a["c_late_due_april"] + a["a_late"]
    overdue = a["c_overdue_due_march"] + a["c_overdue_due_april"] + a["a_overdue"]
    within = a["c_within_long"] + a["c_within_extended"] + a["a_within"]
    assert (carried, new) == (c.received.carried_over, c.received.new)
    assert (early, on_time, late) == (c.resolved.early, c.resolved.on_time, c.resolved.late)
    assert (within, overdue) == (c.in_progress.within_deadline, c.in_progress.overdue)
    assert sum(OVERDUE_BY_UNIT.values()) == overdue
    m = EXPECTED_CITY_MARCH.dossiers
    assert sum(n for k, n in a.items() if k.startswith(("m_", "c_"))) == m.received.new
    assert (a["m_early"], a["m_on_time"], a["m_late"]) == (
        m.resolved.early,
        m.resolved.on_time,
        m.resolved.late,
    )
    assert a["m_withdrawn"] == m.withdrawn
    assert (
        a["c_late_due_march"] + a["c_overdue_due_march"] + a["c_within_extended"]
        == m.in_progress.overdue
    )
    for month, figures in (("2021-03", m), ("2021-04", c)):
        online = ONLINE[month]
        assert online[3][0] + online[4][0] == figures.received.new_by_channel.online
        assert (online[3][1], online[4][1]) == (
            figures.online_procedures.level3,
            figures.online_procedures.level4,
        )
        assert POSTAL[month] == figures.received.new_by_channel.postal
        assert RETURNED_BY_POST[month] == figures.returned_by_post


# -- wire events ------------------------------------------------------------------------------

_STYLES = ["+07:00", "Z", "+07:00", "Z.ms", "+07:00.ms"]


def stamp(ts: datetime, style: str) -> str:
    """RFC 3339 in a desk system's own style; fractions shown whenever the instant has them."""
    zone = UTC if style.startswith("Z") else VN
    local = ts.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond % 1000:
        text += f".{local.microsecond:06d}"
    elif style.endswith(".ms") or local.microsecond:
        text += f".{local.microsecond // 1000:03d}"
    return text + ("Z" if zone is UTC else "+07:00")


@dataclass
class _Unit:
    code: str
    agency: str
    style: str
    rng: random.Random
    events: list[tuple[datetime, int, bytes]] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)

    def next_number(self, key: str, start: int = 1) -> int:
        n = self.seq.get(key, start - 1) + 1
        self.seq[key] = n
        return n


class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.order = 0
        self.applicants = 0
        self.units: dict[str, _Unit] = {}
        for k, (code, _) in enumerate(city_units()):
            agency = "000.00.21.H08" if code == CITY else f"000.{20 + k:02d}.21.H08"
            style = "+07:00" if code == CITY else _STYLES[k % len(_STYLES)]
            self.units[code] = _Unit(code, agency, style, random.Random(rng.getrandbits(64)))

    def event_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def put(self, unit: _Unit, body: dict[str, Any], submitted: datetime) -> datetime:
        self.order += 1
        unit.events.append((submitted, self.order, msgspec.json.encode(body)))
        return submitted

    def submit_time(self, occurred: datetime, previous: datetime | None) -> datetime:
        """When the desk's system sends it: minutes later, now and then days later."""
        delay = timedelta(seconds=self.rng.randrange(5, 1800))
        if self.rng.random() < 0.02:
            delay += timedelta(hours=self.rng.randrange(1, 72))
        t = occurred + delay
        return t if previous is None or t > previous else previous + SECOND

    def dossier(self, plan: Plan) -> None:
        life = plan.life
        assert life is not None
        unit = self.units[plan.unit]
        day = vn_day(life.received)
        number = unit.next_number(f"dossier-{day}")
        dossier_id = f"{unit.agency}-{day:%y%m%d}-{number:04d}"
        portal = plan.channel == "online"

        def ts(t: datetime, *, utc: bool = False) -> str:
            return stamp(t, "Z.ms" if utc else unit.style)

        code = plan.code
        body: dict[str, Any] = {
            "type": "dossier.received",
            "event_id": self.event_id(),
            "unit": unit.code,
            "occurred_at": ts(life.received, utc=portal or plan.forced_received is not None),
            "dossier_id": dossier_id,
            "procedure_code": code,
            "channel": plan.channel,
        }
        if plan.level is not None:
            body["service_level"] = plan.level
        elif self.rng.random() < 0.3:
            body["service_level"] = 2
        body["due_at"] = ts(life.due)
        if self.rng.random() < 0.08:
            self.applicants += 1
            n = self.applicants
            body["applicant"] = {"name": f"Công dân mẫu {n:04d}", "id_number": f"TEST{n:08d}"}
        bodies: list[tuple[datetime, dict[str, Any]]] = [(life.received, body)]

        def base(kind: str, t: datetime, *, utc: bool = False) -> dict[str, Any]:
            return {
                "type": kind,
                "event_id": self.event_id(),
                "unit": unit.code,
                "occurred_at": ts(t, utc=utc),
                "dossier_id": dossier_id,
            }

        if life.supplement is not None:
            b = base("dossier.supplement_requested", life.supplement)
            b["note"] = "Bổ sung giấy tờ theo quy định"
            bodies.append((life.supplement, b))
        for when, new_due, reason in life.changes:
            b = base("dossier.deadline_changed", when)
            b["due_at"], b["reason"] = ts(new_due), reason
            bodies.append((when, b))
        if life.transfer is not None:
            when, agency, interconnect = life.transfer
            b = base("dossier.transferred", when)
            b["to_agency"], b["interconnect"] = agency, interconnect
            bodies.append((when, b))
        if life.close is not None:
            when, what = life.close
            b = base(f"dossier.{what}", when, utc=life.midnight)
            if what == "resolved":
                b["outcome"] = "approved" if self.rng.random() < 0.985 else "refused"
            bodies.append((when, b))
        if life.returned is not None:
            when, method = life.returned
            b = base("dossier.result_returned", when, utc=method == "online")
            b["method"] = method
            bodies.append((when, b))
        bodies.sort(key=lambda tb: tb[0])  # a dossier's events in their own order
        assert bodies[0][1] is body, plan
        if life.close is not None:
            closed = [
                i for i, (_, b) in enumerate(bodies) if b["type"] == f"dossier.{life.close[1]}"
            ]
            assert closed[0] == len(bodies) - 1 - (life.returned is not None), plan
        submitted: datetime | None = None
        for when, b in bodies:
            submitted = self.put(unit, b, self.submit_time(when, submitted))

    def document(
        self, code: str, when: datetime, signed: bool, sent: bool, late: bool, style: str = ""
    ) -> None:
        unit = self.units[code]
        n = unit.next_number("document", start=self.rng.randrange(120, 260))
        forms = (
            ["UBND-VP", "QĐ-UBND", "TB-UBND", "KH-UBND"]
            if code == CITY
            else ["UBND", "QĐ-UBND", "TB-UBND"]
        )
        body = {
            "type": "document.issued",
            "event_id": self.event_id(),
            "unit": code,
            "occurred_at": stamp(when, style or unit.style),
            "document_id": f"{n}/{self.rng.choice(forms)}",
            "digitally_signed": signed,
            "sent_via_axis": sent,
        }
        submitted = self.submit_time(when, None)
        if late:  # a batch from the e-office system, sent in the second half of April
            submitted = at(date(2021, 4, 15) + timedelta(days=self.rng.randrange(14)), 20)
        self.put(unit, body, submitted)

    def copy(self, code: str, when: datetime, electronic: bool) -> None:
        unit = self.units[code]
        n = unit.next_number("copy", start=self.rng.randrange(300, 900))
        cert = f"BSĐT-{code}-{n:05d}" if electronic else f"Số {n} quyển 01/2021-SCT/BS"
        body = {
            "type": "copy.certified",
            "event_id": self.event_id(),
            "unit": code,
            "occurred_at": stamp(when, "Z.ms" if electronic else unit.style),
            "certification_id": cert,
            "electronic": electronic,
        }
        self.put(unit, body, self.submit_time(when, None))


def _returns(s: Sampler, plans: list[Plan]) -> None:
    """Who collects results how: exactly RETURNED_BY_POST[month] by post, within the month."""
    rng = s.rng
    for month, count in RETURNED_BY_POST.items():
        last = MARCH_DAYS[1] if month == "2021-03" else APRIL_DAYS[1]
        resolved = [
            p
            for p in plans
            if p.life is not None
            and p.life.close is not None
            and p.life.close[1] == "resolved"
            and f"{vn_day(p.life.close[0]):%Y-%m}" == month
        ]
        rng.shuffle(resolved)
        resolved.sort(key=lambda p: p.channel != "postal")  # postal dossiers first
        posted = 0
        for p in resolved:
            assert p.life is not None
            assert p.life.close is not None
            t = p.life.close[0]
            if posted < count:
                q = s.between(t, min(at(last, 17), t + timedelta(days=5)))
                if q is not None:
                    p.life.returned = (q, "postal")
                    posted += 1
                    continue
            if p.channel == "postal":
                continue  # no postal return left in the month: not returned yet
            if rng.random() < (0.7 if p.channel == "online" else 0.5):
                q = s.between(t, min(at(APRIL_DAYS[1], 17), t + timedelta(days=10)))
                if q is not None:
                    p.life.returned = (q, "online" if p.channel == "online" else "counter")
        assert posted == count, (month, posted)


def generate(seed: int = 2021) -> DemoTraffic:
    """The demo's March and April 2021, the same for the same seed."""
    _check_plan()
    rng = random.Random(seed)
    plans = _plans(rng)
    s = Sampler(rng)
    for plan in plans:
        for _ in range(2000):
            if plan.code is not None:
                code = plan.code
            elif plan.channel == "online":
                pool = ONLINE[plan.month][plan.level or 3]
                levels = LEVEL3_PROCEDURES if plan.level == 3 else LEVEL4_PROCEDURES
                code = rng.choice(levels[: pool[1]])
            elif plan.kind == "c_within_long":
                code = rng.choice([c for c, k in PROCEDURES if k >= 25])
            else:
                code = rng.choices(PROCEDURES, _PROCEDURE_WEIGHTS)[0][0]
            life = _live(s, plan, _DEADLINE[code])
            if life is not None:
                plan.life, plan.code = life, code
                break
        else:
            raise RuntimeError(f"no life found for {plan}")
    _returns(s, plans)

    writer = _Writer(rng)
    for plan in plans:
        writer.dossier(plan)
    units = [u for u, _ in city_units()]
    weights = [WEIGHTS[u] for u in units]
    ward_weights = [w if u != CITY else 0.5 for u, w in zip(units, weights, strict=True)]
    for month, (issued, signed_sent, signed_only) in DOCUMENTS.items():
        first, last = MONTH[month]
        flags = [(True, True)] * signed_sent + [(True, False)] * signed_only
        flags += [(False, False)] * (issued - len(flags))
        for k, (signed, sent) in enumerate(flags):
            style = ""
            if month == "2021-03" and k == 0:  # signed at 23:58 on 31 March in Vietnam
                when, code, style = datetime(2021, 3, 31, 16, 58, 30, tzinfo=UTC), CITY, "Z"
            else:
                d = s.day(first, last)
                assert d is not None
                when = s.instant(d) or at(d, 9)
                code = rng.choices(units, weights)[0]
            late = month == "2021-03" and rng.random() < 0.04
            writer.document(code, when, signed, sent, late, style)
    for month, (certified, electronic) in COPIES.items():
        first, last = MONTH[month]
        for k in range(certified):
            if month == "2021-04" and k == 0:  # through the portal at 00:10 on 1 April
                when, code = (
                    datetime(2021, 3, 31, 17, 10, tzinfo=UTC),
                    rng.choices(units, ward_weights)[0],
                )
            else:
                d = s.day(first, last)
                assert d is not None
                when = s.instant(d) or at(d, 9)
                code = rng.choices(units, ward_weights)[0]
            writer.copy(code, when, k < electronic)

    events_by_unit: dict[str, list[bytes]] = {}
    distinct = duplicates = 0
    for code, unit in writer.units.items():
        stream = list(unit.events)
        distinct += len(stream)
        for submitted, order, data in unit.events:
            if unit.rng.random() < 0.015:  # no answer came back in time: the system resends
                again = submitted + timedelta(seconds=unit.rng.randrange(10, 20 * 86_400))
                stream.append((again, order, data))
                duplicates += 1
        stream.sort(key=lambda e: (e[0], e[1]))
        events_by_unit[code] = [data for _, _, data in stream]
    return DemoTraffic(
        seed=seed,
        events_by_unit=events_by_unit,
        distinct_events=distinct,
        duplicates=duplicates,
        interconnect_transfers=sum(1 for p in plans if p.variant == "interconnect"),
        expected_city_april=EXPECTED_CITY_APRIL,
        expected_city_march=EXPECTED_CITY_MARCH,
    )


def wire_events(traffic: DemoTraffic) -> dict[str, list[dict[str, Any]]]:
    """The same events as JSON objects (for tests and tools that build their own payloads)."""
    return {
        unit: [json.loads(data) for data in events]
        for unit, events in traffic.events_by_unit.items()
    }
