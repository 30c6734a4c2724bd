"""Retention: raw samples 14 days, minute rollups 90 days, hourly kept (``app.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.config import settings
from app.kit.timebuckets import floor_day
from app.models import (
    GpuHourRollup,
    GpuMinuteRollup,
    GpuProcessSample,
    GpuSample,
    HostHourRollup,
    HostMinuteRollup,
    HostSample,
)
from app.usage import partitions
from app.usage.repository import delete_older

# SQLite deletes in batches this size so that ingest never waits long for the write lock.
DELETE_BATCH_ROWS = 5000


@dataclass(frozen=True)
class RetentionResult:
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rows: dict[str, int] = field(default_factory=dict)
    created_partitions: list[str] = field(default_factory=list)


def apply_retention(session: Session, *, now: datetime | None = None) -> RetentionResult:
    """Drop raw data and rollups past their retention; create the coming days' partitions."""
    now = now or datetime.now(UTC)
    raw_cutoff = floor_day(now - timedelta(days=settings.raw_retention_days))
    deleted: dict[str, int] = {}
    dropped: list[str] = []
    if partitions.is_partitioned(session):
        # Whole days only: a partition goes once its last second is past the cutoff.
        dropped = partitions.drop_before(session, raw_cutoff.date())
    else:
        for raw in (GpuSample, GpuProcessSample, HostSample):
            deleted[raw.__tablename__] = delete_older(
                session, raw, "ts", raw_cutoff, batch=DELETE_BATCH_ROWS
            )
    minute_cutoff = now - timedelta(days=settings.minute_rollup_retention_days)
    for model in (GpuMinuteRollup, HostMinuteRollup):
        deleted[model.__tablename__] = delete_older(
            session, model, "bucket", minute_cutoff, batch=DELETE_BATCH_ROWS
        )
    if settings.hour_rollup_retention_days is not None:
        hour_cutoff = now - timedelta(days=settings.hour_rollup_retention_days)
        for hourly in (GpuHourRollup, HostHourRollup):
            deleted[hourly.__tablename__] = delete_older(
                session, hourly, "bucket", hour_cutoff, batch=DELETE_BATCH_ROWS
            )
    today = floor_day(now).date()
    created = partitions.ensure_days(
        session, [today + timedelta(days=d) for d in range(settings.partition_days_ahead + 1)]
    )
    session.flush()
    return RetentionResult(dropped, deleted, created)
