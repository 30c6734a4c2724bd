"""The pure cost engine with constructed GPU-hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.billing.catalog import shipped_pricebook
from app.billing.pricebook import PriceBook
from app.costs.engine import (
    NO_GPU,
    Charge,
    NodeInfo,
    Ratio,
    node_hour_costs,
    price_node_hours,
)
from app.usage.types import GpuHour, OwnerShare

T0 = datetime(2026, 11, 1, tzinfo=UTC)
BOOK = PriceBook(list(shipped_pricebook()))
AWS = NodeInfo(1, "p4d-1", "aws", "p4d.24xlarge", "us-east-1", "train", 8, {"team": "ml"})
PREM = NodeInfo(2, "dgx-1", "onprem", "dgx-h100", None, "lab", 8)
BARE = NodeInfo(3, "bare-1", None, None, None, None, 1)
P4D = BOOK.find("aws", "p4d.24xlarge", "us-east-1")
DGX = BOOK.find("onprem", "dgx-h100", None)


def _hour(gpu: int, node: int, owners: list[OwnerShare], *, seen: float = 3600.0,
          util: float | None = 50.0, idle: float = 600.0,
          measured: float | None = None) -> GpuHour:  # fmt: skip
    """One GPU's hour; ``measured`` (seconds with a utilization reading) defaults to ``seen``."""
    return GpuHour(gpu_id=gpu, node_id=node, hour=T0, observed_seconds=seen,
                   measured_seconds=seen if measured is None else measured,
                   utilization_mean=util, idle_seconds=idle, energy_joules=1_800_000.0,
                   owners=owners)  # fmt: skip


def test_billed_hour_split_over_gpus_and_owners() -> None:
    owners = [OwnerShare(1800.0, namespace="search"), OwnerShare(900.0, account="vision")]
    rows = price_node_hours(
        AWS, gpu_ids=[10, 11], hours=[T0], usage=[_hour(10, 1, owners), _hour(11, 1, [])],
        billed={(T0, "USD"): Decimal("4")}, entry=P4D,
    )  # fmt: skip
    gpu10 = [r for r in rows if r.gpu_id == 10]
    assert [r.source for r in rows] == ["billed"] * 4
    assert [r.team for r in gpu10] == ["search", "vision", "unallocated"]
    assert [r.owner for r in gpu10] == ["namespace search", "account vision", ""]
    assert [r.cost for r in gpu10] == [Decimal(1), Decimal("0.5"), Decimal("0.5")]
    assert sum(r.cost for r in rows) == Decimal(4)
    for r in rows:
        assert r.utilized_cost + r.idle_cost + r.unused_cost + r.unmeasured_cost == r.cost
        assert r.unmeasured_cost == 0


def test_estimate_is_price_times_observed_time() -> None:
    """An agent seen 2.6 minutes of the hour costs 2.6 minutes at list price, not an hour."""
    seen = 156.0
    rows = price_node_hours(AWS, gpu_ids=[10], hours=[T0], usage=[_hour(10, 1, [], seen=seen)],
                            billed={}, entry=P4D)  # fmt: skip
    assert P4D is not None
    assert P4D.hourly_price is not None
    assert [r.source for r in rows] == ["estimated"]
    assert rows[0].cost == P4D.hourly_price * Decimal(seen) / 3600  # one known GPU: the node
    assert rows[0].price_ratio == Decimal(1)


def test_estimate_uses_the_bills_ratio_and_says_so() -> None:
    ratio = Ratio(Decimal("0.62"), "0.62 from this node's bills")
    rows = price_node_hours(AWS, gpu_ids=[10], hours=[T0], usage=[_hour(10, 1, [])], billed={},
                            entry=P4D, ratio=ratio)  # fmt: skip
    assert P4D is not None
    assert P4D.hourly_price is not None
    assert rows[0].cost == P4D.hourly_price * Decimal("0.62")
    assert rows[0].price_ratio == Decimal("0.62")
    assert rows[0].price_basis == "0.62 from this node's bills"


def test_onprem_is_amortized_hardware_plus_energy() -> None:
    rows = price_node_hours(PREM, gpu_ids=list(range(8)), hours=[T0], usage=[_hour(0, 2, [])],
                            billed={}, entry=DGX)  # fmt: skip
    hardware = Decimal(373000) / (48 * 730) / 8
    energy = Decimal("0.5") * Decimal("0.12") * Decimal("1.4")  # 1.8 MJ = 0.5 kWh
    assert [r.source for r in rows] == ["onprem"]
    assert rows[0].energy_cost == energy
    assert rows[0].cost == hardware + energy


def test_no_price_is_unpriced_with_a_reason_never_zero_dollars() -> None:
    rows = price_node_hours(BARE, gpu_ids=[30], hours=[T0], usage=[_hour(30, 3, [])], billed={},
                            entry=None)  # fmt: skip
    assert [r.source for r in rows] == ["unpriced"]
    assert rows[0].gpu_seconds == 3600.0
    assert rows[0].unpriced_reason is not None
    assert "no instance type" in rows[0].unpriced_reason
    unknown = NodeInfo(4, "x", "aws", "p9.huge", None, None, 1)
    rows = price_node_hours(unknown, gpu_ids=[40], hours=[T0], usage=[_hour(40, 4, [])],
                            billed={}, entry=None)  # fmt: skip
    assert rows[0].unpriced_reason is not None
    assert "not in the price book" in rows[0].unpriced_reason


def test_billed_hour_without_telemetry_is_still_counted() -> None:
    rows = price_node_hours(AWS, gpu_ids=[], hours=[T0], usage=[],
                            billed={(T0, "USD"): Decimal("7")}, entry=P4D)  # fmt: skip
    assert [(r.gpu_id, r.owner, r.cost, r.gpu_seconds) for r in rows] == [
        (NO_GPU, "", Decimal(7), 0.0)
    ]


def test_daily_charge_spread_over_hours_run() -> None:
    charge = Charge(1, T0, T0 + timedelta(days=1), Decimal("100"))
    ran = {1: {T0 + timedelta(hours=h) for h in range(4)}}
    costs = node_hour_costs([charge], ran)
    assert set(costs) == {(1, T0 + timedelta(hours=h), "USD") for h in range(4)}
    assert sum(costs.values()) == Decimal(100)


def test_partly_observed_billed_hour_is_split_as_observed() -> None:
    """An hour seen for 20 minutes (agent started mid-hour) goes to whoever held the GPU then."""
    hour = _hour(10, 1, [OwnerShare(900.0, namespace="search")], seen=1200.0, util=0.0,
                 idle=1200.0)  # fmt: skip
    rows = price_node_hours(AWS, gpu_ids=[10], hours=[T0], usage=[hour],
                            billed={(T0, "USD"): Decimal("2")}, entry=P4D)  # fmt: skip
    assert [(r.team, r.cost) for r in rows] == [
        ("search", Decimal("1.5")),
        ("unallocated", Decimal("0.5")),
    ]
    # Idle all the time it was seen: the whole GPU-hour is idle cost.
    assert sum(r.idle_cost for r in rows) == Decimal(2)


JOB = OwnerShare(3600.0, job_id="77", account="vision")


def test_an_hour_without_utilization_is_unmeasured_not_unused() -> None:
    """A MIG-enabled GPU reports no device utilization (NVML: not supported; the agent sends
    null): its observed hour is unmeasured cost, never 0 % busy."""
    rows = price_node_hours(AWS, gpu_ids=[10], hours=[T0],
                            usage=[_hour(10, 1, [JOB], util=None, idle=0.0, measured=0.0)],
                            billed={(T0, "USD"): Decimal("4")}, entry=P4D)  # fmt: skip
    (row,) = rows
    assert (row.owner, row.cost) == ("job 77 (vision)", Decimal(4))
    assert row.utilized_cost == row.idle_cost == row.unused_cost == 0
    assert row.unmeasured_cost == Decimal(4)
    assert row.efficiency is None


def test_a_half_measured_hour() -> None:
    """Half the hour at 50 % (with a reading), half without: half the cost is unmeasured, a
    quarter utilized, and efficiency is measured over the measured half only."""
    owners = [OwnerShare(1800.0, job_id="77"), OwnerShare(1800.0, job_id="78")]
    hour = _hour(10, 1, owners, util=50.0, idle=0.0, measured=1800.0)
    rows = price_node_hours(AWS, gpu_ids=[10], hours=[T0], usage=[hour],
                            billed={(T0, "USD"): Decimal("4")}, entry=P4D)  # fmt: skip
    assert sum(r.cost for r in rows) == Decimal(4)
    assert sum(r.unmeasured_cost for r in rows) == Decimal(2)
    assert sum(r.utilized_cost for r in rows) == Decimal(1)
    assert sum(r.idle_cost for r in rows) == 0
    assert sum(r.unused_cost for r in rows) == Decimal(1)
    for r in rows:
        assert r.utilized_cost + r.idle_cost + r.unused_cost + r.unmeasured_cost == r.cost
        assert r.efficiency == Decimal("0.5")


def test_idle_time_is_counted_within_the_measured_part() -> None:
    """An estimated hour: 30 minutes without a reading, 30 with one (20 of them idle, a mean
    of 20 %). Idle is the idle time's cost; utilized + idle stay within the measured half."""
    hour = _hour(10, 1, [], util=20.0, idle=1200.0, measured=1800.0)
    (row,) = price_node_hours(AWS, gpu_ids=[10], hours=[T0], usage=[hour], billed={},
                              entry=P4D)  # fmt: skip
    assert row.cost > 0
    assert row.unmeasured_cost == row.cost / 2
    assert row.utilized_cost == row.cost / 2 * Decimal("0.2")
    assert abs(row.idle_cost - row.cost / 3) < Decimal("1e-12")
    assert row.utilized_cost + row.idle_cost + row.unused_cost + row.unmeasured_cost == row.cost
    assert row.unused_cost > 0
    assert row.efficiency == row.utilized_cost / (row.cost / 2)
