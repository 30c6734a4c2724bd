"""UTC time buckets: minutes, hours, days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is refused, as at every boundary."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a UTC offset")
    return value.astimezone(UTC)


def floor(value: datetime, width: timedelta) -> datetime:
    """The start of the ``width`` bucket (minute, hour, day) that holds ``value``."""
    value = utc(value)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((value - epoch) // width) * width


def floor_minute(value: datetime) -> datetime:
    return utc(value).replace(second=0, microsecond=0)


def floor_hour(value: datetime) -> datetime:
    return utc(value).replace(minute=0, second=0, microsecond=0)


def floor_day(value: datetime) -> datetime:
    return utc(value).replace(hour=0, minute=0, second=0, microsecond=0)
