"""Celery application (Redis broker), beat schedule, and enqueue-after-commit."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.config import settings
from app.scheduler import PERIODIC_JOBS

TASK_MODULES = [
    "app.tasks", "app.usage.tasks", "app.billing.tasks", "app.costs.tasks", "app.findings.tasks",
]  # fmt: skip


def make_celery(redis_url: str | None) -> Celery:
    app = Celery("gpuledger", broker=redis_url, backend=redis_url, include=TASK_MODULES)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        beat_schedule={
            job.task: {"task": job.task, "schedule": job.interval_seconds} for job in PERIODIC_JOBS
        },
    )
    return app


celery_app = make_celery(settings.redis_url)

_PENDING = "gpuledger_pending_tasks"


def enqueue_after_commit(session: Session, task: Task, *args: Any) -> None:
    """Send ``task`` only once ``session`` commits; a rollback drops it."""
    session.info.setdefault(_PENDING, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for task, args in session.info.pop(_PENDING, []):
        task.delay(*args)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
