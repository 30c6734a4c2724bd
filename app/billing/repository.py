"""Bulk SQL for line items: COPY on PostgreSQL, executemany on SQLite; scope replacement."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from queue import Queue

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.orm import Session

from app.billing.rows import COLUMNS, LineItems
from app.billing.scalesets import NodeKeys
from app.models import BillingImport, BillingLineItem, Node

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
            # Column names are the constants in rows.py; values are bound parameters.
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
    delivery: str | None,
    run: str,
) -> int:
    """Delete the rows a new export supersedes: of the same source, dataset, account and
    billing period, from earlier imports of the same ``delivery`` (the file, or a multi-file
    delivery's name) but another ``run``; with ``delivery`` None (``--replace``), from every
    earlier import of another run. Files of one run never replace each other.

    Each import records its scopes (``options["scopes"]``), so the delete names the earlier
    imports of a scope and reads their rows through the primary key (import_id, row_number).
    """
    wanted = {(account, period.isoformat()) for account, period in scopes}
    earlier: dict[tuple[str, str], list[int]] = {}
    for other_id, file_name, options in session.execute(
        select(BillingImport.id, BillingImport.file_name, BillingImport.options).where(
            BillingImport.source_system == source_system,
            BillingImport.dataset == dataset,
            BillingImport.status == "succeeded",
            BillingImport.id != import_id,
        )
    ):
        options = options or {}
        # Imports from before deliveries were recorded: each file was its own delivery and run.
        if (options.get("run") or f"import-{other_id}") == run:
            continue
        if delivery is not None and (options.get("delivery") or file_name) != delivery:
            continue
        for account, period in options.get("scopes", []):
            if (account, period) in wanted:
                earlier.setdefault((account, period), []).append(other_id)
    removed = 0
    for (account, period), ids in earlier.items():
        result = session.execute(
            delete(BillingLineItem).where(
                BillingLineItem.import_id.in_(ids),
                BillingLineItem.billing_account_id == account,
                BillingLineItem.billing_period_start == datetime.fromisoformat(period),
            )
        )
        removed += result.rowcount  # type: ignore[attr-defined]
    return removed


def node_keys(session: Session) -> NodeKeys:
    """Lower-cased cloud instance ids (and names) of known nodes → node id; a scale-set
    instance's key also finds a node by its AKS or ``VMName`` name (``scalesets.NodeKeys``)."""
    keys = NodeKeys()
    for node_id, instance_id, name in session.execute(select(Node.id, Node.instance_id, Node.name)):
        keys.setdefault(name.lower(), node_id)
        if instance_id:
            keys[instance_id.lower()] = node_id
    return keys


def match_nodes(session: Session, *, keys: set[str]) -> int:
    """Set ``node_id`` on line items whose resource key names a known node; returns the count.

    Imports match rows as they are written (``LineItems.set_nodes``); this is for nodes that
    registered later. There is no index on the resource key (it would slow every import), so each
    key is a scan: run it rarely.
    """
    known = node_keys(session)
    matched = 0
    for key in keys:
        node_id = known.get(key.lower())
        if node_id is None:
            continue
        stmt = update(BillingLineItem).where(BillingLineItem.x_resource_key == key)
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
