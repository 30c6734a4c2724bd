"""Rewritten minutes the findings evaluator has already read (``FindingDirty``).

The rollup calls ``mark_rollup`` for every minute bucket it rewrites; only minutes before the
evaluator's cursor are queued (later ones will be read anyway). The next evaluation starts its
window early enough for the earliest queued minute of each node, then clears what it read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.orm import Session

from app.kit import dirtyqueue
from app.models import FindingCursor, FindingDirty, Gpu

CURSOR = "minutes"
ROWS_PER_STATEMENT = 2000


def cursor(session: Session) -> datetime | None:
    """Every minute before this has been evaluated (None before the first evaluation)."""
    return session.scalar(select(FindingCursor.evaluated_until).where(FindingCursor.name == CURSOR))


def mark(session: Session, keys: Iterable[tuple[int, datetime]]) -> int:
    """Queue (node, minute) keys; a re-mark bumps ``version`` so a running pass keeps it."""
    return dirtyqueue.mark(session, cast(Table, FindingDirty.__table__), "minute", keys)


def mark_rollup(session: Session, kind: str, keys: Iterable[tuple[int, datetime]]) -> int:
    """Queue the (GPU or node, minute) buckets a rollup rewrote, if already evaluated."""
    until = cursor(session)
    if until is None:
        return 0
    early = {(e, m) for e, m in keys if m < until}
    if not early:
        return 0
    if kind == "host":
        return mark(session, early)
    gpu_ids = sorted({g for g, _ in early})
    nodes: dict[int, int] = {}
    for start in range(0, len(gpu_ids), ROWS_PER_STATEMENT):
        chunk = gpu_ids[start : start + ROWS_PER_STATEMENT]
        stmt = select(Gpu.id, Gpu.node_id).where(Gpu.id.in_(chunk))
        nodes.update((gpu, node) for gpu, node in session.execute(stmt))
    return mark(session, ((nodes[g], m) for g, m in early if g in nodes))


DirtyKey = tuple[int, datetime, int]


def claim(session: Session) -> tuple[dict[int, datetime], list[DirtyKey]]:
    """The earliest queued minute per node, and the keys (with versions) to clear after."""
    rows = [
        (n, m, v)
        for n, m, v in session.execute(
            select(FindingDirty.node_id, FindingDirty.minute, FindingDirty.version)
        )
    ]
    earliest: dict[int, datetime] = {}
    for node, minute, _ in rows:
        if node not in earliest or minute < earliest[node]:
            earliest[node] = minute
    return earliest, rows


def clear(session: Session, keys: list[DirtyKey]) -> None:
    """Forget the keys just re-evaluated, unless the rollup re-marked them meanwhile."""
    table = cast(Table, FindingDirty.__table__)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        session.execute(
            delete(table).where(tuple_(table.c.node_id, table.c.minute, table.c.version).in_(chunk))
        )


def pending(session: Session) -> int:
    """How many (node, minute) keys wait (for tests and metrics)."""
    return int(session.scalar(select(func.count()).select_from(FindingDirty)) or 0)
