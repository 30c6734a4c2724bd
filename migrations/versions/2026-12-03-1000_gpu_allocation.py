"""gpu samples: who holds the GPU (job or pod) even with no process, reserved memory; process
samples: 32-bit unsigned pids, the MIG instance a process runs on

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALLOCATION = (
    ("alloc_job_id", 100), ("alloc_user", 100), ("alloc_account", 100),
    ("alloc_pod", 255), ("alloc_namespace", 255), ("alloc_container", 255),
)  # fmt: skip


def upgrade() -> None:
    # On PostgreSQL the parent of a partitioned table passes both changes to every partition.
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        for name, length in ALLOCATION:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
        batch_op.add_column(sa.Column("memory_reserved_bytes", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("gpu_process_samples", schema=None) as batch_op:
        batch_op.alter_column("pid", existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=False)  # fmt: skip
        batch_op.add_column(sa.Column("gpu_instance_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("compute_instance_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gpu_process_samples", schema=None) as batch_op:
        batch_op.drop_column("compute_instance_id")
        batch_op.drop_column("gpu_instance_id")
        batch_op.alter_column("pid", existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=False)  # fmt: skip
    with op.batch_alter_table("gpu_samples", schema=None) as batch_op:
        batch_op.drop_column("memory_reserved_bytes")
        for name, _ in reversed(ALLOCATION):
            batch_op.drop_column(name)
