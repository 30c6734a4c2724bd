"""Bulk SQL for line items: COPY on PostgreSQL, executemany on SQLite; scope replacement."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from queue import Queue

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.orm import Session

from app.billing.importer import COLUMNS, LineItems
from app.models import BillingLineItem, Node

Writer = Callable[[LineItems], int]
COPY_QUEUE_CHUNKS = 2  # CSV chunks waiting for the server (each about CHUNK_BYTES of input)


@contextmanager
def line_item_writer(session: Session, prefix: tuple[int, str, str]) -> Iterator[Writer]:
    """A writer of an import's normalized chunks; returns the row count of each chunk written.

    PostgreSQL: one ``COPY … (FORMAT csv)`` for the whole file, fed from a thread through a
    short queue, so the server stores chunk k while this process parses chunk k + 1 and memory
    stays bounded. SQLite: ``executemany`` per chunk. Nothing else may use the connection meanwhile.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        yield lambda items: _insert_sqlite(conn, prefix, items)
        return
    raw = conn.connection.driver_connection
    sql = f"COPY billing_line_items ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
        feeder = _Feeder(copy.write)
        try:

            def write(items: LineItems) -> int:
                feeder.put(items.copy_csv(prefix))
                return items.num_rows

            yield write
        finally:
            feeder.close()


class _Feeder:
    """Runs ``send`` on a thread over a bounded queue (psycopg waits on the socket without the GIL).

    psycopg's own ``QueuedLibpqWriter`` would buffer up to 128 MiB ahead of a slow server.
    """

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self._send = send
        self._queue: Queue[bytes | None] = Queue(maxsize=COPY_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="billing-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:  # after an error, drain so put() never blocks
                try:
                    self._send(data)
                except BaseException as e:
                    self._error = e

    def put(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _insert_sqlite(conn: Connection, prefix: tuple[int, str, str], items: LineItems) -> int:
    rows = items.sqlite_rows(prefix)
    if rows:
        marks = ", ".join("?" * len(COLUMNS))
        conn.exec_driver_sql(
            # Column names are the constants in importer.py; values are bound parameters.
            f"INSERT INTO billing_line_items ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608
            rows,
        )
    return len(rows)


def replace_scopes(
    session: Session,
    *,
    import_id: int,
    source_system: str,
    dataset: str,
    scopes: set[tuple[str, datetime]],
) -> int:
    """Delete older rows of the same source, dataset, account and billing period."""
    removed = 0
    for account, period in scopes:
        result = session.execute(
            delete(BillingLineItem).where(
                BillingLineItem.x_source_system == source_system,
                BillingLineItem.x_dataset == dataset,
                BillingLineItem.billing_account_id == account,
                BillingLineItem.billing_period_start == period,
                BillingLineItem.import_id != import_id,
            )
        )
        removed += result.rowcount  # type: ignore[attr-defined]
    return removed


def node_keys(session: Session) -> dict[str, int]:
    """Lower-cased cloud instance ids (and names) of known nodes → node id."""
    keys: dict[str, int] = {}
    for node_id, instance_id, name in session.execute(select(Node.id, Node.instance_id, Node.name)):
        keys.setdefault(name.lower(), node_id)
        if instance_id:
            keys[instance_id.lower()] = node_id
    return keys


def match_nodes(session: Session, *, import_ids: Sequence[int] | None, keys: set[str]) -> int:
    """Set ``node_id`` on line items whose resource key names a known node; returns the count."""
    known = node_keys(session)
    matched = 0
    for key in keys:
        node_id = known.get(key.lower())
        if node_id is None:
            continue
        stmt = update(BillingLineItem).where(BillingLineItem.x_resource_key == key)
        if import_ids is not None:
            stmt = stmt.where(BillingLineItem.import_id.in_(import_ids))
        matched += session.execute(stmt.values(node_id=node_id)).rowcount  # type: ignore[attr-defined]
    return matched


def distinct_keys(session: Session) -> set[str]:
    return set(
        session.scalars(
            select(BillingLineItem.x_resource_key)
            .where(BillingLineItem.x_resource_key.is_not(None))
            .distinct()
        )
    )


def scope_counts(session: Session, import_id: int) -> int:
    return session.scalar(select(func.count()).where(BillingLineItem.import_id == import_id)) or 0
