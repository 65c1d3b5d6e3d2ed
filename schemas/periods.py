"""Report periods (CONTRACT section 6): calendar months in Vietnam's time, UTC+07:00, "YYYY-MM".

An instant belongs to the period whose [start, end) holds it: 2021-03-31T17:30:00Z is
2021-04-01T00:30+07:00, so it is April's. Periods are also numbered (`period_index`: year * 12 +
month - 1) so that rules can compare and step them as integers.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

VN = timezone(timedelta(hours=7), "ICT")
"""Vietnam's time (Indochina Time, no daylight saving): the clock periods and days are read on."""

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("a timestamp without an offset has no period: it must be tz-aware")
    return ts


def period_index(period: str) -> int:
    """ "2021-04" -> 2021 * 12 + 3; raises ValueError for anything but YYYY-MM."""
    m = _PERIOD.fullmatch(period)
    if m is None:
        raise ValueError(f"not a period (YYYY-MM): {period!r}")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def period_name(index: int) -> str:
    """The inverse of `period_index`."""
    year, month0 = divmod(index, 12)
    return f"{year:04d}-{month0 + 1:02d}"


def period_of(ts: datetime) -> str:
    """The period holding the instant `ts` (any offset), read on Vietnam's calendar."""
    local = _aware(ts).astimezone(VN)
    return f"{local.year:04d}-{local.month:02d}"


def vn_date(ts: datetime) -> date:
    """The calendar day of `ts` in UTC+07:00 (what "resolved on an earlier day" compares)."""
    return _aware(ts).astimezone(VN).date()


def period_start(period: str) -> datetime:
    """The first instant of the period: YYYY-MM-01T00:00:00+07:00."""
    year, month0 = divmod(period_index(period), 12)
    return datetime(year, month0 + 1, 1, tzinfo=VN)


def period_end(period: str) -> datetime:
    """The first instant after the period (the next period's start): the end is excluded."""
    return period_start(next_period(period))


def next_period(period: str) -> str:
    return period_name(period_index(period) + 1)


def previous_period(period: str) -> str:
    return period_name(period_index(period) - 1)


def periods_from_to(first: str, last: str) -> list[str]:
    """Every period from `first` to `last`, both included; empty when `first` is after `last`."""
    return [period_name(i) for i in range(period_index(first), period_index(last) + 1)]


def now_vn() -> datetime:
    """The wall clock in Vietnam's time: what reports are generated at."""
    return datetime.now(VN)
