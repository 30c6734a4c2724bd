"""cost ledger: priced GPU-hours, their day totals and the re-pricing queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.kit.money

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cost_dirty",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("hour", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "hour", name=op.f("pk_cost_dirty")),
    )
    op.create_table(
        "cost_ledger_days",
        sa.Column("day", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=300), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("utilized_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("idle_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("unused_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("energy_joules", sa.Float(), nullable=False),
        sa.Column("energy_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_cost_ledger_days_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "day",
            "node_id",
            "owner",
            "team",
            "project",
            "source",
            "currency",
            name=op.f("pk_cost_ledger_days"),
        ),
    )
    with op.batch_alter_table("cost_ledger_days", schema=None) as batch_op:
        batch_op.create_index("ix_cost_ledger_days_node_day", ["node_id", "day"], unique=False)

    op.create_table(
        "cost_ledger_hours",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("hour", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("gpu_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("node_hour_price", app.kit.money.Money(precision=38, scale=18), nullable=True),
        sa.Column("price_ratio", app.kit.money.Money(precision=38, scale=18), nullable=True),
        sa.Column("price_basis", sa.Text(), nullable=True),
        sa.Column("unpriced_reason", sa.Text(), nullable=True),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("utilized_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("idle_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("unused_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.Column("energy_joules", sa.Float(), nullable=False),
        sa.Column("energy_cost", app.kit.money.Money(precision=38, scale=18), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_cost_ledger_hours_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "node_id", "hour", "gpu_id", "owner", "currency", name=op.f("pk_cost_ledger_hours")
        ),
    )
    with op.batch_alter_table("cost_ledger_hours", schema=None) as batch_op:
        batch_op.create_index("ix_cost_ledger_hours_hour", ["hour"], unique=False)
    with op.batch_alter_table("billing_line_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_line_items_unmatched_gpu",
            ["charge_period_end"],
            unique=False,
            postgresql_where=sa.text("node_id IS NULL AND x_gpu_count > 0"),
            sqlite_where=sa.text("node_id IS NULL AND x_gpu_count > 0"),
        )
    # Price the hours already rolled up: the next costs.reprice run fills the ledger.
    op.execute(
        "INSERT INTO cost_dirty (node_id, hour, version) "
        "SELECT DISTINCT g.node_id, r.bucket, 1 FROM gpu_hour_rollups r "
        "JOIN gpus g ON g.id = r.gpu_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("billing_line_items", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_line_items_unmatched_gpu")
    with op.batch_alter_table("cost_ledger_hours", schema=None) as batch_op:
        batch_op.drop_index("ix_cost_ledger_hours_hour")

    op.drop_table("cost_ledger_hours")
    with op.batch_alter_table("cost_ledger_days", schema=None) as batch_op:
        batch_op.drop_index("ix_cost_ledger_days_node_day")

    op.drop_table("cost_ledger_days")
    op.drop_table("cost_dirty")
