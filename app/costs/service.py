"""Read the cost ledger: sums over a window by any grouping, without re-pricing anything.

Whole UTC days come from ``cost_ledger_days`` (one row per node, owner and source per day); the
hours at the window's ragged ends from ``cost_ledger_hours``. PostgreSQL sums in SQL (NUMERIC is
exact); SQLite keeps money as text, so it sums in Python with Decimal (embedded-size data).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, type_coerce, union_all
from sqlalchemy.orm import Session

from app.costs.engine import GROUPS
from app.costs.ledger import MONEY
from app.db import UTCDateTime
from app.kit.timebuckets import DAY, floor_day, floor_hour, utc
from app.models import Cluster, CostLedgerDay, CostLedgerHour, Node

KEYS = (*GROUPS, "owner", "source", "currency", "day", "hour", "node_id")
SUMS = ("gpu_seconds", "energy_joules", *MONEY)
Model = type[CostLedgerDay] | type[CostLedgerHour]
Where = Callable[[Any], Sequence[ColumnElement[bool]]]


@dataclass
class Sums:
    """Summed ledger columns of one group (exact money)."""

    gpu_seconds: float = 0.0
    energy_joules: float = 0.0
    money: dict[str, Decimal] = field(default_factory=lambda: {m: Decimal(0) for m in MONEY})

    def merge(self, other: Sums) -> None:
        self.gpu_seconds += other.gpu_seconds
        self.energy_joules += other.energy_joules
        for m in MONEY:
            self.money[m] += other.money[m]

    def add(self, row: Any, columns: Sequence[str] = SUMS) -> None:
        """Add a row's ``columns`` (the others count as zero)."""
        for c in columns:
            value = row[c]
            if c in MONEY:
                self.money[c] += Decimal(value or 0)
            elif c == "gpu_seconds":
                self.gpu_seconds += float(value or 0)
            else:
                self.energy_joules += float(value or 0)


def _column(model: Model, key: str, dialect: str) -> Any:
    if key == "node":
        return Node.name
    if key == "cluster":
        return func.coalesce(Cluster.name, "none")
    if key == "instance_type":
        return func.coalesce(Node.instance_type, "none")
    if key == "day" and model is CostLedgerDay:
        return CostLedgerDay.day
    if key == "day" and dialect == "postgresql":
        return type_coerce(func.date_trunc("day", CostLedgerHour.hour, "UTC"), UTCDateTime())
    if key in ("day", "hour"):  # SQLite: the hour, floored to its day in Python
        return model.day if model is CostLedgerDay else model.hour  # type: ignore[union-attr]
    return getattr(model, key)


def _rows(model: Model, keys: Sequence[str], columns: Sequence[str], start: datetime,
          end: datetime, where: Where | None, dialect: str) -> Select[Any]:  # fmt: skip
    """The ledger rows of one table in [start, end): the key columns and the summed ones."""
    time = model.day if model is CostLedgerDay else model.hour  # type: ignore[union-attr]
    key_cols = [_column(model, k, dialect).label(k) for k in keys]
    stmt = select(*key_cols, *(getattr(model, s).label(s) for s in columns))
    stmt = stmt.where(time >= start, time < end)
    if {"node", "cluster", "instance_type"} & set(keys):
        stmt = stmt.join(Node, Node.id == model.node_id)
        if "cluster" in keys:
            stmt = stmt.outerjoin(Cluster, Cluster.id == Node.cluster_id)
    if where is not None:
        stmt = stmt.where(*where(model))
    return stmt


def sum_ledger(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    keys: Sequence[str],
    where: Where | None = None,
    hourly: bool = False,
    largest: str | None = None,
    limit: int | None = None,
    columns: Sequence[str] = SUMS,
) -> dict[tuple[Any, ...], Sums]:
    """Ledger sums over the hours in [floor_hour(start), end), by ``keys`` (see ``KEYS``;
    ``day`` is the UTC day). ``hourly`` reads only hour rows (for zones other than UTC).
    With ``largest`` (a money column) and ``limit``: only the ``limit`` groups where that
    column is largest, largest first. ``columns``: only these are summed (the rest stay 0)."""
    start, end = floor_hour(utc(start)), utc(end)
    out: dict[tuple[Any, ...], Sums] = defaultdict(Sums)
    if end <= start:
        return out
    first_day = floor_day(start) if floor_day(start) == start else floor_day(start) + DAY
    last_day = floor_day(end)
    ranges: list[tuple[Model, datetime, datetime]] = []
    if hourly or first_day >= last_day:
        ranges.append((CostLedgerHour, start, end))
    else:
        ranges += [(CostLedgerHour, start, first_day), (CostLedgerDay, first_day, last_day),
                   (CostLedgerHour, last_day, end)]  # fmt: skip
    dialect = session.get_bind().dialect.name
    parts = [_rows(m, keys, columns, lo, hi, where, dialect) for m, lo, hi in ranges if hi > lo]
    if dialect == "postgresql":
        # One statement: the parts' rows unioned, grouped, and ranked by the database.
        rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        key_cols = [rows.c[k] for k in keys]
        stmt = select(*key_cols, *(func.sum(rows.c[s]).label(s) for s in columns))
        stmt = stmt.group_by(*key_cols)
        if largest is not None:
            stmt = stmt.order_by(func.sum(rows.c[largest]).desc(), *key_cols).limit(limit)
        for row in session.execute(stmt):
            out[tuple(row._mapping[k] for k in keys)].add(row._mapping, columns)
        return out
    for part in parts:
        for row in session.execute(part):
            values = row._mapping
            key = tuple(floor_day(values[k]) if k == "day" else values[k] for k in keys)
            out[key].add(values, columns)
    if largest is not None:
        ranked = sorted(out.items(), key=lambda kv: (-kv[1].money[largest], kv[0]))[:limit]
        return dict(ranked)
    return out


@dataclass(frozen=True)
class NodePricing:
    """How a node's hours in a window were priced, when not from its bill."""

    node: str
    source: str  # estimated | unpriced | onprem
    gpu_hours: Decimal
    detail: str | None  # the ratio used, or why it is unpriced


def pricing_notes(session: Session, *, start: datetime, end: datetime) -> list[NodePricing]:
    """Nodes with estimated or unpriced hours in the window, with the ratio or the reason."""
    sums = sum_ledger(session, start=start, end=end, keys=["node_id", "source"],
                      where=lambda m: [m.source.in_(["estimated", "unpriced"])],
                      columns=["gpu_seconds"])  # fmt: skip
    h = CostLedgerHour
    names: dict[int, str] = {}
    details: dict[tuple[int, str], str | None] = {}
    for source, column in (("estimated", h.price_basis), ("unpriced", h.unpriced_reason)):
        nodes = sorted(n for n, src in sums if src == source)
        if not nodes:
            continue
        # Per node, the latest basis (or reason) in the window: one index probe each.
        latest = (
            select(column)
            .where(h.node_id == Node.id, h.source == source, h.hour >= floor_hour(utc(start)),
                   h.hour < utc(end))
            .order_by(h.hour.desc())
            .limit(1)
            .scalar_subquery()
        )  # fmt: skip
        for node_id, name, detail in session.execute(
            select(Node.id, Node.name, latest).where(Node.id.in_(nodes))
        ):
            names[node_id] = name
            details[node_id, source] = detail
    out = [
        NodePricing(names.get(node_id, str(node_id)), source,
                    (Decimal(str(s.gpu_seconds)) / 3600).quantize(Decimal("0.0001")),
                    details.get((node_id, source)))
        for (node_id, source), s in sums.items()
    ]  # fmt: skip
    return sorted(out, key=lambda p: (p.node, p.source))


@dataclass
class CostReport:
    """GET /costs: one currency's spend over a window, by group (exact)."""

    group_by: str
    start: datetime
    end: datetime
    currency: str
    other_currencies: list[str]
    groups: dict[str, dict[str, Decimal]]
    total: dict[str, Decimal]
    pricing: list[NodePricing]


AMOUNTS = ("cost", "billed_cost", "estimated_cost", "onprem_cost", "utilized_cost",
           "idle_cost", "unused_cost", "unmeasured_cost", "energy_cost")  # fmt: skip
QUANTITIES = ("gpu_hours", "unpriced_gpu_hours", "energy_kwh")


def cost_report(
    session: Session, *, start: datetime, end: datetime, group_by: str, currency: str | None = None
) -> CostReport:
    """GPU spend in [start, end) by ``group_by``, read from the ledger; groups add to the total."""
    sums = sum_ledger(session, start=start, end=end, keys=[group_by, "source", "currency"])
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, _, cur), s in sums.items():
        by_currency[cur] += abs(s.money["cost"]) + Decimal(str(s.gpu_seconds)) / 10**9
    chosen = currency or (max(by_currency, key=lambda c: by_currency[c]) if by_currency else "USD")
    groups: dict[str, dict[str, Decimal]] = {}
    for (name, source, cur), s in sums.items():
        if cur != chosen:
            continue
        g = groups.setdefault(str(name), {k: Decimal(0) for k in (*AMOUNTS, *QUANTITIES)})
        hours = Decimal(str(s.gpu_seconds)) / 3600
        g["gpu_hours"] += hours
        g["energy_kwh"] += Decimal(str(s.energy_joules)) / 3_600_000
        for m in MONEY:
            g[m] += s.money[m]
        if source == "unpriced":
            g["unpriced_gpu_hours"] += hours
        else:
            g[f"{source}_cost"] += s.money["cost"]
    total = {k: sum((g[k] for g in groups.values()), Decimal(0)) for k in (*AMOUNTS, *QUANTITIES)}
    return CostReport(group_by, start, end, chosen, sorted(set(by_currency) - {chosen}), groups,
                      total, pricing_notes(session, start=start, end=end))  # fmt: skip
