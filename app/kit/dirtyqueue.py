"""Versioned "to redo" queues (re-pricing, findings): mark keys, a re-mark bumps ``version``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

ROWS_PER_STATEMENT = 2000


def mark(session: Session, table: Table, column: str, keys: Iterable[tuple[int, datetime]]) -> int:
    """Queue (node_id, ``column``) keys in ``table``; a key already queued gets ``version`` + 1,
    so that a pass which read the old inputs does not clear it. Sorted: a stable lock order."""
    rows = sorted(set(keys))
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).on_conflict_do_update(
        index_elements=[table.c.node_id, table.c[column]], set_={"version": table.c.version + 1}
    )
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk: list[dict[str, Any]] = [
            {"node_id": n, column: t, "version": 1}
            for n, t in rows[start : start + ROWS_PER_STATEMENT]
        ]
        session.execute(stmt, chunk)
    return len(rows)
