"""findings: idle, data-starved and energy-wasting GPUs, silent agents; the evaluator's cursor
and its queue of rewritten minutes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
import app.kit.money

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.create_table(
        "finding_cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("evaluated_until", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_finding_cursors")),
    )
    op.create_table(
        "finding_dirty",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("minute", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "minute", name=op.f("pk_finding_dirty")),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("gpu_id", sa.Integer(), nullable=True),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("started_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cost_per_hour", app.kit.money.Money(precision=38, scale=18), nullable=True),
        sa.Column("cost_so_far", app.kit.money.Money(precision=38, scale=18), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("cost_source", sa.String(length=20), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("acked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(length=200), nullable=True),
        sa.Column("snoozed_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f("fk_findings_gpu_id_gpus"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_findings_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_opened_at", ["opened_at"], unique=False)
        batch_op.create_index(
            "ix_findings_state_kind_opened", ["state", "kind", "opened_at"], unique=False
        )
        batch_op.create_index(
            "ix_findings_subject", ["kind", "node_id", "gpu_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_findings_team_state_opened", ["team", "state", "opened_at"], unique=False
        )
        batch_op.create_index(
            "ix_findings_open_subject",
            ["kind", "node_id", "gpu_id"],
            unique=True,
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_open_subject")
        batch_op.drop_index("ix_findings_team_state_opened")
        batch_op.drop_index("ix_findings_subject")
        batch_op.drop_index("ix_findings_state_kind_opened")
        batch_op.drop_index("ix_findings_opened_at")
    op.drop_table("findings")
    op.drop_table("finding_dirty")
    op.drop_table("finding_cursors")
