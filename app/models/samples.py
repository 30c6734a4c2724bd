"""Raw measurements as the agents send them: one row per (GPU, timestamp), per (node, timestamp)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# On PostgreSQL the raw tables are partitioned by day (``app.usage.partitions``) so that
# retention drops whole partitions; SQLite ignores this.
PARTITIONED = {"postgresql_partition_by": "RANGE (ts)"}


class GpuSample(Base):
    __tablename__ = "gpu_samples"
    __table_args__ = PARTITIONED

    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    utilization_gpu: Mapped[float | None] = mapped_column(Float)
    utilization_memory: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    power_watts: Mapped[float | None] = mapped_column(Float)
    power_limit_watts: Mapped[float | None] = mapped_column(Float)
    energy_mj: Mapped[int | None] = mapped_column(BigInteger)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    sm_clock_mhz: Mapped[int | None] = mapped_column(Integer)
    mem_clock_mhz: Mapped[int | None] = mapped_column(Integer)
    pcie_rx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    pcie_tx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    clock_event_reasons: Mapped[int | None] = mapped_column(BigInteger)
    ecc_uncorrected: Mapped[int | None] = mapped_column(BigInteger)
    xid_errors: Mapped[int | None] = mapped_column(Integer)
    process_count: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    # Who holds the GPU (a Slurm job, a Kubernetes pod), whether or not a process runs on it.
    alloc_job_id: Mapped[str | None] = mapped_column(String(100))
    alloc_user: Mapped[str | None] = mapped_column(String(100))
    alloc_account: Mapped[str | None] = mapped_column(String(100))
    alloc_pod: Mapped[str | None] = mapped_column(String(255))
    alloc_namespace: Mapped[str | None] = mapped_column(String(255))
    alloc_container: Mapped[str | None] = mapped_column(String(255))
    memory_reserved_bytes: Mapped[int | None] = mapped_column(BigInteger)  # not in memory_used


class GpuProcessSample(Base):
    __tablename__ = "gpu_process_samples"
    __table_args__ = PARTITIONED

    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    pid: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # any 32-bit unsigned pid
    used_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sm_utilization: Mapped[float | None] = mapped_column(Float)
    user: Mapped[str | None] = mapped_column(String(100))
    pod_uid: Mapped[str | None] = mapped_column(String(64))
    pod_name: Mapped[str | None] = mapped_column(String(255))
    namespace: Mapped[str | None] = mapped_column(String(255))
    container_id: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(100))
    account: Mapped[str | None] = mapped_column(String(100))
    gpu_instance_id: Mapped[int | None] = mapped_column(Integer)  # MIG: where it runs
    compute_instance_id: Mapped[int | None] = mapped_column(Integer)


class HostSample(Base):
    __tablename__ = "host_samples"
    __table_args__ = PARTITIONED

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    cpu_busy_ratio: Mapped[float | None] = mapped_column(Float)
    iowait_ratio: Mapped[float | None] = mapped_column(Float)
    io_pressure_some_ratio: Mapped[float | None] = mapped_column(Float)
    io_pressure_full_ratio: Mapped[float | None] = mapped_column(Float)
    disk_read_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    disk_write_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    net_rx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    net_tx_bytes_per_s: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
