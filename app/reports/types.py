"""What the spend report holds: exact amounts; renderers round them (``app.kit.money``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from app.costs.engine import efficiency

NO_TELEMETRY = "(bill only: no telemetry)"  # the coverage line's group name


@dataclass(frozen=True)
class Amounts:
    """One group's GPU spend in one currency. ``cost`` = billed + estimated + onprem, and
    = utilized + idle + unused + unmeasured (the four cost shares add up to the cost)."""

    gpu_hours: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    billed: Decimal = Decimal(0)
    estimated: Decimal = Decimal(0)
    onprem: Decimal = Decimal(0)
    unpriced_gpu_hours: Decimal = Decimal(0)
    utilized: Decimal = Decimal(0)
    idle: Decimal = Decimal(0)  # GPU time below the idle threshold
    unused: Decimal = Decimal(0)  # allocated and working, but the unused share of capacity
    unmeasured: Decimal = Decimal(0)  # observed time without a utilization reading (MIG)
    energy_kwh: Decimal = Decimal(0)
    energy_cost: Decimal = Decimal(0)

    @property
    def efficiency(self) -> Decimal | None:
        """Utilized share of the measured spend (0-1): utilized / (cost - unmeasured); None
        when nothing was measured."""
        return efficiency(self.utilized, self.cost, self.unmeasured)


MONEY_FIELDS = ("cost", "billed", "estimated", "onprem", "utilized", "idle", "unused",
                "unmeasured", "energy_cost")  # fmt: skip


@dataclass(frozen=True)
class SpendLine:
    """A group (one name per ``group_by`` level) in one currency, with the previous period."""

    key: tuple[str, ...]
    currency: str
    amounts: Amounts
    previous_cost: Decimal | None = None  # same group, previous period of equal length

    @property
    def change(self) -> Decimal | None:
        """Relative change of cost against the previous period (0.1 = +10 %)."""
        if self.previous_cost is None or self.previous_cost == 0:
            return None
        return (self.amounts.cost - self.previous_cost) / self.previous_cost


@dataclass(frozen=True)
class DailyCost:
    day: date  # in the report's time zone
    key: tuple[str, ...]
    currency: str
    cost: Decimal


@dataclass(frozen=True)
class OwnerIdle:
    """A job, pod or user ranked by the idle cost of the GPUs it held."""

    owner: str  # "job 1234", "pod ns/name", "user alice"
    team: str
    currency: str
    idle_cost: Decimal
    gpu_hours: Decimal


@dataclass(frozen=True)
class Coverage:
    """How much of the bills' GPU spend in the period the telemetry sees, per currency."""

    currency: str
    bill_gpu_total: Decimal  # GPU instance rows on the bills (matched or not)
    observed: Decimal  # of which matched to a node with telemetry
    unobserved: Decimal  # GPU instance rows matching no node: the NO_TELEMETRY line

    @property
    def observed_share(self) -> Decimal | None:
        return self.observed / self.bill_gpu_total if self.bill_gpu_total else None


@dataclass(frozen=True)
class UnpricedNode:
    node: str
    reason: str  # e.g. "no instance type reported", "p9.big (aws) is not in the price book"
    gpu_hours: Decimal


@dataclass(frozen=True)
class EstimatedNode:
    """A node whose hours were estimated from the price book, and the ratio applied."""

    node: str
    basis: str  # "0.62 from this node's bills", "1 ... list price"
    gpu_hours: Decimal


@dataclass(frozen=True)
class SpendReport:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: str
    label: str  # "2026-11", "2026-11-01 to 2026-11-15", "2026-12 to date"
    group_by: tuple[str, ...]  # one or two of GROUPS
    generated_at: datetime
    previous_start: datetime
    previous_end: datetime
    lines: list[SpendLine]  # largest cost first; includes the NO_TELEMETRY line when present
    totals: dict[str, Amounts]  # per currency, the lines' sum
    daily: list[DailyCost] = field(default_factory=list)
    top_idle_owners: list[OwnerIdle] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    unpriced_nodes: list[UnpricedNode] = field(default_factory=list)
    estimated_nodes: list[EstimatedNode] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted(self.totals)
