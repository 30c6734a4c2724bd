"""Rollups of the raw samples: per GPU and per node per minute and hour, the fleet per hour.

Rollups are derived data: ``app.usage.repository`` recomputes a bucket from scratch whenever
ingest marks it dirty (``RollupDirty``), so late samples correct the buckets they fall in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class _GpuRollupColumns:
    """Columns shared by the minute and hour GPU rollups (seconds are sample-weighted)."""

    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    samples: Mapped[int] = mapped_column(Integer)
    observed_seconds: Mapped[float] = mapped_column(Float)
    utilization_mean: Mapped[float | None] = mapped_column(Float)  # percent
    utilization_max: Mapped[float | None] = mapped_column(Float)
    memory_used_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    power_mean_watts: Mapped[float | None] = mapped_column(Float)
    energy_joules: Mapped[float | None] = mapped_column(Float)
    # idle < idle threshold <= low < low threshold <= busy; the three add up to the seconds
    # that had a utilization reading.
    idle_seconds: Mapped[float] = mapped_column(Float)
    low_util_seconds: Mapped[float] = mapped_column(Float)
    busy_seconds: Mapped[float] = mapped_column(Float)
    # [{"user", "namespace", "pod_name", "job_id", "account", "seconds"}]: time a process of
    # that owner held the GPU; simultaneous owners split a sample's time equally.
    owners: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class GpuMinuteRollup(_GpuRollupColumns, Base):
    __tablename__ = "gpu_minute_rollups"


class GpuHourRollup(_GpuRollupColumns, Base):
    __tablename__ = "gpu_hour_rollups"


class _HostRollupColumns:
    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    samples: Mapped[int] = mapped_column(Integer)
    observed_seconds: Mapped[float] = mapped_column(Float)
    cpu_busy_mean: Mapped[float | None] = mapped_column(Float)  # ratios 0-1
    iowait_mean: Mapped[float | None] = mapped_column(Float)
    iowait_max: Mapped[float | None] = mapped_column(Float)
    io_pressure_some_mean: Mapped[float | None] = mapped_column(Float)
    io_pressure_full_mean: Mapped[float | None] = mapped_column(Float)
    disk_read_bytes: Mapped[float | None] = mapped_column(Float)
    disk_read_bytes_per_s_max: Mapped[float | None] = mapped_column(Float)


class HostMinuteRollup(_HostRollupColumns, Base):
    __tablename__ = "host_minute_rollups"


class HostHourRollup(_HostRollupColumns, Base):
    __tablename__ = "host_hour_rollups"


class FleetHourRollup(Base):
    """The whole fleet per hour, so a month's summary reads 720 rows, not 720 x GPUs."""

    __tablename__ = "fleet_hour_rollups"

    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    gpus: Mapped[int] = mapped_column(Integer)
    observed_seconds: Mapped[float] = mapped_column(Float)
    utilization_seconds: Mapped[float] = mapped_column(Float)  # sum of utilization% * seconds
    power_watt_seconds: Mapped[float] = mapped_column(Float)  # sum of mean power * seconds
    energy_joules: Mapped[float] = mapped_column(Float)
    idle_seconds: Mapped[float] = mapped_column(Float)
    low_util_seconds: Mapped[float] = mapped_column(Float)
    busy_seconds: Mapped[float] = mapped_column(Float)


class RollupDirty(Base):
    """A (GPU or node, minute) whose rollups are stale; ``version`` bumps on every re-mark."""

    __tablename__ = "rollup_dirty"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "gpu" | "host"
    entity_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)  # start of the minute
    version: Mapped[int] = mapped_column(BigInteger, default=1)
