"""Billing periods, their `YYYY-MM` labels, days and local time. Pure: no clock reads.

A period is [start, end) in local time, starting at 00:00 on `month_start_day`; its label
is the year and month it starts in. Everything that reads or writes a label or a day goes
through here: the accounting (which period a poll belongs to), storage (the `periods`
table and `monthly_stats` timestamps), the read side (`?period=`, `?from=`) and the
OpenAPI document, whose patterns are the very expressions the parsers use.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

# Dates and period labels outside these years are refused: a period's end must stay a date.
MIN_YEAR = 1970
MAX_YEAR = 9998
# Years MIN_YEAR..MAX_YEAR as a regular expression, ASCII digits only.
_YEAR = "(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
MONTH_PATTERN = f"^{_YEAR}-(0[1-9]|1[0-2])$"
DAY_PATTERN = f"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_MONTH_RE = re.compile(MONTH_PATTERN.rstrip("$") + r"\Z")
_DAY_RE = re.compile(DAY_PATTERN.rstrip("$") + r"\Z")


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period: [start, end) in local time. Its label is the year-month it starts in."""

    label: str
    start: datetime
    end: datetime


def parse_month(text: str, name: str = "month") -> tuple[int, int]:
    """`YYYY-MM` -> (year, month); ValueError saying what is wrong."""
    match = _MONTH_RE.match(text)
    if match is None:
        raise ValueError(f"{name} must be a month YYYY-MM from {MIN_YEAR}-01 to {MAX_YEAR}-12, "
                         f"got {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_day(text: str, name: str = "day") -> date:
    """`YYYY-MM-DD` -> date; ValueError saying what is wrong."""
    match = _DAY_RE.match(text)
    if match is not None:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            pass  # 2026-02-30: the pattern allows it, the calendar does not
    raise ValueError(f"{name} must be a date YYYY-MM-DD from {MIN_YEAR}-01-01 to "
                     f"{MAX_YEAR}-12-31, got {text!r}")


def label_of(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _period_start(day: date, month_start_day: int) -> date:
    if day.day >= month_start_day:
        return date(day.year, day.month, month_start_day)
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, month_start_day)


def _next_month(start: date) -> date:
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _period_from_start(start: date, zone: ZoneInfo) -> Period:
    end = _next_month(start)
    return Period(
        label=label_of(start.year, start.month),
        start=datetime(start.year, start.month, start.day, tzinfo=zone),
        end=datetime(end.year, end.month, end.day, tzinfo=zone),
    )


def period_containing(at: float, zone: ZoneInfo, month_start_day: int = 1) -> Period:
    """The billing period that contains unix time `at`, periods starting at 00:00 local."""
    local_day = datetime.fromtimestamp(at, zone).date()
    return _period_from_start(_period_start(local_day, month_start_day), zone)


def period_for_label(label: str, zone: ZoneInfo, month_start_day: int = 1) -> Period:
    """The period labelled `YYYY-MM`; raises ValueError for anything else."""
    year, month = parse_month(label, "period")
    return _period_from_start(date(year, month, month_start_day), zone)


def local_day(at: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d")


def local_timestamp(at: float, zone: ZoneInfo) -> str:
    """`YYYY-MM-DD HH:MM:SS` in local time, the seed's monthly_stats.timestamp format."""
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M:%S")
