"""Rollups from ingested batches on both dialects: incremental, idempotent, late data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.models import (
    FleetHourRollup,
    GpuHourRollup,
    GpuMinuteRollup,
    HostMinuteRollup,
    RollupDirty,
)
from app.usage import repository, service
from tests.app.usage.conftest import Ingest
from tests.factories.nodes import make_batch

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _count(session: Session, model) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_ingest_marks_minutes_and_rollup_clears_them(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=2, samples_per_gpu=12, start=T0))  # 2 minutes per GPU
    assert _count(session, RollupDirty) == 2 * 2 + 2  # GPU minutes + host minutes
    stats = service.rollup_pending(session)
    assert stats.gpu_minutes == 4
    assert stats.gpu_hours == 2
    assert stats.host_minutes == 2
    assert _count(session, RollupDirty) == 0
    assert _count(session, GpuMinuteRollup) == 4
    assert _count(session, HostMinuteRollup) == 2
    assert service.rollup_pending(session).dirty == 0


def test_retried_batch_marks_nothing(session: Session, ingest: Ingest) -> None:
    batch = make_batch(start=T0)
    ingest(batch)
    service.rollup_pending(session)
    assert ingest(batch).inserted == 0
    assert _count(session, RollupDirty) == 0


def test_gpu_hours_with_owners_and_energy(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=1, samples_per_gpu=360, start=T0, utilization=2.0))
    service.rollup_pending(session)
    [hour] = service.gpu_hours(session, start=T0, end=T0 + timedelta(hours=1))
    assert hour.hour == T0
    assert hour.observed_seconds == pytest.approx(3600)
    assert hour.idle_seconds == pytest.approx(3600)
    assert hour.utilization_mean == pytest.approx(2.0)
    # make_batch's counter grows 3 kJ per 10 s; the first sample falls back to 300 W x 10 s.
    assert hour.energy_joules == pytest.approx(3000 + 359 * 3000)
    [owner] = hour.owners
    assert owner.user == "alice"
    assert owner.seconds == pytest.approx(3600)
    assert (
        service.gpu_hours(session, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2)) == []
    )


def test_late_data_corrects_past_buckets(session: Session, ingest: Ingest) -> None:
    """A spool flushed after a 2-hour outage lands in the buckets its samples belong to."""
    later = T0 + timedelta(hours=2)
    ingest(make_batch(gpus=1, samples_per_gpu=6, start=later, utilization=90.0))
    service.rollup_pending(session)
    assert _count(session, GpuHourRollup) == 1

    late = make_batch(gpus=1, samples_per_gpu=6, start=T0, utilization=10.0)
    late["batch_id"] = "late"
    assert ingest(late).inserted == 6
    stats = service.rollup_pending(session)
    assert stats.gpu_minutes >= 1
    hours = {r.bucket: r for r in session.scalars(select(GpuHourRollup))}
    assert set(hours) == {T0, later}
    assert hours[T0].utilization_mean == pytest.approx(10.0)
    assert hours[later].utilization_mean == pytest.approx(90.0)
    fleet = {r.bucket: r for r in session.scalars(select(FleetHourRollup))}
    assert set(fleet) == {T0, later}
    assert fleet[T0].gpus == 1


def test_late_sample_inside_a_gap_updates_the_next_minute(session: Session, ingest: Ingest) -> None:
    # Samples at :00 and 1:00 apart; the next minute's first sample had no predecessor.
    ingest(make_batch(gpus=1, samples_per_gpu=1, start=T0))
    ingest(make_batch(gpus=1, samples_per_gpu=1, start=T0 + timedelta(seconds=70)))
    service.rollup_pending(session)
    minute = select(GpuMinuteRollup.observed_seconds).where(
        GpuMinuteRollup.bucket == T0 + timedelta(minutes=1)
    )
    assert session.scalar(minute) == pytest.approx(10)  # after a gap: the default duration
    late = make_batch(gpus=1, samples_per_gpu=1, start=T0 + timedelta(seconds=40))
    late["batch_id"] = "late"
    ingest(late)
    service.rollup_pending(session)
    assert session.scalar(minute) == pytest.approx(30)  # now 30 s since the late sample


def test_rollup_is_idempotent(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=2, samples_per_gpu=30, start=T0))
    service.rollup_pending(session)
    before = [
        (r.gpu_id, r.bucket, r.samples, r.energy_joules, r.owners)
        for r in session.scalars(select(GpuMinuteRollup).order_by("gpu_id", "bucket"))
    ]
    service.rollup_pending(session)
    session.execute(
        insert(RollupDirty),
        [
            {"kind": "gpu", "entity_id": gpu_id, "bucket": b, "version": 1}
            for gpu_id, b, *_ in before
        ],
    )
    service.rollup_pending(session)
    session.expire_all()
    after = [
        (r.gpu_id, r.bucket, r.samples, r.energy_joules, r.owners)
        for r in session.scalars(select(GpuMinuteRollup).order_by("gpu_id", "bucket"))
    ]
    assert after == before


def test_remark_during_rollup_is_not_lost(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=1, samples_per_gpu=1, start=T0))
    keys = repository.claim_dirty(session, limit=100)
    # Ingest re-marks the same minute while the rollup is working.
    more = make_batch(gpus=1, samples_per_gpu=1, start=T0 + timedelta(seconds=20))
    more["batch_id"] = "more"
    ingest(more)
    repository.clear_dirty(session, keys)
    assert _count(session, RollupDirty) >= 1
