"""Costs over a time window: usage hours x matched bill rows or price book, grouped."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing.pricebook import load_pricebook
from app.costs.engine import Charge, NodeInfo, group_costs, node_hour_costs, price_gpu_hours
from app.models import BillingLineItem, Cluster, Gpu, Node
from app.usage import service as usage_service

GROUPS = ("team", "project", "cluster", "instance_type", "node")


@dataclass
class CostReport:
    group_by: str
    start: datetime
    end: datetime
    total: Decimal
    billed_total: Decimal  # matched bill rows in the window (effective cost)
    groups: dict[str, dict[str, Decimal]]


def _nodes(session: Session) -> dict[int, NodeInfo]:
    gpu_counts = dict(
        session.execute(select(Gpu.node_id, func.count()).group_by(Gpu.node_id)).all()
    )
    tags: dict[int, dict[str, object]] = defaultdict(dict)
    for node_id, text in session.execute(
        select(BillingLineItem.node_id, BillingLineItem.tags)
        .where(BillingLineItem.node_id.is_not(None), BillingLineItem.tags.is_not(None))
        .distinct()
    ):
        if node_id is not None and text:
            tags[node_id].update(json.loads(text))
    out = {}
    for node, cluster in session.execute(
        select(Node, Cluster.name).outerjoin(Cluster, Cluster.id == Node.cluster_id)
    ):
        out[node.id] = NodeInfo(
            node.id, node.name, node.provider, node.instance_type, node.region, cluster,
            gpu_counts.get(node.id, 1), dict(node.labels or {}), tags.get(node.id, {}),
        )  # fmt: skip
    return out


def _charges(session: Session, start: datetime, end: datetime) -> list[Charge]:
    li = BillingLineItem
    rows = session.execute(
        select(li.node_id, li.charge_period_start, li.charge_period_end, li.effective_cost,
               li.x_exchange_rate, li.x_dataset, li.x_source_system)
        .where(li.node_id.is_not(None), li.charge_period_start < end, li.charge_period_end > start)
    ).all()  # fmt: skip
    # Azure: with both datasets for a source, the amortized one is the effective cost.
    amortized = {r.x_source_system for r in rows if r.x_dataset == "amortized"}
    return [
        Charge(r.node_id, r.charge_period_start, r.charge_period_end,
               r.effective_cost * r.x_exchange_rate)
        for r in rows
        if not (r.x_dataset == "actual" and r.x_source_system in amortized)
    ]  # fmt: skip


def cost_report(session: Session, *, start: datetime, end: datetime, group_by: str) -> CostReport:
    """Every GPU-hour in [start, end) priced and allocated, grouped by ``group_by``."""
    hours = usage_service.gpu_hours(session, start=start, end=end)
    nodes = _nodes(session)
    running: dict[int, set[datetime]] = defaultdict(set)
    for h in hours:
        running[h.node_id].add(h.hour)
    charges = _charges(session, start, end)
    billed = node_hour_costs(charges, running)
    rows = price_gpu_hours(hours, nodes, billed, load_pricebook(session))
    return CostReport(
        group_by=group_by,
        start=start,
        end=end,
        total=sum((r.cost for r in rows), Decimal(0)),
        billed_total=sum((c.amount for c in charges), Decimal(0)),
        groups=group_costs(rows, nodes, group_by),
    )
