"""Calendar periods for recurring flows: ISO weeks, months, quarters and years. Pure.

A recurring listing's quantity is per period. Two flows with different periods meet in the
coarser one, and the finer side counts only the whole periods that one coarser period always
holds (a month always holds 4 ISO weeks' worth of days, a quarter 12, a year 52), so that an
agreement's quantity never exceeds what either side has or wants in any period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

Period = Literal["week", "month", "quarter", "year"]

ORDER: dict[Period, int] = {"week": 0, "month": 1, "quarter": 2, "year": 3}

# How many whole `fine` periods one `coarse` period holds at the least.
_MIN_COUNT: dict[tuple[Period, Period], int] = {
    ("week", "week"): 1,
    ("week", "month"): 4,
    ("week", "quarter"): 12,
    ("week", "year"): 52,
    ("month", "month"): 1,
    ("month", "quarter"): 3,
    ("month", "year"): 12,
    ("quarter", "quarter"): 1,
    ("quarter", "year"): 4,
    ("year", "year"): 1,
}


def coarser(a: Period, b: Period) -> Period:
    return a if ORDER[a] >= ORDER[b] else b


def min_count(fine: Period, coarse: Period) -> int:
    """Whole `fine` periods in every `coarse` period; `fine` must not be the coarser one."""
    try:
        return _MIN_COUNT[(fine, coarse)]
    except KeyError:
        raise ValueError(f"a {fine} is longer than a {coarse}") from None


def start_of(period: Period, day: date) -> date:
    """The first day of the period that holds `day`."""
    if period == "week":
        return day - timedelta(days=day.isoweekday() - 1)
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def next_start(period: Period, day: date) -> date:
    """The first day of the period after the one that holds `day`."""
    first = start_of(period, day)
    if period == "week":
        return first + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def key_of(period: Period, day: date) -> str:
    """A sortable name for the period that holds `day`: 2026-W49, 2026-12, 2026-Q4, 2026."""
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def overlap(
    a_start: date, a_end: date | None, b_start: date, b_end: date | None
) -> tuple[date, date | None] | None:
    """The common span of two flows (an end of None is open), or None when they do not meet."""
    start = max(a_start, b_start)
    ends = [e for e in (a_end, b_end) if e is not None]
    end = min(ends) if ends else None
    if end is not None and end <= start:
        return None
    return start, end


def start_of_named(period: Period, key: str) -> date | None:
    """The first day of the period named `key`, or None when `key` does not name a period of
    that length (a month's key for a weekly flow, a 53rd week the year does not have): a timer
    from elsewhere, which the core ignores."""
    try:
        begins = start_of_key(period, key)
    except ValueError:
        return None
    return begins if key_of(period, begins) == key else None


def start_of_key(period: Period, key: str) -> date:
    """The first day of the period named `key` (the inverse of `key_of`)."""
    if period == "week":
        year, _, week = key.partition("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    if period == "month":
        year, _, month = key.partition("-")
        return date(int(year), int(month), 1)
    if period == "quarter":
        year, _, quarter = key.partition("-Q")
        return date(int(year), 3 * (int(quarter) - 1) + 1, 1)
    return date(int(key), 1, 1)
