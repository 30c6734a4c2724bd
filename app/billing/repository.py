"""Bulk SQL for line items: COPY on PostgreSQL, executemany on SQLite; scope replacement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.billing.importer import LineItem
from app.models import BillingLineItem, Node

PREFIX_COLUMNS = ("import_id", "x_source_system", "x_dataset", "x_exchange_rate")
COLUMNS = PREFIX_COLUMNS + LineItem._fields
_MONEY_AT = {LineItem._fields.index(f) for f in
             ("billed_cost", "effective_cost", "list_cost", "pricing_quantity")}  # fmt: skip
_TIME_AT = {LineItem._fields.index(f) for f in ("billing_period_start", "billing_period_end",
                                                 "charge_period_start", "charge_period_end")}  # fmt: skip


def _sqlite_converters() -> list[Any]:
    times: dict[datetime, str] = {}

    def dt(v: datetime | None) -> str | None:
        if v is None:
            return None
        text = times.get(v)
        if text is None:
            # SQLAlchemy's SQLite DateTime format, naive UTC (see app.db.UTCDateTime).
            text = times[v] = v.replace(tzinfo=None).isoformat(" ", "microseconds")
        return text

    def money(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    return [money if i in _MONEY_AT else dt if i in _TIME_AT else None
            for i in range(len(LineItem._fields))]  # fmt: skip


def insert_line_items(
    session: Session, prefix: Sequence[Any], items: Iterable[tuple[Decimal, LineItem]]
) -> int:
    """Insert ``(exchange_rate, item)`` pairs for one import; returns the count."""
    conn = session.connection()
    count = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            sql = f"COPY billing_line_items ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for rate, item in items:
                    copy.write_row((*prefix, rate, *item))
                    count += 1
        return count
    converters = _sqlite_converters()
    conv = [(i, c) for i, c in enumerate(converters) if c is not None]
    head = tuple(prefix)
    rows = []
    for rate, item in items:
        values = list(item)
        for i, c in conv:
            values[i] = c(values[i])
        rows.append((*head, format(rate, "f"), *values))
    if rows:
        marks = ", ".join("?" * len(COLUMNS))
        conn.exec_driver_sql(
            # Column names are the constants above; values are bound parameters.
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
