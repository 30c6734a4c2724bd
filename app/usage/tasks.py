"""Celery tasks of the usage domain; the embedded scheduler calls the same functions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app.db import session_scope
from app.usage import retention, service
from app.worker import celery_app


@celery_app.task(name="usage.rollup", acks_late=True)  # type: ignore[untyped-decorator]
def rollup() -> dict[str, int]:
    """Recompute every rollup bucket that ingest marked dirty (idempotent)."""
    return asdict(service.rollup_all(session_scope))


@celery_app.task(name="usage.retention", acks_late=True)  # type: ignore[untyped-decorator]
def apply_retention() -> dict[str, Any]:
    """Drop expired raw partitions and rollups; create partitions ahead."""
    with session_scope() as session:
        return asdict(retention.apply_retention(session))
