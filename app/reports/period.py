"""What a spend report covers: a period (month, preset or from/to) in a time zone, and its groups.

Pure parsing, no database: the API, the page and the CLI read their arguments through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.costs.engine import GROUPS
from app.errors import AppError

PRESETS = ("last-month", "mtd", "last-24h", "last-7d", "last-30d")
PERIOD_HELP = (
    "YYYY-MM (that calendar month), 'last-month' (the last full calendar month: the default), "
    "'mtd' (this month to now), 'last-24h', 'last-7d' or 'last-30d'. Months and days are in "
    "the report's time zone."
)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadPeriod(AppError):
    """The period, its dates or its time zone cannot be read."""

    status_code = 400
    error = "bad_period"


class BadGroupBy(AppError):
    """``group_by`` names an unknown grouping, or more than two."""

    status_code = 400
    error = "bad_group_by"


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    label: str  # "2026-11", "2026-12 to date", "2026-11-01 to 2026-11-15"
    tz: str


def zone(tz: str) -> ZoneInfo:
    """The IANA time zone called ``tz`` ("Europe/Berlin", "UTC")."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadPeriod(
            f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Berlin'"
        ) from None


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    # Where midnight does not exist (a DST jump at 00:00), zoneinfo's fold=0 reading is the
    # transition instant itself: still the first instant of that day.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_instant(value: str, *, tz: ZoneInfo, end: bool = False) -> datetime:
    """A date (``YYYY-MM-DD``: the start of that day in ``tz``; with ``end``, the start of the
    next day, so that the day is included) or an ISO 8601 datetime with an offset, in UTC."""
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadPeriod(f"{value!r} is not a valid date") from None
        return _day_start(day + timedelta(days=1) if end else day, tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadPeriod(
            f"{value!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 datetime with an offset"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadPeriod(
            f"{value!r} has no UTC offset: add one (2026-11-01T08:00:00+01:00, ...Z) or give a date"
        )
    return moment.astimezone(UTC)


def _month(value: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise BadPeriod(f"unknown period {value!r}: expected {PERIOD_HELP}")
    year, month = int(match[1]), int(match[2])
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return _day_start(date(year, month, 1), tz), _day_start(following, tz)


def _local_text(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return (
        local.strftime("%Y-%m-%d") if local.time() == time(0) else local.strftime("%Y-%m-%d %H:%M")
    )


def _range_label(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    first, last = start.astimezone(tz), end.astimezone(tz)
    if first.time() == time(0) and last.time() == time(0):
        # Whole days: name the last day included, as a person would ("1 to 15 November").
        through = (last.date() - timedelta(days=1)).isoformat()
        return (
            first.date().isoformat()
            if through == first.date().isoformat()
            else (f"{first.date().isoformat()} to {through}")
        )
    return f"{_local_text(start, tz)} to {_local_text(end, tz)}"


def _last_month(tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime, str]:
    this_month = now.astimezone(tz).date().replace(day=1)
    previous = (this_month - timedelta(days=1)).replace(day=1)
    return _day_start(previous, tz), _day_start(this_month, tz), f"{previous:%Y-%m}"


def _preset(period: str, tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime, str]:
    local = now.astimezone(tz)
    if period == "last-month":
        return _last_month(tz, now)
    if period == "mtd":
        start = _day_start(local.date().replace(day=1), tz)
        return start, now, f"{local:%Y-%m} to date"
    if period == "last-24h":
        return now - timedelta(hours=24), now, "last 24 h"
    days = 7 if period == "last-7d" else 30
    # Calendar days on the local clock: across a DST change the window is 23 or 25 h longer.
    start = (local - timedelta(days=days)).astimezone(UTC)
    return start, now, f"last {days} days"


def resolve_period(
    *, period: str | None, start: str | None, end: str | None, tz: str, now: datetime
) -> Period:
    """The UTC window [start, end) the arguments name; nothing given: the last full month."""
    zone_info = zone(tz)
    now = now.astimezone(UTC)
    period = (period or "").strip() or None
    start = (start or "").strip() or None
    end = (end or "").strip() or None
    if period is not None and (start is not None or end is not None):
        raise BadPeriod("give either a period or from/to, not both")
    if period in PRESETS:
        first, last, label = _preset(period, zone_info, now)
    elif period is not None:
        first, last = _month(period, zone_info)
        label = period
    elif start is not None:
        first = parse_instant(start, tz=zone_info)
        last = now if end is None else parse_instant(end, tz=zone_info, end=True)
        if last <= first:
            raise BadPeriod(f"'to' ({end or 'now'}) must be after 'from' ({start})")
        label = (
            _range_label(first, last, zone_info)
            if end is not None
            else f"{_local_text(first, zone_info)} to now"
        )
    elif end is not None:
        raise BadPeriod("'to' needs a 'from'")
    else:
        first, last, label = _last_month(zone_info, now)
    return Period(start=first, end=last, label=label, tz=tz)


def parse_group_by(value: str | None) -> tuple[str, ...]:
    """One grouping or two, comma-separated ("team", "team,project"); default team."""
    names = tuple(n.strip() for n in (value or "team").split(",") if n.strip())
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise BadGroupBy(
            f"group_by {value!r}: give one or two different names of {', '.join(GROUPS)}, "
            "comma-separated (e.g. 'team,project')"
        )
    return names
