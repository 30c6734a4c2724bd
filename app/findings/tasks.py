"""Celery task of the findings domain; the embedded scheduler calls the same function."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from app.db import session_scope
from app.findings import service
from app.worker import celery_app


@celery_app.task(name="findings.evaluate", acks_late=True)  # type: ignore[untyped-decorator]
def evaluate(now: str | None = None) -> dict[str, Any]:
    """Evaluate every GPU and node up to ``now`` (ISO 8601, default: the current time)."""
    at = datetime.fromisoformat(now) if now else datetime.now(UTC)
    with session_scope() as session:
        stats = service.evaluate(session, now=at)
    out = asdict(stats)
    for key in ("window_start", "window_end"):
        out[key] = None if out[key] is None else out[key].isoformat()
    return out
