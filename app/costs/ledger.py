"""Write the cost ledger: re-price the (node, hour) keys marked stale, then their day totals.

Each run claims stale keys (``CostDirty``), loads per node the GPU-hours, the bill rows and the
price, rewrites exactly those hours in ``cost_ledger_hours`` and the node's touched days in
``cost_ledger_days``. Re-running changes nothing (idempotent): the rows are a function of the
rollups, the bills and the price book.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, select, tuple_
from sqlalchemy.orm import Session

from app.billing.pricebook import PriceBook, load_pricebook
from app.costs import dirty, scalesets
from app.costs.engine import (
    HOUR,
    LIST_PRICE,
    Charge,
    LedgerRow,
    NodeInfo,
    Ratio,
    hours_between,
    node_hour_costs,
    price_node_hours,
)
from app.kit.timebuckets import DAY, floor_day
from app.kit.upsert import bulk_insert_ignore
from app.models import (
    BillingImport,
    BillingLineItem,
    Cluster,
    CostDirty,
    CostLedgerDay,
    CostLedgerHour,
    Gpu,
    GpuHourRollup,
    Node,
)
from app.usage.service import gpu_hour_of

BATCH_KEYS = 5000  # stale (node, hour) keys per transaction
MAX_SPREAD = timedelta(days=400)  # a bill row longer than this (none seen) is not spread
RATIO_QUANTUM = Decimal("0.000001")
GPU_COMPONENTS = ("instance", "gpu")
MONEY = ("cost", "utilized_cost", "idle_cost", "unused_cost", "unmeasured_cost", "energy_cost")
# What pricing reads of an hourly rollup (plain rows: loading ORM objects was a third of the time).
USAGE_COLUMNS = [getattr(GpuHourRollup, c) for c in ("gpu_id", "bucket", "observed_seconds",
                 "utilization_mean", "idle_seconds", "low_util_seconds", "busy_seconds",
                 "energy_joules", "owners")]  # fmt: skip
DAY_KEY = ("node_id", "owner", "team", "project", "source", "currency")


@dataclass(frozen=True)
class RepriceStats:
    keys: int = 0
    hours: int = 0
    rows: int = 0
    days: int = 0


def node_infos(session: Session, node_ids: Iterable[int] | None = None) -> dict[int, NodeInfo]:
    """Nodes as the engine sees them: inventory, GPU count, labels and their bills' tags."""
    ids = None if node_ids is None else sorted(set(node_ids))
    gpu_counts = select(Gpu.node_id, func.count()).group_by(Gpu.node_id)
    nodes = select(Node, Cluster.name).outerjoin(Cluster, Cluster.id == Node.cluster_id)
    tags_q = (
        select(BillingLineItem.node_id, BillingLineItem.tags)
        .where(BillingLineItem.node_id.is_not(None), BillingLineItem.tags.is_not(None))
        .distinct()
    )
    if ids is not None:
        gpu_counts = gpu_counts.where(Gpu.node_id.in_(ids))
        nodes = nodes.where(Node.id.in_(ids))
        tags_q = tags_q.where(BillingLineItem.node_id.in_(ids))
    counts: dict[int, int] = {n: c for n, c in session.execute(gpu_counts).all()}  # noqa: C416  (a Result has .keys(): dict() would read it as a mapping)
    tags: dict[int, dict[str, Any]] = defaultdict(dict)
    for node_id, text in session.execute(tags_q):
        if node_id is not None and text:
            tags[node_id].update(json.loads(text))
    out = {}
    for node, cluster in session.execute(nodes):
        out[node.id] = NodeInfo(node.id, node.name, node.provider, node.instance_type, node.region,
                                cluster, counts.get(node.id, 1), dict(node.labels or {}),
                                tags.get(node.id, {}))  # fmt: skip
    return out


def import_currencies(session: Session) -> dict[int, str]:
    """The reporting currency of every import (what ``x_exchange_rate`` converts into)."""
    out = {}
    for import_id, options in session.execute(select(BillingImport.id, BillingImport.options)):
        out[import_id] = (options or {}).get("reporting_currency") or "USD"
    return out


def effective_rows(rows: Sequence[Any]) -> list[Any]:
    """Bill rows without the ones another dataset supersedes: where a source (Azure) has both
    datasets, its amortized rows are the effective cost and its actual rows are dropped.
    Rows need ``x_dataset`` and ``x_source_system``."""
    amortized = {r.x_source_system for r in rows if r.x_dataset == "amortized"}
    return [r for r in rows if not (r.x_dataset == "actual" and r.x_source_system in amortized)]


def node_charges(
    session: Session, node_id: int, start: datetime, end: datetime, currencies: dict[int, str]
) -> list[Charge]:
    """The node's matched bill rows overlapping [start, end), in their import's currency."""
    li = BillingLineItem
    rows = session.execute(
        select(li.import_id, li.charge_period_start, li.charge_period_end, li.effective_cost,
               li.x_exchange_rate, li.x_dataset, li.x_source_system)
        .where(li.node_id == node_id, li.charge_period_start < end, li.charge_period_end > start)
    ).all()  # fmt: skip
    return [
        Charge(node_id, r.charge_period_start, r.charge_period_end,
               r.effective_cost * r.x_exchange_rate, currencies.get(r.import_id, "USD"))
        for r in effective_rows(rows)
    ]  # fmt: skip


class RatioBook:
    """Effective/list ratios from the bills: per node, else per instance type."""

    def __init__(self, session: Session) -> None:
        li = BillingLineItem
        effective = func.sum(li.effective_cost * li.x_exchange_rate)
        listed = func.sum(li.list_cost * li.x_exchange_rate)
        base = (li.list_cost.is_not(None), li.list_cost > 0,
                li.x_cost_component.in_(GPU_COMPONENTS))  # fmt: skip
        self.by_node: dict[int, Ratio] = {}
        stmt = select(li.node_id, effective, listed).where(li.node_id.is_not(None), *base)
        for node_id, eff, lst in session.execute(stmt.group_by(li.node_id)):
            ratio = _ratio(eff, lst, "this node's bills")
            if ratio is not None and node_id is not None:
                self.by_node[node_id] = ratio
        self.by_type: dict[str, Ratio] = {}
        kind = func.lower(li.x_instance_type)
        stmt = select(kind, effective, listed).where(li.x_instance_type.is_not(None), *base)
        for instance_type, eff, lst in session.execute(stmt.group_by(kind)):
            ratio = _ratio(eff, lst, f"the bills of {instance_type} instances")
            if ratio is not None and instance_type:
                self.by_type[str(instance_type)] = ratio

    def find(self, node: NodeInfo) -> Ratio:
        if node.node_id in self.by_node:
            return self.by_node[node.node_id]
        return self.by_type.get((node.instance_type or "").lower(), LIST_PRICE)


def _ratio(effective: Any, listed: Any, basis: str) -> Ratio | None:
    if effective is None or not listed:
        return None
    # SQLite sums its decimal text as floats; six places is far below what an estimate means.
    value = (Decimal(str(effective)) / Decimal(str(listed))).quantize(RATIO_QUANTUM)
    return Ratio(value, f"{value} from {basis}")


@dataclass
class _Context:
    """What every node of one run shares: loaded once per run."""

    book: PriceBook
    ratios: RatioBook
    currencies: dict[int, str]
    scale_sets: scalesets.ScaleSetSplits


def reprice_pending(session: Session, *, limit: int = BATCH_KEYS) -> RepriceStats:
    """Re-price up to ``limit`` stale (node, hour) keys and clear them."""
    table = cast(Table, CostDirty.__table__)
    keys = session.execute(
        select(table.c.node_id, table.c.hour, table.c.version)
        .order_by(table.c.hour, table.c.node_id)
        .limit(limit)
    ).all()
    if not keys:
        return RepriceStats()
    by_node: dict[int, set[datetime]] = defaultdict(set)
    for node_id, hour, _ in keys:
        by_node[node_id].add(hour)
    stats = reprice(session, by_node)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        session.execute(
            delete(table).where(
                tuple_(table.c.node_id, table.c.hour, table.c.version).in_(
                    [tuple(k) for k in chunk]
                )
            )
        )
    session.flush()
    return RepriceStats(len(keys), stats.hours, stats.rows, stats.days)


def reprice_all(session_factory: Callable[[], Any], *, limit: int = BATCH_KEYS) -> RepriceStats:
    """Drain the stale queue, one transaction per ``limit`` keys (task and embedded mode)."""
    total = RepriceStats()
    while True:
        with session_factory() as session:
            stats = reprice_pending(session, limit=limit)
        total = RepriceStats(total.keys + stats.keys, total.hours + stats.hours,
                             total.rows + stats.rows, total.days + stats.days)  # fmt: skip
        if stats.keys < limit:
            return total


def reprice(session: Session, hours_by_node: dict[int, set[datetime]]) -> RepriceStats:
    """Rewrite the ledger rows of the given node-hours and the day totals they fall in."""
    currencies = import_currencies(session)
    context = _Context(load_pricebook(session), RatioBook(session), currencies,
                       scalesets.ScaleSetSplits(session, currencies, effective_rows))  # fmt: skip
    hours_by_node = context.scale_sets.widen(hours_by_node)
    nodes = node_infos(session, hours_by_node)
    rows: list[LedgerRow] = []
    written: dict[int, set[datetime]] = {}
    for node_id, wanted in sorted(hours_by_node.items()):
        node = nodes.get(node_id)
        if node is None:  # deleted since it was marked; its rows went with it
            continue
        hours, node_rows = _price_node(session, node, wanted, context)
        rows.extend(node_rows)
        written[node_id] = hours
    _replace_hours(session, written, rows)
    days = _refresh_days(session, written)
    return RepriceStats(0, sum(len(h) for h in written.values()), len(rows), days)


def _price_node(
    session: Session, node: NodeInfo, wanted: set[datetime], context: _Context
) -> tuple[set[datetime], list[LedgerRow]]:
    hours = set(wanted)
    charges: list[Charge] = []
    # A bill row longer than an hour is spread over the hours the node ran in it: re-price all
    # of its hours together (until no row reaches further), so the spread stays whole.
    while True:
        start, end = min(hours), max(hours) + HOUR
        charges = node_charges(session, node.node_id, start, end, context.currencies)
        charges += context.scale_sets.charges(node.node_id, start, end)
        spans = set()
        for c in charges:
            span = hours_between(c.start, c.end)
            if c.end - c.start <= MAX_SPREAD and not hours.isdisjoint(span):
                spans.update(span)
        if spans <= hours:
            break
        hours |= spans
    start, end = min(hours), max(hours) + HOUR
    gpu_ids = list(session.scalars(select(Gpu.id).where(Gpu.node_id == node.node_id)))
    usage = []
    if gpu_ids:
        h = GpuHourRollup
        stmt = select(*USAGE_COLUMNS).where(h.gpu_id.in_(gpu_ids), h.bucket >= start,
                                            h.bucket < end)  # fmt: skip
        usage = [gpu_hour_of(r, node.node_id) for r in session.execute(stmt)]
    running = {node.node_id: {u.hour for u in usage}}
    billed = {
        (h, cur): amount
        for (_, h, cur), amount in node_hour_costs(charges, running).items()
        if h in hours
    }
    entry = context.book.find(node.provider, node.instance_type, node.region)
    rows = price_node_hours(
        node, gpu_ids=sorted(gpu_ids), hours=hours, usage=[u for u in usage if u.hour in hours],
        billed=billed, entry=entry, ratio=context.ratios.find(node),
    )  # fmt: skip
    return hours, rows


def _replace_hours(
    session: Session, hours_by_node: dict[int, set[datetime]], rows: Sequence[LedgerRow]
) -> None:
    ledger = cast(Table, CostLedgerHour.__table__)
    for node_id, hours in hours_by_node.items():
        ordered = sorted(hours)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            session.execute(
                delete(ledger).where(ledger.c.node_id == node_id, ledger.c.hour.in_(chunk))
            )
    bulk_insert_ignore(session, CostLedgerHour, [r.as_dict() for r in rows],
                       keys=["node_id", "hour", "gpu_id", "owner", "currency"])  # fmt: skip


def _refresh_days(session: Session, hours_by_node: dict[int, set[datetime]]) -> int:
    """Recompute the day totals of every (node, UTC day) the given hours fall in."""
    ledger = CostLedgerHour
    days_table = cast(Table, CostLedgerDay.__table__)
    out: list[dict[str, Any]] = []
    count = 0
    for node_id, hours in hours_by_node.items():
        days = sorted({floor_day(h) for h in hours})
        count += len(days)
        for day in days:
            session.execute(
                delete(days_table).where(days_table.c.node_id == node_id, days_table.c.day == day)
            )
        sums: dict[tuple[Any, ...], dict[str, Any]] = {}
        cols = [getattr(ledger, c) for c in (*DAY_KEY, "hour", "gpu_seconds", "energy_joules",
                                             *MONEY)]  # fmt: skip
        for first in _runs(days):
            stmt = select(*cols).where(
                and_(ledger.node_id == node_id, ledger.hour >= first[0],
                     ledger.hour < first[-1] + DAY)
            )  # fmt: skip
            for row in session.execute(stmt):
                values = row._mapping
                key = (floor_day(values["hour"]), *(values[k] for k in DAY_KEY))
                acc = sums.get(key)
                if acc is None:
                    acc = sums[key] = {"gpu_seconds": 0.0, "energy_joules": 0.0,
                                       **{m: Decimal(0) for m in MONEY}}  # fmt: skip
                acc["gpu_seconds"] += values["gpu_seconds"]
                acc["energy_joules"] += values["energy_joules"]
                for m in MONEY:
                    acc[m] += values[m]
        for key, acc in sums.items():
            out.append({"day": key[0], **dict(zip(DAY_KEY, key[1:], strict=True)), **acc})
    bulk_insert_ignore(session, CostLedgerDay, out, keys=["day", *DAY_KEY])
    return count


def _runs(days: list[datetime]) -> list[list[datetime]]:
    """Consecutive days grouped, so each run is one range query."""
    runs: list[list[datetime]] = []
    for d in days:
        if runs and d - runs[-1][-1] == DAY:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


def mark_import(session: Session, import_id: int, replaced_periods: Iterable[datetime]) -> int:
    """After a bill lands: its matched node-hours, the billed hours of the periods it replaced,
    and the estimates its discount ratio changes."""
    li = BillingLineItem
    keys: set[tuple[int, datetime]] = set()
    rows = session.execute(
        select(li.node_id, li.charge_period_start, li.charge_period_end)
        .where(li.import_id == import_id, li.node_id.is_not(None))
        .distinct()
    )
    nodes: set[int] = set()
    for node_id, start, end in rows:
        if node_id is None:
            continue
        nodes.add(node_id)
        if end - start <= MAX_SPREAD:
            keys.update((node_id, h) for h in hours_between(start, end))
    marked = dirty.mark(session, keys)
    for period in replaced_periods:
        marked += dirty.mark_ledger(session, sources=["billed"], start=period,
                                    end=period + timedelta(days=31))  # fmt: skip
    types = {
        t
        for (t,) in session.execute(
            select(li.x_instance_type).where(li.import_id == import_id).distinct()
        )
        if t
    }
    marked += dirty.mark_ledger(session, sources=["estimated"], node_ids=nodes)
    if types:
        marked += dirty.mark_ledger(session, sources=["estimated"], instance_types=types)
    return marked + scalesets.mark_import(session, import_id)
