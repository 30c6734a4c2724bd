"""The price of every GPU-hour and who it goes to: a pure core, tested with constructed hours.

Cloud nodes take their matched bill rows (effective cost; GCP's GPU and VM lines summed per hour;
a daily Azure row spread over the hours the node ran that day). A bill row is counted whole: if no
GPU of the node reported in a billed hour, the hour still appears, unallocated, with no GPU time.
Without a bill the price book estimates the hour at list price x the effective/list ratio the
node's (or its instance type's) bills show, and only for the time the node was observed in it
(short gaps between samples count as running), so a partly seen hour or the hour in progress
costs what has passed. On-prem nodes cost amortized hardware for the observed time plus energy x
$/kWh x PUE. A node with no price is counted in unpriced GPU-hours, with the reason, never as $0.
A node's hour is split equally over its GPUs, then over the GPU's owners by time share, and
each owner's part into utilized, idle, unused and unmeasured cost (time with no utilization
reading, as on a MIG-enabled GPU: unknown, never 0 % busy).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.catalog import PriceEntry
from app.usage.types import GpuHour, OwnerShare

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = Decimal(3600)
JOULES_PER_KWH = Decimal(3_600_000)
HOURS_PER_MONTH = Decimal(730)
UNALLOCATED = "unallocated"
DEFAULT_RULES = ("namespace", "account", "label:team", "tag:team", "tag:cost-center", "user")
DEFAULT_CURRENCY = "USD"
GROUPS = ("team", "project", "cluster", "instance_type", "node")  # what spend is grouped by
NO_GPU = 0  # ``gpu_id`` of a billed hour in which no GPU of the node reported
# Measured time this close to the seen time is all of it: the rollup sums the same sample
# durations in another order (idle + low + busy vs. observed), so they differ by float rounding.
MEASURED_TOLERANCE_SECONDS = 1e-6


@dataclass(frozen=True)
class NodeInfo:
    node_id: int
    name: str
    provider: str | None
    instance_type: str | None
    region: str | None
    cluster: str | None
    gpu_count: int
    labels: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)  # cloud tags from the node's bill rows


@dataclass(frozen=True)
class Charge:
    """A matched bill row: ``amount`` in ``currency`` (the import's) over [start, end)."""

    node_id: int
    start: datetime
    end: datetime
    amount: Decimal
    currency: str = DEFAULT_CURRENCY


@dataclass(frozen=True)
class Ratio:
    """Effective/list cost ratio applied to price-book estimates, and where it came from."""

    value: Decimal
    basis: str


LIST_PRICE = Ratio(Decimal(1), "list price (no bill shows a discount yet)")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One owner's share of one GPU-hour: a ``cost_ledger_hours`` row."""

    node_id: int
    hour: datetime
    gpu_id: int
    owner: str  # "" = unallocated
    currency: str
    team: str
    project: str
    source: str  # billed | estimated | onprem | unpriced
    gpu_seconds: float
    cost: Decimal
    utilized_cost: Decimal
    idle_cost: Decimal
    unused_cost: Decimal
    unmeasured_cost: Decimal  # the time without a utilization reading
    energy_joules: float
    energy_cost: Decimal
    node_hour_price: Decimal | None = None
    price_ratio: Decimal | None = None
    price_basis: str | None = None
    unpriced_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LEDGER_FIELDS}

    @property
    def efficiency(self) -> Decimal | None:
        return efficiency(self.utilized_cost, self.cost, self.unmeasured_cost)


LEDGER_FIELDS = tuple(f.name for f in fields(LedgerRow))


def efficiency(utilized: Decimal, cost: Decimal, unmeasured: Decimal) -> Decimal | None:
    """Utilized share of the measured cost (0-1): utilized / (cost - unmeasured); None when
    nothing was measured (no cost, or all of it without a utilization reading)."""
    measured = cost - unmeasured
    return utilized / measured if measured else None


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the hours that [start, end) touches."""
    first = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while first < end:
        out.append(first)
        first += HOUR
    return out


def node_hour_costs(
    charges: Iterable[Charge], running: dict[int, set[datetime]]
) -> dict[tuple[int, datetime, str], Decimal]:
    """Bill rows as cost per (node, hour, currency); longer rows spread over the hours the node
    ran (over all their hours if it ran in none), so every row is counted whole."""
    out: dict[tuple[int, datetime, str], Decimal] = defaultdict(Decimal)
    for c in charges:
        hours = hours_between(c.start, c.end)
        ran = [h for h in hours if h in running.get(c.node_id, set())] or hours
        share = c.amount / len(ran)
        for h in ran:
            out[(c.node_id, h, c.currency)] += share
    return out


def owner_team(owner: OwnerShare | None, node: NodeInfo, rules: Sequence[str]) -> str:
    """The first rule that names a team: owner namespace/account/user, node label, cloud tag."""
    for rule in rules:
        kind, _, key = rule.partition(":")
        value: Any = None
        if kind in ("namespace", "account", "user") and owner is not None:
            value = getattr(owner, kind)
        elif kind == "label":
            value = node.labels.get(key)
        elif kind == "tag":
            value = node.tags.get(key)
        if value:
            return str(value)
    return UNALLOCATED


def owner_label(owner: OwnerShare) -> str:
    """The most specific name of who held the GPU: job, then pod, then user."""
    if owner.job_id:
        return f"job {owner.job_id}" + (f" ({owner.account})" if owner.account else "")
    if owner.pod_name:
        return f"pod {owner.namespace or 'default'}/{owner.pod_name}"
    if owner.namespace:
        return f"namespace {owner.namespace}"
    if owner.user:
        return f"user {owner.user}"
    if owner.account:
        return f"account {owner.account}"
    return "process (owner unknown)"


def unpriced_reason(node: NodeInfo, entry: PriceEntry | None) -> str | None:
    """Why the price book cannot price ``node`` (None when it can)."""
    if entry is not None:
        if entry.hourly_price is None and entry.hardware_cost is None:
            return f"the price book entry for {entry.instance_type} has no price"
        return None
    if not node.instance_type:
        if not node.provider:
            return "the agent reports no provider and no instance type, and no bill names the node"
        return f"the agent reports no instance type ({node.provider}), and no bill names the node"
    provider = node.provider or "no provider"
    return (
        f"{node.instance_type} ({provider}) is not in the price book, and no bill covers the hour"
    )


@dataclass(frozen=True)
class _Price:
    source: str
    currency: str
    node_hour: Decimal | None  # whole node-hour price (billed amount, list price, amortisation)
    per_gpu_second: Decimal  # cost of one observed GPU-second (0 for billed and unpriced)
    ratio: Ratio | None = None
    reason: str | None = None


def _estimate(node: NodeInfo, entry: PriceEntry | None, ratio: Ratio, gpus: int) -> _Price:
    reason = unpriced_reason(node, entry)
    if entry is None or reason is not None:
        return _Price("unpriced", DEFAULT_CURRENCY, None, Decimal(0), reason=reason)
    if node.provider == "onprem" or entry.hardware_cost is not None:
        months = Decimal(entry.amortization_months or 36)
        hourly = (entry.hardware_cost or Decimal(0)) / (months * HOURS_PER_MONTH)
        return _Price("onprem", entry.currency, hourly, hourly / gpus / SECONDS_PER_HOUR)
    hourly = (entry.hourly_price or Decimal(0)) * ratio.value
    return _Price("estimated", entry.currency, entry.hourly_price,
                  hourly / gpus / SECONDS_PER_HOUR, ratio=ratio)  # fmt: skip


def price_node_hours(
    node: NodeInfo,
    *,
    gpu_ids: Sequence[int],
    hours: Iterable[datetime],
    usage: Iterable[GpuHour],
    billed: dict[tuple[datetime, str], Decimal],
    entry: PriceEntry | None,
    ratio: Ratio = LIST_PRICE,
    rules: Sequence[str] = DEFAULT_RULES,
) -> list[LedgerRow]:
    """The ledger rows of ``node`` for ``hours``: from its GPUs' hourly usage and the bill
    amounts per (hour, currency); billed hours reach every known GPU, reported or not."""
    by_hour: dict[datetime, dict[int, GpuHour]] = defaultdict(dict)
    for h in usage:
        by_hour[h.hour][h.gpu_id] = h
    gpus = list(gpu_ids) or [NO_GPU]
    energy_price = None
    if entry is not None and entry.energy_price_kwh is not None:
        energy_price = entry.energy_price_kwh * (entry.pue or Decimal(1))
    estimate = _estimate(node, entry, ratio, len(gpus))
    bills: dict[datetime, list[tuple[str, Decimal]]] = defaultdict(list)
    for (at, cur), amount in billed.items():
        bills[at].append((cur, amount))
    rows: list[LedgerRow] = []
    for hour in sorted(set(hours)):
        seen = by_hour.get(hour, {})
        prices = [_Price("billed", cur, amount, Decimal(0))
                  for cur, amount in sorted(bills.get(hour, []))]  # fmt: skip
        for price in prices or ([estimate] if seen else []):
            for gpu_id in gpus:
                share = None
                if price.source == "billed" and price.node_hour is not None:
                    share = price.node_hour / len(gpus)
                rows.extend(_gpu_rows(node, hour, gpu_id, seen.get(gpu_id), price, share,
                                      energy_price, rules))  # fmt: skip
    return rows


def _gpu_rows(
    node: NodeInfo,
    hour: datetime,
    gpu_id: int,
    usage: GpuHour | None,
    price: _Price,
    billed_share: Decimal | None,
    energy_price: Decimal | None,
    rules: Sequence[str],
) -> list[LedgerRow]:
    """One GPU's hour split over its owners by their share of the observed time."""
    observed = min(usage.observed_seconds, 3600.0) if usage else 0.0
    held = sum(o.seconds for o in usage.owners) if usage else 0.0
    seen_s = min(max(observed, held), 3600.0)
    energy_j = (usage.energy_joules or 0.0) if usage else 0.0
    energy_cost = Decimal(0)
    if energy_price is not None and energy_j:
        energy_cost = Decimal(str(energy_j)) / JOULES_PER_KWH * energy_price
    if billed_share is not None:
        cost = billed_share
    else:
        cost = price.per_gpu_second * Decimal(str(seen_s))
        if price.source == "onprem":
            cost += energy_cost
    if usage is None or seen_s <= 0:
        if cost == 0 and price.source != "unpriced":
            return []
        shares: list[tuple[OwnerShare | None, float]] = [(None, 1.0)]
        util, idle_frac, measured_frac = Decimal(0), Decimal(0), Decimal(1)
    else:
        shares = [(o, min(o.seconds / seen_s, 1.0)) for o in usage.owners]
        rest = 1.0 - sum(s for _, s in shares)
        if rest > 1e-9 or not shares:
            shares.append((None, rest if shares else 1.0))
        util = min(max(Decimal(str(usage.utilization_mean or 0)) / 100, Decimal(0)), Decimal(1))
        idle_frac = Decimal(str(min(usage.idle_seconds, seen_s) / seen_s))
        measured_s = min(usage.measured_seconds, seen_s)
        if seen_s - measured_s <= MEASURED_TOLERANCE_SECONDS:
            measured_frac = Decimal(1)
        else:
            measured_frac = Decimal(str(measured_s / seen_s))
    # Cost = utilized + idle + unused + unmeasured. Unmeasured is the cost of the time without
    # a utilization reading; of the rest, idle is the cost of the time below the idle threshold,
    # utilized the used share of capacity, unused what remains (held and working, not fully).
    measured = cost * measured_frac
    unmeasured = cost - measured
    utilized = measured * util
    idle = min(cost * idle_frac, measured - utilized) if cost >= 0 else cost * idle_frac
    rows = []
    for owner, fraction in shares:
        f = Decimal(str(fraction))
        team = owner_team(owner, node, rules) if owner is not None else UNALLOCATED
        project = (owner.namespace or owner.account) if owner is not None else None
        c, u, i, n = cost * f, utilized * f, idle * f, unmeasured * f
        rows.append(LedgerRow(
            node.node_id, hour, gpu_id, owner_label(owner) if owner else "", price.currency,
            team, project or UNALLOCATED, price.source, seen_s * fraction, c, u, i, c - u - i - n,
            n, energy_j * fraction, energy_cost * f, price.node_hour,
            price.ratio.value if price.ratio else None, price.ratio.basis if price.ratio else None,
            price.reason,
        ))  # fmt: skip
    return _merge_owners(rows)


def _merge_owners(rows: list[LedgerRow]) -> list[LedgerRow]:
    """Owners with the same label (one job seen under two users) become one row."""
    merged: dict[str, LedgerRow] = {}
    for r in rows:
        m = merged.get(r.owner)
        if m is None:
            merged[r.owner] = r
            continue
        merged[r.owner] = LedgerRow(
            m.node_id, m.hour, m.gpu_id, m.owner, m.currency, m.team, m.project, m.source,
            m.gpu_seconds + r.gpu_seconds, m.cost + r.cost, m.utilized_cost + r.utilized_cost,
            m.idle_cost + r.idle_cost, m.unused_cost + r.unused_cost,
            m.unmeasured_cost + r.unmeasured_cost, m.energy_joules + r.energy_joules,
            m.energy_cost + r.energy_cost, m.node_hour_price, m.price_ratio, m.price_basis,
            m.unpriced_reason,
        )  # fmt: skip
    return list(merged.values())
