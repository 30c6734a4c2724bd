"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` that reports how many rows were new."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Table
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
    # One cached statement, executed with a list of parameter sets: SQLAlchemy batches it into
    # multi-row INSERTs ("insertmanyvalues") without compiling a statement per batch.
    stmt = (
        insert(table).on_conflict_do_nothing(index_elements=key_columns).returning(key_columns[0])
    )
    inserted = 0
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = list(rows[start : start + ROWS_PER_STATEMENT])
        inserted += len(session.execute(stmt, chunk).all())
    return inserted


def upsert(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows``, replacing the other columns of rows whose ``keys`` already exist."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    columns = list(rows[0])
    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        # psycopg runs an executemany without RETURNING as one statement per row (pipelined):
        # ~10k rows/s. COPY + one INSERT … SELECT is ~10x that (rollup catch-up, bench/query).
        names = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys)
        with _staged(session, table, rows, columns) as (cur, staging):
            cur.execute(
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "  # noqa: S608
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
            )
        return
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c: stmt.excluded[c] for c in columns if c not in keys},
    )
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        session.execute(stmt, list(rows[start : start + ROWS_PER_STATEMENT]))


# Below this many rows one multi-row INSERT beats COPY's extra round trips (bench/ingest.py).
COPY_MIN_ROWS = 16
STAGING_TRUNCATE_EVERY = 200


def bulk_insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """As ``insert_ignore``; on PostgreSQL large batches go through COPY into a temporary
    table and one ``INSERT … SELECT … ON CONFLICT DO NOTHING``."""
    if len(rows) < COPY_MIN_ROWS or session.get_bind().dialect.name != "postgresql":
        return insert_ignore(session, model, rows, keys)
    table = cast(Table, model.__table__)
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    with _staged(session, table, rows, columns) as (cur, staging):
        cur.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "  # noqa: S608
            f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
        )
        return int(cur.rowcount)


@contextmanager
def _staged(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], columns: list[str]
) -> Iterator[tuple[Any, str]]:
    """COPY ``rows`` into the connection's temporary staging table of ``table``."""
    names = ", ".join(f'"{c}"' for c in columns)
    staging = f"_staging_{table.name}"
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    dbapi = session.connection().connection.driver_connection
    with dbapi.cursor() as cur:  # type: ignore[union-attr]
        # Per connection; pooled connections keep it. ON COMMIT DELETE ROWS would truncate
        # (files, ~20 ms) on every commit, so it is emptied before use instead.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table.name} INCLUDING DEFAULTS)"
        )
        # DELETE leaves dead rows that autovacuum never visits in temp tables: TRUNCATE now
        # and then (rarely, it costs file operations).
        info = session.connection().connection.info
        uses = info[staging] = info.get(staging, 0) + 1
        empty = "TRUNCATE" if uses % STAGING_TRUNCATE_EVERY == 0 else "DELETE FROM"
        cur.execute(f"{empty} {staging}")
        with cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            if json_columns:
                for row in rows:
                    copy.write_row(
                        [_json(row[c]) if c in json_columns else row[c] for c in columns]
                    )
            else:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        yield cur, staging


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()
