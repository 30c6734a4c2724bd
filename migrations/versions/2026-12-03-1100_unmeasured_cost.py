"""cost ledger: unmeasured cost, the cost of observed GPU time without a utilization reading
(a MIG-enabled GPU reports none), beside utilized, idle and unused

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.money

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("cost_ledger_hours", "cost_ledger_days")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "unmeasured_cost",
                    app.kit.money.Money(precision=38, scale=18),
                    server_default="0",
                    nullable=False,
                )
            )
    # Rows already in the ledger counted such time as unused: re-price the hours whose rollups
    # have time without a reading (observed > idle + low + busy seconds, beyond float rounding);
    # the next costs.reprice run rewrites them and their days.
    op.execute(
        "INSERT INTO cost_dirty (node_id, hour, version) "
        "SELECT DISTINCT g.node_id, r.bucket, 1 FROM gpu_hour_rollups r "
        "JOIN gpus g ON g.id = r.gpu_id "
        "WHERE r.observed_seconds - (r.idle_seconds + r.low_util_seconds + r.busy_seconds) "
        "> 0.000001 AND EXISTS (SELECT 1 FROM cost_ledger_hours l "
        "WHERE l.node_id = g.node_id AND l.hour = r.bucket) "
        "ON CONFLICT (node_id, hour) DO UPDATE SET version = cost_dirty.version + 1"
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("unmeasured_cost")
