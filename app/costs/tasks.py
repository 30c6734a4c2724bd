"""Celery task of the costs domain; the embedded scheduler calls the same function."""

from __future__ import annotations

from dataclasses import asdict

from app.costs import ledger
from app.db import session_scope
from app.worker import celery_app


@celery_app.task(name="costs.reprice", acks_late=True)  # type: ignore[untyped-decorator]
def reprice() -> dict[str, int]:
    """Re-price every ledger hour marked stale by rollups, bills or prices (idempotent)."""
    return asdict(ledger.reprice_all(session_scope))
