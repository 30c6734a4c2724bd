"""findings.evaluate on a real Celery worker (Redis + PostgreSQL), in the embedded scheduler,
and in the one list of periodic jobs after the rollup and the re-pricing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import migrate
from app.db import make_engine, reset_engine, session_scope
from app.findings import tasks
from app.models import Finding, FindingCursor
from app.scheduler import PERIODIC_JOBS, EmbeddedScheduler, PeriodicJob
from app.worker import celery_app, make_celery
from tests.app.findings.series import MINUTE, T0, H, held, make_node, write_gpu, write_host

NOW = T0 + 45 * MINUTE


def _idle_job(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [held(0)] * 45)
    write_host(session, node, [H()] * 45)


def test_evaluate_runs_every_minute_after_the_rollup_and_the_repricing() -> None:
    names = [job.task for job in PERIODIC_JOBS]
    assert names.index("usage.rollup") < names.index("findings.evaluate")
    assert names.index("costs.reprice") < names.index("findings.evaluate")
    job = PERIODIC_JOBS[names.index("findings.evaluate")]
    assert job.interval_seconds == 60.0
    assert job.resolve() is tasks.evaluate
    assert celery_app.conf.beat_schedule["findings.evaluate"]["schedule"] == 60.0
    assert "findings.evaluate" in celery_app.tasks


def test_real_worker_evaluates(worker: dict[str, str]) -> None:
    engine = make_engine(worker["db_url"])
    with Session(engine) as s, s.begin():
        _idle_job(s)
    celery = make_celery(worker["redis_url"])
    result = celery.send_task("findings.evaluate", args=[NOW.isoformat()], queue=worker["queue"])
    stats = result.get(timeout=120)  # a bound so a broken worker fails instead of hanging
    assert stats["window_end"] == NOW.isoformat()
    assert stats["opened"] >= 1
    with Session(engine) as s:
        kinds = set(s.scalars(select(Finding.kind)))
        assert "idle_allocated" in kinds
    engine.dispose()


_RAN: list[dict[str, Any]] = []


def _evaluate_at_now() -> None:
    _RAN.append(tasks.evaluate(NOW.isoformat()))


@pytest.fixture
def embedded_db() -> Iterator[None]:
    reset_engine()
    migrate.upgrade()  # the embedded SQLite file in the test's data directory
    yield
    reset_engine()


def test_embedded_scheduler_runs_the_same_task_without_redis(
    embedded_db: None, tmp_path: Path
) -> None:
    with session_scope() as session:
        _idle_job(session)
    _RAN.clear()
    scheduler = EmbeddedScheduler(
        [PeriodicJob("findings.evaluate", 0.05, "tests.app.findings.test_tasks:_evaluate_at_now")]
    )
    scheduler.start()
    try:
        for _ in range(600):
            if scheduler.runs["findings.evaluate"] >= 2:
                break
            scheduler._stop.wait(0.05)
    finally:
        scheduler.stop()
    assert scheduler.runs["findings.evaluate"] >= 2
    assert _RAN[0]["opened"] >= 1
    assert _RAN[1]["opened"] == 0  # the same now again: nothing to do
    with session_scope() as session:
        assert session.get(FindingCursor, "minutes").evaluated_until == NOW  # type: ignore[union-attr]
        assert session.scalars(select(Finding.kind).where(Finding.kind == "idle_allocated")).all()
