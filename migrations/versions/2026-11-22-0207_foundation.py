"""foundation

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:07:15.714283
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("instance_type", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("agent_version", sa.String(length=40), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_nodes_cluster_id_clusters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_nodes_name")),
    )
    op.create_index(op.f("ix_nodes_cluster_id"), "nodes", ["cluster_id"], unique=False)
    op.create_index(op.f("ix_nodes_instance_id"), "nodes", ["instance_id"], unique=False)
    op.create_table(
        "gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=100), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mig_mode", sa.Boolean(), nullable=True),
        sa.Column("mig_instances", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_gpus_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpus")),
        sa.UniqueConstraint("uuid", name=op.f("uq_gpus_uuid")),
    )
    op.create_index(op.f("ix_gpus_node_id"), "gpus", ["node_id"], unique=False)
    op.create_table(
        "host_samples",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("ts", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cpu_busy_ratio", sa.Float(), nullable=True),
        sa.Column("iowait_ratio", sa.Float(), nullable=True),
        sa.Column("io_pressure_some_ratio", sa.Float(), nullable=True),
        sa.Column("io_pressure_full_ratio", sa.Float(), nullable=True),
        sa.Column("disk_read_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("disk_write_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("net_rx_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("net_tx_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_host_samples_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "ts", name=op.f("pk_host_samples")),
    )
    op.create_index(op.f("ix_host_samples_ts"), "host_samples", ["ts"], unique=False)
    op.create_table(
        "node_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_tokens_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_node_tokens_token_hash")),
    )
    op.create_index(op.f("ix_node_tokens_node_id"), "node_tokens", ["node_id"], unique=False)
    op.create_table(
        "gpu_process_samples",
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("ts", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("used_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sm_utilization", sa.Float(), nullable=True),
        sa.Column("user", sa.String(length=100), nullable=True),
        sa.Column("pod_uid", sa.String(length=64), nullable=True),
        sa.Column("pod_name", sa.String(length=255), nullable=True),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("container_id", sa.String(length=100), nullable=True),
        sa.Column("job_id", sa.String(length=100), nullable=True),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["gpu_id"],
            ["gpus.id"],
            name=op.f("fk_gpu_process_samples_gpu_id_gpus"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gpu_id", "ts", "pid", name=op.f("pk_gpu_process_samples")),
    )
    op.create_index(op.f("ix_gpu_process_samples_ts"), "gpu_process_samples", ["ts"], unique=False)
    op.create_table(
        "gpu_samples",
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("ts", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("utilization_gpu", sa.Float(), nullable=True),
        sa.Column("utilization_memory", sa.Float(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("power_watts", sa.Float(), nullable=True),
        sa.Column("power_limit_watts", sa.Float(), nullable=True),
        sa.Column("energy_mj", sa.BigInteger(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("sm_clock_mhz", sa.Integer(), nullable=True),
        sa.Column("mem_clock_mhz", sa.Integer(), nullable=True),
        sa.Column("pcie_rx_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("pcie_tx_bytes_per_s", sa.Float(), nullable=True),
        sa.Column("clock_event_reasons", sa.BigInteger(), nullable=True),
        sa.Column("ecc_uncorrected", sa.BigInteger(), nullable=True),
        sa.Column("xid_errors", sa.Integer(), nullable=True),
        sa.Column("process_count", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f("fk_gpu_samples_gpu_id_gpus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("gpu_id", "ts", name=op.f("pk_gpu_samples")),
    )
    op.create_index(op.f("ix_gpu_samples_ts"), "gpu_samples", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_gpu_samples_ts"), table_name="gpu_samples")
    op.drop_table("gpu_samples")
    op.drop_index(op.f("ix_gpu_process_samples_ts"), table_name="gpu_process_samples")
    op.drop_table("gpu_process_samples")
    op.drop_index(op.f("ix_node_tokens_node_id"), table_name="node_tokens")
    op.drop_table("node_tokens")
    op.drop_index(op.f("ix_host_samples_ts"), table_name="host_samples")
    op.drop_table("host_samples")
    op.drop_index(op.f("ix_gpus_node_id"), table_name="gpus")
    op.drop_table("gpus")
    op.drop_index(op.f("ix_nodes_instance_id"), table_name="nodes")
    op.drop_index(op.f("ix_nodes_cluster_id"), table_name="nodes")
    op.drop_table("nodes")
    op.drop_table("clusters")
    op.drop_table("api_keys")
