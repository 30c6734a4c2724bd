"""Azure scale-set bill rows that name no instance, split over the instances GPU Ledger knows.

The importer keys a scale-set row to its instance when ``AdditionalInfo`` names one
(``app.billing.scalesets``); a row without ``VMName`` keeps the scale set's key and matches no
node. Re-pricing splits such a row over the scale set's known instances (nodes whose instance id
is ``<scale set id>/virtualMachines/<n>``, or whose name is an AKS or ``VMName`` name of it) in
proportion to the seconds each was observed in the row's charge period (the GPU-hour rollups that
the estimates use), then each share over the hours the instance ran, exactly: every part is cut
to the ledger's 18 decimals and the remainder goes to the largest part, so the parts add up to
the row. A row none of whose instances ran stays unmatched (the report's "bill only" line).

Shares are derived data like the rest of the ledger: a change to one instance's hours in a
row's period re-prices that period on every instance of the scale set (``ScaleSetSplits.widen``),
and a node that registers later takes its share once its hours are re-priced.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing.scalesets import (
    AKS_SUFFIX_DIGITS,
    SCALE_SETS,
    instance_of_node_name,
    scale_set_name,
    split_instance_key,
)
from app.costs import dirty
from app.costs.engine import HOUR, Charge, hours_between
from app.kit.money import MONEY_SCALE
from app.models import BillingImport, BillingLineItem, Gpu, GpuHourRollup, Node

SPLIT_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)  # the ledger's scale: parts are stored exactly
MAX_PERIOD = timedelta(days=1)  # Azure's rows are daily; a longer row is not split
OPTION = "scale_sets"  # BillingImport.options: the scale sets its unmatched rows name
SECONDS_PER_HOUR = 3600.0
K = TypeVar("K", int, datetime)
EffectiveRows = Callable[[Sequence[Any]], list[Any]]


def split_exact(amount: Decimal, weights: Mapping[K, Decimal]) -> dict[K, Decimal]:
    """``amount`` over the keys in proportion to their positive weights: each part cut to
    ``SPLIT_QUANTUM``, the remainder added to the largest (the last of equals), so the parts
    add up to ``amount`` exactly. Empty when no weight is positive."""
    order = sorted((k for k, w in weights.items() if w > 0), key=lambda k: (weights[k], k))
    if not order:
        return {}
    total = sum((weights[k] for k in order), Decimal(0))
    with localcontext() as ctx:
        ctx.prec = 80  # wide enough that neither the cut nor the remainder rounds
        parts = {k: (amount * weights[k] / total).quantize(SPLIT_QUANTUM, rounding=ROUND_DOWN)
                 for k in order}  # fmt: skip
        parts[order[-1]] += amount - sum(parts.values(), Decimal(0))
    return parts


def row_charges(
    amount: Decimal,
    currency: str,
    start: datetime,
    end: datetime,
    seconds: Mapping[int, Mapping[datetime, float]],
) -> list[Charge]:
    """One scale-set row as hourly charges: over the instances by their observed seconds in
    [start, end), then each instance's part equally over the hours it ran."""
    period = set(hours_between(start, end))
    ran = {node: sorted(h for h, s in by_hour.items() if h in period and s > 0)
           for node, by_hour in seconds.items()}  # fmt: skip
    weights = {node: sum((Decimal(str(seconds[node][h])) for h in hours), Decimal(0))
               for node, hours in ran.items()}  # fmt: skip
    out = []
    for node, part in sorted(split_exact(amount, weights).items()):
        for hour, share in sorted(split_exact(part, dict.fromkeys(ran[node], Decimal(1))).items()):
            out.append(Charge(node, hour, hour + HOUR, share, currency))
    return out


def recorded_scale_sets(session: Session) -> dict[str, set[int]]:
    """Scale set key → the imports with unmatched rows naming it (recorded by ``mark_import``)."""
    out: dict[str, set[int]] = defaultdict(set)
    stmt = select(BillingImport.id, BillingImport.options).where(
        BillingImport.status == "succeeded"
    )
    for import_id, options in session.execute(stmt):
        for key in (options or {}).get(OPTION, []):
            out[key].add(import_id)
    return dict(out)


def instances(session: Session, keys: Iterable[str]) -> dict[str, set[int]]:
    """The known nodes of each scale set: by instance id, else by an AKS or ``VMName`` name
    (only where no other of ``keys`` has a scale set of the same name)."""
    wanted = set(keys)
    by_name: dict[str, list[str]] = defaultdict(list)
    for key in wanted:
        by_name[scale_set_name(key) or ""].append(key)
    out: dict[str, set[int]] = {}
    for node_id, instance_id, name in session.execute(select(Node.id, Node.instance_id, Node.name)):
        parts = split_instance_key(instance_id.lower()) if instance_id else None
        if parts is not None:
            if parts[0] in wanted:
                out.setdefault(parts[0], set()).add(node_id)
            continue
        lower = name.lower()
        for scale_set in (lower[:-AKS_SUFFIX_DIGITS], lower.rpartition("_")[0]):
            of_name = by_name.get(scale_set, [])
            if len(of_name) == 1 and instance_of_node_name(scale_set, lower) is not None:
                out.setdefault(of_name[0], set()).add(node_id)
                break
    return out


def observed_seconds(
    session: Session, node_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, dict[datetime, float]]:
    """Seconds each node was observed per hour in [start, end): its most-seen GPU's."""
    out: dict[int, dict[datetime, float]] = defaultdict(dict)
    ids = sorted(set(node_ids))
    if not ids:
        return out
    h = GpuHourRollup
    stmt = (
        select(Gpu.node_id, h.bucket, func.max(h.observed_seconds))
        .join(Gpu, Gpu.id == h.gpu_id)
        .where(Gpu.node_id.in_(ids), h.bucket >= start, h.bucket < end)
        .group_by(Gpu.node_id, h.bucket)
    )
    for node_id, hour, seconds in session.execute(stmt):
        out[node_id][hour] = min(float(seconds or 0.0), SECONDS_PER_HOUR)
    return out


@dataclass(frozen=True)
class _Row:
    ident: tuple[int, int]  # import, row number
    start: datetime
    end: datetime
    amount: Decimal  # effective cost in the import's currency
    currency: str


class ScaleSetSplits:
    """The scale-set rows of one re-pricing run: the node-hours they reach and each instance's
    hourly charges. Costs one query of the imports when no import named a scale set."""

    def __init__(self, session: Session, currencies: dict[int, str],
                 effective: EffectiveRows) -> None:  # fmt: skip
        self._session, self._currencies, self._effective = session, currencies, effective
        self._imports = recorded_scale_sets(session)
        self.members = instances(session, self._imports) if self._imports else {}
        self._scale_set = {n: key for key, nodes in self.members.items() for n in nodes}
        self._span: dict[str, tuple[datetime, datetime]] = {}
        self._rows: dict[str, list[_Row]] = {}
        self._seconds: dict[tuple[str, datetime, datetime], dict[int, dict[datetime, float]]] = {}
        self._charges: dict[tuple[int, int], list[Charge]] = {}

    def widen(self, hours_by_node: dict[int, set[datetime]]) -> dict[int, set[datetime]]:
        """The node-hours to re-price: the given ones and, for every scale-set row they touch,
        the row's hours on every instance of its scale set (their shares change together)."""
        if not self._scale_set:
            return hours_by_node
        out = {node: set(hours) for node, hours in hours_by_node.items()}
        while True:
            touched: dict[str, set[datetime]] = defaultdict(set)
            for node, hours in out.items():
                if node in self._scale_set and hours:
                    touched[self._scale_set[node]] |= hours
            grown = False
            for key, hours in touched.items():
                for row in self._rows_in(key, min(hours), max(hours) + HOUR):
                    span = set(hours_between(row.start, row.end))
                    if span.isdisjoint(hours):
                        continue
                    for node in self.members[key]:
                        have = out.setdefault(node, set())
                        if not span <= have:
                            have |= span
                            grown = True
            if not grown:
                return out

    def charges(self, node_id: int, start: datetime, end: datetime) -> list[Charge]:
        """The node's hourly parts of its scale set's rows overlapping [start, end)."""
        key = self._scale_set.get(node_id)
        if key is None:
            return []
        out: list[Charge] = []
        for row in self._rows_in(key, start, end):
            if row.ident not in self._charges:
                seconds = self._seconds_in(key, row.start, row.end)
                self._charges[row.ident] = row_charges(row.amount, row.currency, row.start,
                                                       row.end, seconds)  # fmt: skip
            out.extend(c for c in self._charges[row.ident] if c.node_id == node_id)
        return out

    def _rows_in(self, key: str, start: datetime, end: datetime) -> list[_Row]:
        """The scale set's unmatched rows overlapping [start, end), loaded once per span."""
        span = self._span.get(key)
        if span is None or start < span[0] or end > span[1]:
            lo, hi = (start, end) if span is None else (min(span[0], start), max(span[1], end))
            self._span[key] = (lo, hi)
            self._rows[key] = self._load(key, lo, hi)
        return [r for r in self._rows[key] if r.start < end and r.end > start]

    def _load(self, key: str, start: datetime, end: datetime) -> list[_Row]:
        li = BillingLineItem
        stmt = select(
            li.import_id, li.row_number, li.charge_period_start, li.charge_period_end,
            li.effective_cost, li.x_exchange_rate, li.x_dataset, li.x_source_system,
        ).where(
            li.import_id.in_(sorted(self._imports.get(key, ()))), li.node_id.is_(None),
            li.x_resource_key == key, li.charge_period_start < end, li.charge_period_end > start,
        )  # fmt: skip
        return [
            _Row((r.import_id, r.row_number), r.charge_period_start, r.charge_period_end,
                 r.effective_cost * r.x_exchange_rate, self._currencies.get(r.import_id, "USD"))
            for r in self._effective(self._session.execute(stmt).all())
            if r.charge_period_end - r.charge_period_start <= MAX_PERIOD
        ]  # fmt: skip

    def _seconds_in(
        self, key: str, start: datetime, end: datetime
    ) -> dict[int, dict[datetime, float]]:
        """The instances' observed seconds per hour in a row's period (one query per period)."""
        cached = self._seconds.get((key, start, end))
        if cached is None:
            cached = observed_seconds(self._session, self.members[key], start, end)
            self._seconds[(key, start, end)] = cached
        return cached


def mark_import(session: Session, import_id: int) -> int:
    """After a bill lands: record the scale sets its unmatched rows name (what re-pricing looks
    for) and mark the hours of those rows stale on every known instance of their scale set."""
    li = BillingLineItem
    stmt = select(li.x_resource_key, li.charge_period_start, li.charge_period_end).where(
        li.import_id == import_id, li.node_id.is_(None),
        li.x_resource_key.contains(SCALE_SETS, autoescape=True),
    )  # fmt: skip
    rows = [(key, start, end) for key, start, end in session.execute(stmt.distinct())
            if key and scale_set_name(key) is not None]  # fmt: skip
    if not rows:
        return 0
    record = session.get_one(BillingImport, import_id)
    record.options = {**(record.options or {}), OPTION: sorted({key for key, _, _ in rows})}
    members = instances(session, {key for key, _, _ in rows})
    keys = {
        (node, hour)
        for key, start, end in rows
        if end - start <= MAX_PERIOD
        for node in members.get(key, ())
        for hour in hours_between(start, end)
    }
    return dirty.mark(session, keys)


def unsplit_rows(session: Session, rows: Sequence[Any]) -> list[Any]:
    """The unmatched rows that stay unmatched: all but the scale-set rows the ledger splits
    (one of whose instances ran in the row's period). Rows need ``import_id``,
    ``x_resource_key``, ``charge_period_start`` and ``charge_period_end``."""
    candidates = [r for r in rows if r.x_resource_key and SCALE_SETS in r.x_resource_key]
    if not candidates:
        return list(rows)
    recorded = recorded_scale_sets(session)
    candidates = [r for r in candidates if r.import_id in recorded.get(r.x_resource_key, ())
                  and r.charge_period_end - r.charge_period_start <= MAX_PERIOD]  # fmt: skip
    members = instances(session, {r.x_resource_key for r in candidates}) if candidates else {}
    ran: dict[tuple[str, datetime, datetime], bool] = {}  # per scale set and period
    split: set[int] = set()
    for r in candidates:
        period = (r.x_resource_key, r.charge_period_start, r.charge_period_end)
        if period not in ran:
            nodes = members.get(r.x_resource_key, set())
            seconds = observed_seconds(session, nodes, period[1], period[2])
            ran[period] = any(s > 0 for by_hour in seconds.values() for s in by_hour.values())
        if ran[period]:
            split.add(id(r))
    return [r for r in rows if id(r) not in split]
