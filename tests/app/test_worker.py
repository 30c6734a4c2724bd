"""A real Celery worker on the real Redis runs GPU Ledger tasks against PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.db import make_engine
from app.scheduler import EmbeddedScheduler, PeriodicJob
from app.worker import make_celery
from tests.factories.nodes import create_node_token, make_batch


def test_real_worker_reads_the_database(worker: dict[str, str]) -> None:
    from sqlalchemy.orm import Session as OrmSession

    from app.auth import service as auth_service
    from app.ingest import service as ingest_service
    from app.ingest.schemas import IngestBatch

    engine = make_engine(worker["db_url"])
    with OrmSession(engine) as s, s.begin():
        token = auth_service.create_node_token(s, node_name="node-a")
        stored = auth_service.authenticate_node(s, token.secret)
        ingest_service.ingest_batch(
            s, token=stored, batch=IngestBatch.model_validate(make_batch(gpus=2))
        )
    engine.dispose()

    celery = make_celery(worker["redis_url"])
    result = celery.send_task("system.count_samples", queue=worker["queue"])
    # A generous bound so a broken worker fails the test instead of hanging it.
    assert result.get(timeout=120) == 6


def test_embedded_scheduler_runs_jobs_without_redis(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = PeriodicJob("test.touch", 0.05, "tests.app.test_worker:_touch_marker")
    _MARKERS.append(marker)
    scheduler = EmbeddedScheduler([job])
    scheduler.start()
    try:
        for _ in range(400):
            if scheduler.runs["test.touch"] >= 2:
                break
            scheduler._stop.wait(0.05)
    finally:
        scheduler.stop()
    assert scheduler.runs["test.touch"] >= 2
    assert marker.read_text().count("x") >= 2


_MARKERS: list[Path] = []


def _touch_marker() -> None:
    with _MARKERS[-1].open("a") as f:
        f.write("x")


def test_enqueue_after_commit_sends_only_on_commit(session: Session) -> None:
    from app import worker

    sent: list[tuple] = []

    class FakeTask:
        def delay(self, *args: object) -> None:
            sent.append(args)

    create_node_token(session)
    worker.enqueue_after_commit(session, FakeTask(), "rolled-back")
    session.rollback()
    assert sent == []
    create_node_token(session, node="node-b")
    worker.enqueue_after_commit(session, FakeTask(), "kept")
    assert sent == []  # not before the commit
    worker.enqueue_after_commit(session, FakeTask(), "also kept")
    session.commit()
    assert sent == [("kept",), ("also kept",)]
