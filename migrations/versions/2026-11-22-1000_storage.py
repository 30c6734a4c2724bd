"""storage: rollup tables, dirty-bucket queue, daily partitions of the raw tables (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Raw table → (primary key columns, foreign key column, referenced table).
RAW_TABLES = {
    "gpu_samples": (("gpu_id", "ts"), "gpu_id", "gpus"),
    "gpu_process_samples": (("gpu_id", "ts", "pid"), "gpu_id", "gpus"),
    "host_samples": (("node_id", "ts"), "node_id", "nodes"),
}
DAYS_AHEAD = 3


def _gpu_rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("bucket", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("observed_seconds", sa.Float(), nullable=False),
        sa.Column("utilization_mean", sa.Float(), nullable=True),
        sa.Column("utilization_max", sa.Float(), nullable=True),
        sa.Column("memory_used_max_bytes", sa.BigInteger(), nullable=True),
        sa.Column("power_mean_watts", sa.Float(), nullable=True),
        sa.Column("energy_joules", sa.Float(), nullable=True),
        sa.Column("idle_seconds", sa.Float(), nullable=False),
        sa.Column("low_util_seconds", sa.Float(), nullable=False),
        sa.Column("busy_seconds", sa.Float(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f(f"fk_{name}_gpu_id_gpus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("gpu_id", "bucket", name=op.f(f"pk_{name}")),
    )
    op.create_index(op.f(f"ix_{name}_bucket"), name, ["bucket"], unique=False)


def _host_rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("bucket", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("observed_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_busy_mean", sa.Float(), nullable=True),
        sa.Column("iowait_mean", sa.Float(), nullable=True),
        sa.Column("iowait_max", sa.Float(), nullable=True),
        sa.Column("io_pressure_some_mean", sa.Float(), nullable=True),
        sa.Column("io_pressure_full_mean", sa.Float(), nullable=True),
        sa.Column("disk_read_bytes", sa.Float(), nullable=True),
        sa.Column("disk_read_bytes_per_s_max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f(f"fk_{name}_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("node_id", "bucket", name=op.f(f"pk_{name}")),
    )
    op.create_index(op.f(f"ix_{name}_bucket"), name, ["bucket"], unique=False)


def upgrade() -> None:
    _gpu_rollup("gpu_minute_rollups")
    _gpu_rollup("gpu_hour_rollups")
    _host_rollup("host_minute_rollups")
    _host_rollup("host_hour_rollups")
    op.create_table(
        "fleet_hour_rollups",
        sa.Column("bucket", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("observed_seconds", sa.Float(), nullable=False),
        sa.Column("utilization_seconds", sa.Float(), nullable=False),
        sa.Column("power_watt_seconds", sa.Float(), nullable=False),
        sa.Column("energy_joules", sa.Float(), nullable=False),
        sa.Column("idle_seconds", sa.Float(), nullable=False),
        sa.Column("low_util_seconds", sa.Float(), nullable=False),
        sa.Column("busy_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_fleet_hour_rollups")),
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("bucket", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "entity_id", "bucket", name=op.f("pk_rollup_dirty")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in RAW_TABLES:
            _rebuild(table, partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in RAW_TABLES:
            _rebuild(table, partitioned=False)
    op.drop_table("rollup_dirty")
    op.drop_table("fleet_hour_rollups")
    for name in (
        "host_hour_rollups",
        "host_minute_rollups",
        "gpu_hour_rollups",
        "gpu_minute_rollups",
    ):
        op.drop_index(op.f(f"ix_{name}_bucket"), table_name=name)
        op.drop_table(name)


def _rebuild(table: str, *, partitioned: bool) -> None:
    """Recreate ``table`` (PostgreSQL) as a daily range-partitioned table, or back as a plain
    one, keeping its rows and constraint names. Partitions are named ``<table>_pYYYYMMDD``."""
    pk, fk_col, ref = RAW_TABLES[table]
    old = f"{table}_old"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    op.execute(f"ALTER INDEX ix_{table}_ts RENAME TO ix_{old}_ts")
    suffix = " PARTITION BY RANGE (ts)" if partitioned else ""
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS){suffix}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(pk)})")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{fk_col}_{ref} FOREIGN KEY ({fk_col}) "
        f"REFERENCES {ref} (id) ON DELETE CASCADE"
    )
    op.execute(f"CREATE INDEX ix_{table}_ts ON {table} (ts)")
    if partitioned:
        bind = op.get_bind()
        bounds = sa.text(f"SELECT min(ts), max(ts) FROM {old}")  # noqa: S608 (our table names)
        lo, hi = bind.execute(bounds).one()
        today = datetime.now(UTC).date()
        days = {today + timedelta(days=d) for d in range(-1, DAYS_AHEAD + 1)}
        if lo is not None:
            day = lo.astimezone(UTC).date()
            while day <= hi.astimezone(UTC).date():
                days.add(day)
                day += timedelta(days=1)
        for day in sorted(days):
            op.execute(_create_partition_sql(table, day))
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")  # noqa: S608 (our table names)
    op.execute(f"DROP TABLE {old}")


def _create_partition_sql(table: str, day: date) -> str:
    nxt = day + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {table}_p{day:%Y%m%d} PARTITION OF {table} "
        f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"
    )
