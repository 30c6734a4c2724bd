"""The pure cost engine with constructed GPU-hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.billing.catalog import shipped_pricebook
from app.billing.pricebook import PriceBook
from app.costs.engine import Charge, NodeInfo, group_costs, node_hour_costs, price_gpu_hours
from app.usage.types import GpuHour, OwnerShare

T0 = datetime(2026, 11, 1, tzinfo=UTC)
BOOK = PriceBook(list(shipped_pricebook()))
AWS = NodeInfo(1, "p4d-1", "aws", "p4d.24xlarge", "us-east-1", "train", 8, {"team": "ml"})
PREM = NodeInfo(2, "dgx-1", "onprem", "dgx-h100", None, "lab", 8)
NODES = {1: AWS, 2: PREM}


def _hour(
    gpu: int, node: int, owners: list[OwnerShare], *, hour: int = 0, util: float = 50.0
) -> GpuHour:
    return GpuHour(gpu, node, T0 + timedelta(hours=hour), 3600.0, util, 600.0, 1_800_000.0, owners)


def test_billed_hour_split_over_gpus_and_owners() -> None:
    billed = {(1, T0): Decimal("16")}
    hours = [
        _hour(10, 1, [OwnerShare(1800.0, namespace="search"), OwnerShare(900.0, account="vision")])
    ]
    rows = price_gpu_hours(hours, NODES, billed, BOOK)
    assert [r.source for r in rows] == ["billed"] * 3
    assert [r.team for r in rows] == ["search", "vision", "unallocated"]
    assert [r.cost for r in rows] == [Decimal(1), Decimal("0.5"), Decimal("0.5")]
    assert abs(sum(r.idle_cost for r in rows) - Decimal(2) * 600 / 3600) < Decimal("1e-20")
    assert sum(r.unused_cost for r in rows) == Decimal(1)


def test_estimate_from_price_book_then_onprem_energy() -> None:
    rows = price_gpu_hours([_hour(10, 1, []), _hour(20, 2, [])], NODES, {}, BOOK)
    assert rows[0].source == "estimated"
    assert rows[0].cost == Decimal("32.7726") / 8
    onprem = rows[1]
    hardware = Decimal(373000) / (48 * 730) / 8
    energy = Decimal("0.5") * Decimal("0.12") * Decimal("1.4")  # 1.8 MJ = 0.5 kWh
    assert onprem.source == "onprem"
    assert onprem.energy_cost == energy
    assert onprem.cost == hardware + energy


def test_daily_charge_spread_over_hours_run() -> None:
    charge = Charge(1, T0, T0 + timedelta(days=1), Decimal("100"))
    ran = {1: {T0 + timedelta(hours=h) for h in range(4)}}
    costs = node_hour_costs([charge], ran)
    assert set(costs) == {(1, T0 + timedelta(hours=h)) for h in range(4)}
    assert sum(costs.values()) == Decimal(100)


def test_groups_reconcile_with_total() -> None:
    billed = {(1, T0): Decimal("16")}
    hours = [_hour(10, 1, [OwnerShare(3600.0, user="ann")]), _hour(20, 2, [])]
    rows = price_gpu_hours(hours, NODES, billed, BOOK)
    total = sum(r.cost for r in rows)
    for by in ("team", "project", "cluster", "instance_type", "node"):
        assert sum(g["cost"] for g in group_costs(rows, NODES, by).values()) == total


def test_partly_observed_hour_is_split_as_observed() -> None:
    """An hour seen for 20 minutes (agent started mid-hour) goes to whoever held the GPU then."""
    billed = {(1, T0): Decimal("16")}
    hour = GpuHour(10, 1, T0, 1200.0, 0.0, 1200.0, None, [OwnerShare(900.0, namespace="search")])
    rows = price_gpu_hours([hour], NODES, billed, BOOK)
    assert [(r.team, r.cost) for r in rows] == [
        ("search", Decimal("1.5")),
        ("unallocated", Decimal("0.5")),
    ]
    # Idle all the time it was seen: the whole GPU-hour is idle cost.
    assert sum(r.idle_cost for r in rows) == Decimal(2)
