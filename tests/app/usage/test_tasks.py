"""usage.rollup on a real Celery worker (Redis + PostgreSQL); tasks in beat and embedded mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.db import make_engine
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import GpuHourRollup, GpuMinuteRollup, GpuSample, HostMinuteRollup, RollupDirty
from app.scheduler import PERIODIC_JOBS
from app.usage import retention
from app.worker import celery_app, make_celery
from tests.factories.nodes import make_batch


def _count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


def test_real_worker_rolls_up(worker: dict[str, str]) -> None:
    engine = make_engine(worker["db_url"])
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    with Session(engine) as s, s.begin():
        secret = auth_service.create_node_token(s, node_name="node-a").secret
        token = auth_service.authenticate_node(s, secret)
        batch = IngestBatch.model_validate(make_batch(gpus=2, samples_per_gpu=12, start=start))
        ingest_service.ingest_batch(s, token=token, batch=batch)
    celery = make_celery(worker["redis_url"])
    result = celery.send_task("usage.rollup", queue=worker["queue"])
    stats = result.get(timeout=120)  # a bound so a broken worker fails instead of hanging
    assert stats["gpu_minutes"] == 4
    with Session(engine) as s:
        assert _count(s, GpuMinuteRollup) == 4
        assert _count(s, GpuHourRollup) >= 2
        assert _count(s, HostMinuteRollup) == 2
        assert _count(s, RollupDirty) == 0
    engine.dispose()


def test_tasks_are_scheduled_in_beat_and_embedded_mode() -> None:
    names = {job.task for job in PERIODIC_JOBS}
    assert {"usage.rollup", "usage.retention"} <= names
    assert "usage.rollup" in celery_app.conf.beat_schedule
    for job in PERIODIC_JOBS:
        if job.task.startswith("usage."):
            assert callable(job.resolve())


def test_retention_drops_old_raw_data_and_minutes(session: Session, ingest) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    old = make_batch(gpus=1, samples_per_gpu=3, start=now - timedelta(days=20))
    new = make_batch(gpus=1, samples_per_gpu=3, start=now - timedelta(hours=1))
    new["batch_id"] = "new"
    ingest(old)
    ingest(new)
    from app.usage import service

    service.rollup_pending(session)
    ancient = update(GpuMinuteRollup).values(bucket=now - timedelta(days=100))
    session.execute(ancient.where(GpuMinuteRollup.bucket < now - timedelta(days=10)))
    result = retention.apply_retention(session, now=now)
    assert _count(session, GpuSample) == 3
    if session.get_bind().dialect.name == "postgresql":
        assert any(name.startswith("gpu_samples_p") for name in result.dropped_partitions)
    else:
        assert result.deleted_rows["gpu_samples"] == 3
    assert result.deleted_rows["gpu_minute_rollups"] == 1
    assert _count(session, GpuHourRollup) == 2  # hourly rollups are kept
