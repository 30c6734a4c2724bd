"""The cost ledger: every GPU-hour priced once, per owner, and its day totals for reports.

Rows are derived data, rewritten per (node, hour) by ``app.costs.ledger`` whenever a rollup,
a bill or a price changes them (``CostDirty``), so reading spend is a sum, not a recomputation.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.kit.money import Money


class _CostColumns:
    """Amounts shared by the hourly ledger and its day totals (exact money, in ``currency``)."""

    gpu_seconds: Mapped[float] = mapped_column(Float)  # observed GPU time of this owner
    cost: Mapped[Decimal] = mapped_column(Money())
    utilized_cost: Mapped[Decimal] = mapped_column(Money())
    idle_cost: Mapped[Decimal] = mapped_column(Money())
    unused_cost: Mapped[Decimal] = mapped_column(Money())
    # The cost of the observed time without a utilization reading (a MIG-enabled GPU reports
    # none): neither utilized, idle nor unused. Rows written before it existed hold 0.
    unmeasured_cost: Mapped[Decimal] = mapped_column(Money(), server_default="0")
    energy_joules: Mapped[float] = mapped_column(Float)
    energy_cost: Mapped[Decimal] = mapped_column(Money())


class CostLedgerHour(_CostColumns, Base):
    """One owner's share of one GPU-hour: its cost, where the price came from and why."""

    __tablename__ = "cost_ledger_hours"
    __table_args__ = (Index("ix_cost_ledger_hours_hour", "hour"),)

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    gpu_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(300), primary_key=True)  # "" = unallocated
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    team: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(12))  # billed | estimated | onprem | unpriced
    # The node's price for the whole hour (bill amount, list price or amortisation) and, for
    # estimates, the effective/list ratio applied and where it came from.
    node_hour_price: Mapped[Decimal | None] = mapped_column(Money())
    price_ratio: Mapped[Decimal | None] = mapped_column(Money())
    price_basis: Mapped[str | None] = mapped_column(Text)
    unpriced_reason: Mapped[str | None] = mapped_column(Text)


class CostLedgerDay(_CostColumns, Base):
    """The hourly ledger summed per UTC day, node, owner and source: what reports read."""

    __tablename__ = "cost_ledger_days"
    __table_args__ = (Index("ix_cost_ledger_days_node_day", "node_id", "day"),)

    day: Mapped[datetime] = mapped_column(primary_key=True)  # 00:00 UTC
    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(300), primary_key=True)
    team: Mapped[str] = mapped_column(String(200), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(12), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class CostDirty(Base):
    """A (node, hour) whose ledger rows are stale; ``version`` bumps on every re-mark."""

    __tablename__ = "cost_dirty"

    node_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
