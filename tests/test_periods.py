"""Report periods: calendar months on Vietnam's clock (CONTRACT section 6)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from schemas.periods import (
    VN,
    next_period,
    period_end,
    period_index,
    period_name,
    period_of,
    period_start,
    periods_from_to,
    previous_period,
    vn_date,
)


def test_period_is_calendar_month_in_utc_plus_7() -> None:
    assert period_of(datetime.fromisoformat("2021-03-31T16:59:59.999999Z")) == "2021-03"
    assert period_of(datetime.fromisoformat("2021-03-31T17:00:00Z")) == "2021-04"
    assert period_of(datetime.fromisoformat("2021-03-31T17:30:00Z")) == "2021-04"
    assert period_of(datetime.fromisoformat("2021-04-01T00:00:00+07:00")) == "2021-04"
    assert period_of(datetime.fromisoformat("2021-04-30T23:59:59+07:00")) == "2021-04"
    assert period_of(datetime.fromisoformat("2021-04-30T17:00:00+00:00")) == "2021-05"
    assert period_of(datetime.fromisoformat("2021-01-01T06:00:00+09:00")) == "2021-01"
    assert period_of(datetime.fromisoformat("2020-12-31T17:00:00Z")) == "2021-01"


def test_period_bounds_are_start_included_end_excluded() -> None:
    assert period_start("2021-04") == datetime(2021, 4, 1, tzinfo=VN)
    assert period_end("2021-04") == datetime(2021, 5, 1, tzinfo=VN)
    assert period_end("2021-12") == datetime(2022, 1, 1, tzinfo=VN)
    assert period_start("2021-04").utcoffset() == VN.utcoffset(None)
    assert period_of(period_start("2021-04")) == "2021-04"
    assert period_of(period_end("2021-04")) == "2021-05"


def test_stepping_and_ranges() -> None:
    assert next_period("2021-12") == "2022-01"
    assert previous_period("2021-01") == "2020-12"
    assert periods_from_to("2020-11", "2021-02") == ["2020-11", "2020-12", "2021-01", "2021-02"]
    assert periods_from_to("2021-04", "2021-04") == ["2021-04"]
    assert periods_from_to("2021-05", "2021-04") == []
    assert period_name(period_index("2021-04")) == "2021-04"
    assert period_index("2021-05") - period_index("2021-04") == 1


def test_vn_date_is_the_calendar_day_at_utc_plus_7() -> None:
    assert vn_date(datetime.fromisoformat("2021-04-14T17:30:00Z")) == date(2021, 4, 15)
    assert vn_date(datetime.fromisoformat("2021-04-14T16:59:59Z")) == date(2021, 4, 14)


@pytest.mark.parametrize("bad", ["2021-4", "2021-13", "2021-00", "21-04", "2021-04-01", ""])
def test_malformed_periods_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="period"):
        period_index(bad)


def test_a_naive_timestamp_has_no_period() -> None:
    with pytest.raises(ValueError, match="offset"):
        period_of(datetime(2021, 4, 1))
