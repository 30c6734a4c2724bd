"""Daily range partitions of the raw sample tables on PostgreSQL (created ahead, dropped whole).

Migration 0002 turns ``gpu_samples``, ``gpu_process_samples`` and ``host_samples`` into
``PARTITION BY RANGE (ts)`` tables; each UTC day is a partition ``<table>_pYYYYMMDD``. SQLite
has no partitions: retention deletes by range there (``app.usage.retention``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import settings

RAW_TABLES = ("gpu_samples", "gpu_process_samples", "host_samples")
_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")
# pg_advisory_xact_lock key: serializes partition DDL between API workers and the task.
_LOCK_KEY = 0x6770_756C_6564_6701


def is_partitioned(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def existing_days(session: Session, table: str) -> set[date]:
    """The days that have a partition of ``table``."""
    rows = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"
        ),
        {"table": table},
    ).scalars()
    days: set[date] = set()
    for name in rows:
        m = _NAME.match(name)
        if m and m["table"] == table:
            days.add(datetime.strptime(m["day"], "%Y%m%d").date())  # noqa: DTZ007 (a date)
    return days


def ensure_days(session: Session, days: Iterable[date]) -> list[str]:
    """Create the partitions of every raw table for ``days`` that are missing; returns them."""
    wanted = set(days)
    if not wanted or not is_partitioned(session):
        return []
    names = [partition_name(t, d) for t in RAW_TABLES for d in wanted]
    have = set(
        session.execute(
            text("SELECT relname FROM pg_class WHERE relname = ANY(:names)"), {"names": names}
        ).scalars()
    )
    if len(have) == len(names):
        return []
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    created: list[str] = []
    for table in RAW_TABLES:
        for day in sorted(wanted):
            name = partition_name(table, day)
            if name in have:
                continue
            nxt = day + timedelta(days=1)
            session.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') "
                    f"TO ('{nxt.isoformat()} 00:00:00+00')"
                )
            )
            created.append(name)
    return created


# Days known to have their partitions, per database, in this process: ingest checks a day
# once instead of on every request. Only days that existed before the check are cached (a
# partition created in a transaction that rolls back must not be), and only days well inside
# the raw retention window (older ones may be dropped by the retention task at any time).
_known_days: dict[str, set[date]] = {}


def ensure_days_cached(session: Session, days: Iterable[date]) -> None:
    """``ensure_days``, skipping days this process has already seen with partitions."""
    if not is_partitioned(session):
        return
    key = session.connection().engine.url.render_as_string(hide_password=True)
    known = _known_days.setdefault(key, set())
    safe_from = datetime.now(UTC).date() - timedelta(days=settings.raw_retention_days - 2)
    wanted = {d for d in days if d not in known or d < safe_from}
    if not wanted:
        return
    created = ensure_days(session, wanted)
    fresh = {d for d in wanted for t in RAW_TABLES if partition_name(t, d) in created}
    known.update(d for d in wanted - fresh if d >= safe_from)


def forget_known_days() -> None:
    """Drop the cache of ``ensure_days_cached`` (after partitions were dropped)."""
    _known_days.clear()


def drop_before(session: Session, cutoff: date) -> list[str]:
    """Drop every raw partition whose whole day lies before ``cutoff``; returns their names."""
    if not is_partitioned(session):
        return []
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    dropped: list[str] = []
    for table in RAW_TABLES:
        for day in sorted(existing_days(session, table)):
            if day < cutoff:
                name = partition_name(table, day)
                session.execute(text(f"DROP TABLE IF EXISTS {name}"))
                dropped.append(name)
    if dropped:
        forget_known_days()
    return dropped
