"""Mark ledger hours stale: after a rollup, a bill or a price change (``CostDirty``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, func, select
from sqlalchemy.orm import Session

from app.kit import dirtyqueue
from app.models import CostDirty, CostLedgerHour, Gpu, Node

ROWS_PER_STATEMENT = 2000


def mark(session: Session, keys: Iterable[tuple[int, datetime]]) -> int:
    """Mark (node, hour) ledger keys stale; a re-mark bumps ``version`` so that a running
    re-pricing that read the old inputs does not clear it."""
    return dirtyqueue.mark(session, cast(Table, CostDirty.__table__), "hour", keys)


def mark_gpu_hours(session: Session, keys: Iterable[tuple[int, datetime]]) -> int:
    """Mark the (GPU, hour) buckets a rollup rewrote, as their nodes' hours."""
    pairs = set(keys)
    gpu_ids = sorted({g for g, _ in pairs})
    nodes: dict[int, int] = {}
    for start in range(0, len(gpu_ids), ROWS_PER_STATEMENT):
        chunk = gpu_ids[start : start + ROWS_PER_STATEMENT]
        stmt = select(Gpu.id, Gpu.node_id).where(Gpu.id.in_(chunk))
        nodes.update({gpu: node for gpu, node in session.execute(stmt).all()})  # noqa: C416  (a Result has .keys(): dict() would read it as a mapping)
    return mark(session, ((nodes[g], h) for g, h in pairs if g in nodes))


def mark_ledger(
    session: Session,
    *,
    sources: Iterable[str],
    node_ids: Iterable[int] | None = None,
    instance_types: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """Mark the hours already in the ledger that match: by source (e.g. every estimate), node,
    instance type and time; used when a bill or a price changes what those hours cost."""
    ledger = CostLedgerHour
    conditions: list[ColumnElement[bool]] = [ledger.source.in_(list(sources))]
    if node_ids is not None:
        conditions.append(ledger.node_id.in_(sorted(set(node_ids))))
    if instance_types is not None:
        types = sorted({t.lower() for t in instance_types})
        conditions.append(
            ledger.node_id.in_(select(Node.id).where(func.lower(Node.instance_type).in_(types)))
        )
    if start is not None:
        conditions.append(ledger.hour >= start)
    if end is not None:
        conditions.append(ledger.hour < end)
    stmt = select(ledger.node_id, ledger.hour).where(and_(*conditions)).distinct()
    return mark(session, session.execute(stmt))
