"""Celery tasks: thin wrappers that open a session and call a service."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db import session_scope
from app.models import GpuSample
from app.worker import celery_app


@celery_app.task(name="system.count_samples", acks_late=True)  # type: ignore[untyped-decorator]
def count_samples() -> int:
    """How many GPU samples are stored (a liveness probe for workers that also reads the DB)."""
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(GpuSample)) or 0
