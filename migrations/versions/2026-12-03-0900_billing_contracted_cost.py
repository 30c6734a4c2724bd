"""billing line items: FOCUS ContractedCost

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.money

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites no row on PostgreSQL or SQLite.
    op.add_column(
        "billing_line_items",
        sa.Column("contracted_cost", app.kit.money.Money(precision=38, scale=18), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("billing_line_items", schema=None) as batch_op:
        batch_op.drop_column("contracted_cost")
