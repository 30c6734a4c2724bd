"""What the usage domain hands to cost and detectors: one GPU's hour, with who held it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class OwnerShare:
    """Seconds of one GPU-hour during which a process of this owner held the GPU."""

    seconds: float
    user: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    job_id: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class GpuHour:
    """One GPU during one UTC hour, from the hourly rollup."""

    gpu_id: int
    node_id: int
    hour: datetime  # start of the hour, UTC
    observed_seconds: float  # time covered by samples
    # Of which samples with a utilization reading (idle + low + busy seconds); a MIG-enabled
    # GPU, or a driver without the counter, reports none: its time is unmeasured, not idle.
    measured_seconds: float
    utilization_mean: float | None  # percent, over the measured seconds
    idle_seconds: float  # below the idle threshold
    energy_joules: float | None
    owners: list[OwnerShare] = field(default_factory=list)
