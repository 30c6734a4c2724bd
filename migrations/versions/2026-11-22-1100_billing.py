"""billing line items and price book

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.kit.money

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(nullable: bool) -> dict[str, object]:
    return {"type_": app.db.UTCDateTime(timezone=True), "nullable": nullable}


def upgrade() -> None:
    money = app.kit.money.Money
    op.create_table(
        "billing_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=True),
        sa.Column("source_system", sa.String(length=40), nullable=True),
        sa.Column("dataset", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("bytes_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_accepted", sa.Integer(), nullable=False),
        sa.Column("rows_matched", sa.Integer(), nullable=False),
        sa.Column("rows_replaced", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("stored_path", sa.String(length=1000), nullable=True),
        sa.Column("created_at", **_utc(False)),
        sa.Column("finished_at", **_utc(True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_imports")),
    )
    op.create_index(
        op.f("ix_billing_imports_file_sha256"), "billing_imports", ["file_sha256"], unique=False
    )
    op.create_table(
        "billing_line_items",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("x_source_system", sa.String(length=40), nullable=False),
        sa.Column("x_dataset", sa.String(length=20), nullable=False),
        sa.Column("billing_account_id", sa.String(length=200), nullable=False),
        sa.Column("sub_account_id", sa.String(length=200), nullable=True),
        sa.Column("billing_period_start", **_utc(False)),
        sa.Column("billing_period_end", **_utc(True)),
        sa.Column("charge_period_start", **_utc(False)),
        sa.Column("charge_period_end", **_utc(False)),
        sa.Column("charge_category", sa.String(length=40), nullable=False),
        sa.Column("charge_description", sa.Text(), nullable=True),
        sa.Column("billed_cost", money(), nullable=False),
        sa.Column("effective_cost", money(), nullable=False),
        sa.Column("list_cost", money(), nullable=True),
        sa.Column("billing_currency", sa.String(length=3), nullable=False),
        sa.Column("x_exchange_rate", money(), nullable=False),
        sa.Column("pricing_quantity", money(), nullable=True),
        sa.Column("pricing_unit", sa.String(length=100), nullable=True),
        sa.Column("provider_name", sa.String(length=100), nullable=True),
        sa.Column("service_name", sa.String(length=200), nullable=True),
        sa.Column("region_id", sa.String(length=100), nullable=True),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("sku_id", sa.String(length=200), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("x_resource_key", sa.String(length=500), nullable=True),
        sa.Column("x_instance_type", sa.String(length=100), nullable=True),
        sa.Column("x_gpu_model", sa.String(length=100), nullable=True),
        sa.Column("x_gpu_count", sa.Integer(), nullable=True),
        sa.Column("x_cost_component", sa.String(length=20), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_billing_line_items_node_id_nodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_billing_line_items")),
    )
    op.create_index(
        "ix_billing_line_items_node_charge",
        "billing_line_items",
        ["node_id", "charge_period_end"],
        unique=False,
        postgresql_where=sa.text("node_id IS NOT NULL"),
        sqlite_where=sa.text("node_id IS NOT NULL"),
    )
    op.create_table(
        "price_book_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("instance_type", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("gpu_model", sa.String(length=100), nullable=True),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("hourly_price", money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("hardware_cost", money(), nullable=True),
        sa.Column("amortization_months", sa.Integer(), nullable=True),
        sa.Column("energy_price_kwh", money(), nullable=True),
        sa.Column("pue", money(), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("price_date", sa.Date(), nullable=True),
        sa.Column("updated_at", **_utc(False)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_book_entries")),
    )
    op.create_index(
        "uq_price_book_entries_key",
        "price_book_entries",
        ["provider", "instance_type", "region"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_price_book_entries_key", table_name="price_book_entries")
    op.drop_table("price_book_entries")
    op.drop_index("ix_billing_line_items_node_charge", table_name="billing_line_items")
    op.drop_table("billing_line_items")
    op.drop_index(op.f("ix_billing_imports_file_sha256"), table_name="billing_imports")
    op.drop_table("billing_imports")
