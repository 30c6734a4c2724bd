"""Periods in a time zone: months, presets and from/to, across DST changes and month ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.reports.period import (
    BadGroupBy,
    BadPeriod,
    Period,
    parse_group_by,
    parse_instant,
    resolve_period,
)

NY = "America/New_York"  # 2026-03-08 and 2026-11-01 are its DST change days
NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _resolve(
    period: str | None = None,
    start: str | None = None,
    end: str | None = None,
    tz: str = "UTC",
    now: datetime = NOW,
) -> Period:
    return resolve_period(period=period, start=start, end=end, tz=tz, now=now)


class TestMonth:
    def test_utc_month(self) -> None:
        p = _resolve("2026-11")
        assert (p.start, p.end, p.label, p.tz) == (
            _utc(2026, 11, 1),
            _utc(2026, 12, 1),
            "2026-11",
            "UTC",
        )

    def test_november_in_new_york_ends_an_hour_later_than_it_starts(self) -> None:
        p = _resolve("2026-11", tz=NY)
        assert p.start == _utc(2026, 11, 1, 4)  # EDT, -04:00
        assert p.end == _utc(2026, 12, 1, 5)  # EST, -05:00
        assert p.end - p.start == timedelta(days=30, hours=1)

    def test_march_in_new_york_is_an_hour_short(self) -> None:
        p = _resolve("2026-03", tz=NY)
        assert (p.start, p.end) == (_utc(2026, 3, 1, 5), _utc(2026, 4, 1, 4))
        assert p.end - p.start == timedelta(days=31, hours=-1)

    def test_december_ends_in_the_next_year(self) -> None:
        p = _resolve("2026-12", tz="Asia/Tokyo")
        assert (p.start, p.end) == (_utc(2026, 11, 30, 15), _utc(2026, 12, 31, 15))

    @pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-1", "november", "2026-11-01"])
    def test_malformed_month(self, value: str) -> None:
        with pytest.raises(BadPeriod, match="unknown period"):
            _resolve(value)


class TestDefaultAndPresets:
    def test_default_is_the_last_full_month_in_the_zone(self) -> None:
        # 03:00 UTC on 1 December is still 30 November in New York.
        now = _utc(2026, 12, 1, 3)
        assert _resolve(now=now).label == "2026-11"
        p = _resolve(tz=NY, now=now)
        assert (p.start, p.end, p.label) == (_utc(2026, 10, 1, 4), _utc(2026, 11, 1, 4), "2026-10")
        assert _resolve("last-month", tz=NY, now=now) == p

    def test_default_in_january_is_last_december(self) -> None:
        p = _resolve(now=_utc(2027, 1, 10))
        assert (p.start, p.end, p.label) == (_utc(2026, 12, 1), _utc(2027, 1, 1), "2026-12")

    def test_month_to_date(self) -> None:
        p = _resolve("mtd", tz=NY)
        assert (p.start, p.end, p.label) == (_utc(2026, 12, 1, 5), NOW, "2026-12 to date")

    def test_month_to_date_follows_the_zone_at_month_end(self) -> None:
        now = _utc(2026, 12, 1, 3)  # 22:00 on 30 November in New York
        p = _resolve("mtd", tz=NY, now=now)
        assert (p.start, p.end, p.label) == (_utc(2026, 11, 1, 4), now, "2026-11 to date")

    def test_last_24h_is_exactly_24_hours(self) -> None:
        p = _resolve("last-24h", tz=NY, now=_utc(2026, 11, 1, 12))
        assert (p.start, p.end, p.label) == (
            _utc(2026, 10, 31, 12),
            _utc(2026, 11, 1, 12),
            "last 24 h",
        )

    def test_last_7d_counts_local_days_across_dst(self) -> None:
        now = _utc(2026, 11, 5, 12)  # 07:00 EST; a week before is 07:00 EDT
        p = _resolve("last-7d", tz=NY, now=now)
        assert p.start == _utc(2026, 10, 29, 11)
        assert p.end - p.start == timedelta(days=7, hours=1)
        assert p.label == "last 7 days"

    def test_last_30d(self) -> None:
        p = _resolve("last-30d")
        assert (p.start, p.end, p.label) == (NOW - timedelta(days=30), NOW, "last 30 days")

    def test_now_in_another_offset_is_normalized(self) -> None:
        now = datetime(2026, 12, 15, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        assert _resolve("last-24h", now=now).end == _utc(2026, 12, 15, 12)


class TestFromTo:
    def test_dates_are_whole_local_days_and_to_is_included(self) -> None:
        p = _resolve(start="2026-11-01", end="2026-11-15", tz=NY)
        assert (p.start, p.end) == (_utc(2026, 11, 1, 4), _utc(2026, 11, 16, 5))
        assert p.label == "2026-11-01 to 2026-11-15"

    def test_the_dst_change_day_has_25_hours(self) -> None:
        p = _resolve(start="2026-11-01", end="2026-11-01", tz=NY)
        assert p.end - p.start == timedelta(hours=25)
        assert p.label == "2026-11-01"

    def test_datetimes_with_offsets(self) -> None:
        p = _resolve(start="2026-11-01T08:00:00+01:00", end="2026-11-02T00:00:00Z", tz=NY)
        assert (p.start, p.end) == (_utc(2026, 11, 1, 7), _utc(2026, 11, 2))
        assert p.label == "2026-11-01 02:00 to 2026-11-01 19:00"  # EST since 06:00 UTC

    def test_from_alone_runs_to_now(self) -> None:
        p = _resolve(start="2026-12-01", tz=NY)
        assert (p.start, p.end, p.label) == (_utc(2026, 12, 1, 5), NOW, "2026-12-01 to now")

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"start": "2026-11-15", "end": "2026-11-01"}, "must be after"),
            ({"start": "2026-11-02T00:00:00Z", "end": "2026-11-02T00:00:00Z"}, "must be after"),
            ({"period": "2026-11", "start": "2026-11-01"}, "not both"),
            ({"period": "mtd", "end": "2026-11-01"}, "not both"),
            ({"end": "2026-11-01"}, "needs a 'from'"),
            ({"start": "2026-11-01T08:00:00", "end": "2026-11-02"}, "no UTC offset"),
            ({"start": "2026-02-30"}, "not a valid date"),
            ({"start": "yesterday"}, "neither a date"),
            ({"period": "2026-11", "tz": "Mars/Olympus_Mons"}, "unknown time zone"),
            ({"period": "2026-11", "tz": "../../etc/passwd"}, "unknown time zone"),
            ({"period": "2026-11", "tz": "America"}, "unknown time zone"),
        ],
    )
    def test_errors_are_400_with_a_reason(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(BadPeriod, match=message) as exc:
            _resolve(**kwargs)
        assert exc.value.status_code == 400
        assert exc.value.error == "bad_period"

    def test_blank_arguments_count_as_missing(self) -> None:
        assert _resolve(period="", start=" ", end="").label == "2026-11"


class TestParseInstant:
    def test_date_is_the_start_of_the_local_day(self) -> None:
        tz = ZoneInfo(NY)
        assert parse_instant("2026-11-01", tz=tz) == _utc(2026, 11, 1, 4)
        assert parse_instant("2026-11-01", tz=tz, end=True) == _utc(2026, 11, 2, 5)

    def test_iso_datetime_keeps_its_own_offset(self) -> None:
        tz = ZoneInfo("Asia/Tokyo")
        assert parse_instant("2026-11-01T12:00:00-05:00", tz=tz) == _utc(2026, 11, 1, 17)
        assert parse_instant("2026-11-01T12:00:00Z", tz=tz, end=True) == _utc(2026, 11, 1, 12)

    def test_result_is_utc(self) -> None:
        assert parse_instant("2026-11-01T12:00:00+02:00", tz=ZoneInfo("UTC")).tzinfo is UTC


class TestGroupBy:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [(None, ("team",)), ("project", ("project",)), ("team,project", ("team", "project")),
         (" cluster , node ", ("cluster", "node"))],
    )  # fmt: skip
    def test_accepted(self, value: str | None, expected: tuple[str, ...]) -> None:
        assert parse_group_by(value) == expected

    @pytest.mark.parametrize("value", ["planet", "team,team", "team,project,node", ",", "Team"])
    def test_refused(self, value: str) -> None:
        with pytest.raises(BadGroupBy) as exc:
            parse_group_by(value)
        assert exc.value.status_code == 400
