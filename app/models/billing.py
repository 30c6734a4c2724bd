"""Billing imports, normalized line items (FOCUS names plus ``x_`` columns) and the price book."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.kit.money import Money


class BillingImport(Base):
    """One billing file: its detected format, progress, outcome and reconciled totals."""

    __tablename__ = "billing_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    file_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    format: Mapped[str | None] = mapped_column(String(40))
    source_system: Mapped[str | None] = mapped_column(String(40))
    dataset: Mapped[str] = mapped_column(String(20), default="")  # azure: actual | amortized
    status: Mapped[str] = mapped_column(String(20), default="pending")
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_matched: Mapped[int] = mapped_column(Integer, default=0)
    rows_replaced: Mapped[int] = mapped_column(Integer, default=0)
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stored_path: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class BillingLineItem(Base):
    """A bill row under FOCUS column names; costs in the row's own currency."""

    __tablename__ = "billing_line_items"
    # Every index is paid per row by each import's COPY (bench/billing_import), so there are only
    # two: the primary key (import, file row), which the corrections' delete uses (it names the
    # earlier imports of a scope), and the cost join's index, partial because only rows matched to
    # a node are ever read by it (``costs.service._charges``/``_nodes``; node deletes SET NULL).
    __table_args__ = (
        Index(
            "ix_billing_line_items_node_charge",
            "node_id",
            "charge_period_end",
            postgresql_where=text("node_id IS NOT NULL"),
            sqlite_where=text("node_id IS NOT NULL"),
        ),
        # GPU instance rows that match no node: the spend report's coverage line. Few rows (most
        # unmatched rows are storage, network, other services), so it costs the COPY little.
        Index(
            "ix_billing_line_items_unmatched_gpu",
            "charge_period_end",
            postgresql_where=text("node_id IS NULL AND x_gpu_count > 0"),
            sqlite_where=text("node_id IS NULL AND x_gpu_count > 0"),
        ),
    )

    # No foreign key: its per-row check was ~30% of the COPY time of an import (bench/billing_import).
    # Line items are only written by ``service.import_file`` under its own import row, in the
    # same transaction, and imports are never deleted.
    import_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    x_source_system: Mapped[str] = mapped_column(String(40))
    x_dataset: Mapped[str] = mapped_column(String(20), default="")
    billing_account_id: Mapped[str] = mapped_column(String(200), default="")
    sub_account_id: Mapped[str | None] = mapped_column(String(200))
    billing_period_start: Mapped[datetime]
    billing_period_end: Mapped[datetime | None]
    charge_period_start: Mapped[datetime]
    charge_period_end: Mapped[datetime]
    charge_category: Mapped[str] = mapped_column(String(40))
    charge_description: Mapped[str | None] = mapped_column(Text)
    billed_cost: Mapped[Decimal] = mapped_column(Money())
    effective_cost: Mapped[Decimal] = mapped_column(Money())
    list_cost: Mapped[Decimal | None] = mapped_column(Money())
    contracted_cost: Mapped[Decimal | None] = mapped_column(Money())  # FOCUS ContractedCost
    billing_currency: Mapped[str] = mapped_column(String(3))
    x_exchange_rate: Mapped[Decimal] = mapped_column(Money())  # to the import's currency
    pricing_quantity: Mapped[Decimal | None] = mapped_column(Money())
    pricing_unit: Mapped[str | None] = mapped_column(String(100))
    provider_name: Mapped[str | None] = mapped_column(String(100))
    service_name: Mapped[str | None] = mapped_column(String(200))
    region_id: Mapped[str | None] = mapped_column(String(100))
    resource_id: Mapped[str | None] = mapped_column(Text)
    sku_id: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[str | None] = mapped_column(Text)  # JSON object text, as FOCUS carries it
    x_resource_key: Mapped[str | None] = mapped_column(String(500))
    x_instance_type: Mapped[str | None] = mapped_column(String(100))
    x_gpu_model: Mapped[str | None] = mapped_column(String(100))
    x_gpu_count: Mapped[int | None] = mapped_column(Integer)
    x_cost_component: Mapped[str] = mapped_column(String(20))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))


class PriceBookEntry(Base):
    """A user price: cloud instance type per hour, or an on-premises node's cost inputs."""

    __tablename__ = "price_book_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))  # aws | gcp | azure | onprem
    instance_type: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100), default="")  # "" = any region
    gpu_model: Mapped[str | None] = mapped_column(String(100))
    gpu_count: Mapped[int] = mapped_column(Integer, default=1)
    hourly_price: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    hardware_cost: Mapped[Decimal | None] = mapped_column(Money())
    amortization_months: Mapped[int | None] = mapped_column(Integer)
    energy_price_kwh: Mapped[Decimal | None] = mapped_column(Money())
    pue: Mapped[Decimal | None] = mapped_column(Money())
    source: Mapped[str] = mapped_column(String(500), default="user")
    price_date: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("uq_price_book_entries_key", "provider", "instance_type", "region", unique=True),
    )
