"""Spend reports built by hand, with amounts whose rounding does not add up naively."""

from __future__ import annotations

import random
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.reports.types import (
    NO_TELEMETRY,
    Amounts,
    Coverage,
    DailyCost,
    OwnerIdle,
    SpendLine,
    SpendReport,
    UnpricedNode,
)

START = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 2026-11-01 00:00 in New York (EDT)
END = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 2026-12-01 00:00 in New York (EST)
GENERATED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def _amount(rng: random.Random, high: int = 10**9) -> Decimal:
    return Decimal(rng.randint(0, high)).scaleb(-6)  # up to 1000.000000, six decimals


def make_amounts(rng: random.Random) -> Amounts:
    """Consistent amounts: cost = billed + estimated + onprem = utilized + idle + unused +
    unmeasured. About one group in seven has no utilization reading at all (MIG-enabled GPUs),
    as many have one all the time."""
    six = Decimal("0.000001")
    billed, estimated, onprem = _amount(rng), _amount(rng), _amount(rng, 10**8)
    cost = billed + estimated + onprem
    measured = (cost * Decimal(min(max(rng.randint(-200, 1200), 0), 1000)) / 1000).quantize(six)
    utilized = (measured * Decimal(rng.randint(0, 1000)) / 1000).quantize(six)
    idle = ((measured - utilized) * Decimal(rng.randint(0, 1000)) / 1000).quantize(six)
    return Amounts(
        gpu_hours=_amount(rng, 10**7), cost=cost, billed=billed, estimated=estimated,
        onprem=onprem, unpriced_gpu_hours=_amount(rng, 10**5), utilized=utilized, idle=idle,
        unused=measured - utilized - idle, unmeasured=cost - measured,
        energy_kwh=_amount(rng, 10**7), energy_cost=_amount(rng, 10**6),
    )  # fmt: skip


def add(a: Amounts, b: Amounts) -> Amounts:
    return Amounts(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(Amounts)})


def split_days(rng: random.Random, cost: Decimal, days: int) -> list[Decimal]:
    """``days`` exact daily costs that add up to ``cost``."""
    weights = [rng.randint(1, 100) for _ in range(days)]
    parts = [(cost * w / sum(weights)).quantize(Decimal("0.0000001")) for w in weights[:-1]]
    return [*parts, cost - sum(parts, Decimal(0))]


def make_report(
    *,
    seed: int = 7,
    currencies: tuple[str, ...] = ("USD",),
    group_by: tuple[str, ...] = ("team",),
    groups: int = 5,
    days: int = 30,
    label: str = "2026-11",
    tz: str = "America/New_York",
) -> SpendReport:
    rng = random.Random(seed)
    lines: list[SpendLine] = []
    daily: list[DailyCost] = []
    totals: dict[str, Amounts] = {}
    for cur in currencies:
        for g in range(groups):
            key: tuple[str, ...] = (
                (f"team-{g}",) if len(group_by) == 1 else (f"team-{g // 2}", f"project-{g}")
            )
            amounts = make_amounts(rng)
            previous = None if g == 0 else _amount(rng)
            if g == groups - 1 and groups > 2:
                # As the service writes it: bill rows no node reports, billed only, no days.
                key = (NO_TELEMETRY,) + ("",) * (len(group_by) - 1)
                amounts = Amounts(cost=amounts.billed, billed=amounts.billed)
                previous = None
            lines.append(SpendLine(key, cur, amounts, previous))
            totals[cur] = add(totals.get(cur, Amounts()), amounts)
            if key[0] != NO_TELEMETRY:
                for i, cost in enumerate(split_days(rng, amounts.cost, days)):
                    daily.append(DailyCost(date(2026, 11, 1) + timedelta(days=i), key, cur, cost))
    lines.sort(key=lambda line: -line.amounts.cost)
    return SpendReport(
        start=START, end=END, tz=tz, label=label, group_by=group_by, generated_at=GENERATED,
        previous_start=START - (END - START), previous_end=START, lines=lines, totals=totals,
        daily=daily,
        top_idle_owners=[
            OwnerIdle("job 1234", "team-1", currencies[0], Decimal("812.345678"), Decimal("96.5")),
            OwnerIdle("user alice", "team-0", currencies[0], Decimal("10.005"), Decimal("2.25")),
        ],
        coverage=[
            Coverage(cur, Decimal("1000.004"), Decimal("975.0015"), Decimal("25.0025"))
            for cur in currencies
        ],
        unpriced_nodes=[UnpricedNode("gpu-node-9", "no instance type reported", Decimal("48"))],
    )  # fmt: skip


def record_calls(monkeypatch: Any, **fixed: Any) -> list[dict[str, Any]]:
    """Replace ``reports_service.spend_report`` with one that records its keyword arguments
    and answers ``make_report`` for the asked label, grouping and zone (plus ``fixed``)."""
    from app.reports import service as reports_service

    seen: list[dict[str, Any]] = []

    def spend_report(session: Any, **kwargs: Any) -> SpendReport:
        seen.append(kwargs)
        return make_report(label=kwargs["label"], group_by=kwargs["group_by"], tz=kwargs["tz"],
                           **fixed)  # fmt: skip

    monkeypatch.setattr(reports_service, "spend_report", spend_report)
    return seen
