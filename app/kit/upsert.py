"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` that reports how many rows were new."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import Base

# Keeps every statement well under PostgreSQL's 65,535 bind parameters and SQLite's 32,766.
ROWS_PER_STATEMENT = 1000


def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert ``rows``, skipping any whose ``keys`` already exist; return the number inserted."""
    if not rows:
        return 0
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key_columns = [table.c[k] for k in keys]
    inserted = 0
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        stmt = (
            insert(table)
            .values(list(chunk))
            .on_conflict_do_nothing(index_elements=key_columns)
            .returning(key_columns[0])
        )
        inserted += len(session.execute(stmt).all())
    return inserted


def upsert(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows``, replacing the other columns of rows whose ``keys`` already exist."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = list(rows[0])
    per_statement = max(1, 30_000 // max(1, len(columns)))
    for start in range(0, len(rows), per_statement):
        stmt = insert(table).values(list(rows[start : start + per_statement]))
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
        )
        session.execute(stmt)
