"""The cost of every GPU-hour and who it goes to: a pure core, tested with constructed hours.

Cloud nodes take their matched bill rows (effective cost; GCP's GPU and VM lines summed per hour;
a daily Azure row spread over the hours the node ran that day); without a bill the price book
estimates (``estimated``). On-prem nodes cost amortized hardware plus energy x $/kWh x PUE.
A node's hour is split equally over its GPUs, then over the GPU's owners by time share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.pricebook import PriceBook
from app.usage.types import GpuHour, OwnerShare

HOUR = timedelta(hours=1)
SECONDS_PER_HOUR = Decimal(3600)
JOULES_PER_KWH = Decimal(3_600_000)
HOURS_PER_MONTH = Decimal(730)
UNALLOCATED = "unallocated"
DEFAULT_RULES = ("namespace", "account", "label:team", "tag:team", "tag:cost-center", "user")


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
    """A matched bill row: ``amount`` in the reporting currency over [start, end)."""

    node_id: int
    start: datetime
    end: datetime
    amount: Decimal


@dataclass(frozen=True)
class CostRow:
    """One owner's share of one GPU-hour."""

    gpu_id: int
    node_id: int
    hour: datetime
    team: str
    project: str
    cost: Decimal
    idle_cost: Decimal
    unused_cost: Decimal
    energy_cost: Decimal
    source: str  # billed | estimated | onprem | unpriced


def _hours(start: datetime, end: datetime) -> list[datetime]:
    first = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while first < end:
        out.append(first)
        first += HOUR
    return out


def node_hour_costs(
    charges: Iterable[Charge], running: dict[int, set[datetime]]
) -> dict[tuple[int, datetime], Decimal]:
    """Bill rows as cost per node-hour; longer rows spread over the hours the node ran."""
    out: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    for c in charges:
        hours = _hours(c.start, c.end)
        ran = [h for h in hours if h in running.get(c.node_id, set())] or hours
        share = c.amount / len(ran)
        for h in ran:
            out[(c.node_id, h)] += share
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


def _hour_price(hour: GpuHour, node: NodeInfo, billed: dict[tuple[int, datetime], Decimal],
                book: PriceBook) -> tuple[Decimal, str, Decimal | None]:  # fmt: skip
    """(node cost of the hour, source, energy price per kWh x PUE or None)."""
    entry = book.find(node.provider, node.instance_type, node.region)
    energy = None
    if entry and entry.energy_price_kwh is not None:
        energy = entry.energy_price_kwh * (entry.pue or Decimal(1))
    if (node.node_id, hour.hour) in billed:
        return billed[(node.node_id, hour.hour)], "billed", energy
    if entry is None:
        return Decimal(0), "unpriced", energy
    if node.provider == "onprem" or entry.hardware_cost is not None:
        months = Decimal(entry.amortization_months or 36)
        hardware = (entry.hardware_cost or Decimal(0)) / (months * HOURS_PER_MONTH)
        return hardware, "onprem", energy
    return entry.hourly_price or Decimal(0), "estimated", energy


def price_gpu_hours(
    hours: Iterable[GpuHour],
    nodes: dict[int, NodeInfo],
    billed: dict[tuple[int, datetime], Decimal],
    book: PriceBook,
    *,
    rules: Sequence[str] = DEFAULT_RULES,
) -> list[CostRow]:
    """Every GPU-hour's cost, split over its owners by their share of the observed time (time
    with no process is unallocated)."""
    rows: list[CostRow] = []
    for h in hours:
        node = nodes[h.node_id]
        node_cost, source, energy_price = _hour_price(h, node, billed, book)
        gpu_cost = node_cost / max(node.gpu_count, 1)
        energy_cost = Decimal(0)
        if energy_price is not None and h.energy_joules:
            energy_cost = Decimal(str(h.energy_joules)) / JOULES_PER_KWH * energy_price
            if source == "onprem":
                gpu_cost += energy_cost
        # Shares are of the time the agent observed: an hour seen for 20 minutes (agent started
        # mid-hour, the hour still running) is split as those 20 minutes were, rather than
        # handing the unseen 40 to "unallocated" or counting them idle.
        held = sum(o.seconds for o in h.owners)
        seen_s = max(h.observed_seconds, held) or 3600.0
        seen = Decimal(str(seen_s))
        idle = gpu_cost * Decimal(str(min(h.idle_seconds, seen_s))) / seen
        util = Decimal(str(h.utilization_mean or 0)) / 100
        unused = gpu_cost * (1 - min(util, Decimal(1)))
        shares: list[tuple[OwnerShare | None, Decimal]] = [
            (o, Decimal(str(o.seconds)) / seen) for o in h.owners
        ]
        rest = 1 - sum((s for _, s in shares), Decimal(0))
        if rest > 0 or not shares:
            shares.append((None, rest if shares else Decimal(1)))
        for owner, share in shares:
            team = owner_team(owner, node, rules) if owner is not None else UNALLOCATED
            project = (owner.namespace or owner.account) if owner is not None else None
            rows.append(CostRow(
                h.gpu_id, h.node_id, h.hour, team, project or UNALLOCATED, gpu_cost * share,
                idle * share, unused * share, energy_cost * share, source,
            ))  # fmt: skip
    return rows


def group_costs(
    rows: Iterable[CostRow], nodes: dict[int, NodeInfo], group_by: str
) -> dict[str, dict[str, Decimal]]:
    """Sum rows by team | project | cluster | instance_type | node; the groups add up to the total."""
    out: dict[str, dict[str, Decimal]] = {}
    for r in rows:
        node = nodes[r.node_id]
        key = {
            "team": r.team,
            "project": r.project,
            "cluster": node.cluster or "none",
            "instance_type": node.instance_type or "none",
            "node": node.name,
        }[group_by]
        g = out.setdefault(key, defaultdict(Decimal))
        g["cost"] += r.cost
        g["idle_cost"] += r.idle_cost
        g["unused_cost"] += r.unused_cost
        g["energy_cost"] += r.energy_cost
        g[f"{r.source}_cost"] += r.cost
    return out
