"""A simulated NVML with named, seeded scenarios, shaped like ``pynvml`` so that the real
collector code runs unchanged on top of it (demos, tests, benchmarks)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# What a scenario's GPU looks like: (utilization %, memory used fraction, power fraction of TDP,
# SM clock fraction, has a process, iowait ratio). Values get seeded noise on top.
SCENARIOS = ("training", "allocated_idle", "unallocated", "data_starved", "energy_waste")

MODELS = {
    "NVIDIA H100 80GB HBM3": (80 * 1024**3, 700.0, 1980),
    "NVIDIA A100-SXM4-80GB": (80 * 1024**3, 400.0, 1410),
}
IDLE_POWER_FRACTION = 0.1


class NVMLError(Exception):
    """Mirror of ``pynvml.NVMLError``."""


class NVMLError_NotSupported(NVMLError):  # noqa: N801  (pynvml's names)
    pass


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    pass


@dataclass
class _Util:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int  # noqa: N815  (pynvml's field name)


@dataclass
class SimGpu:
    index: int
    uuid: str
    model: str
    scenario: str
    rng: random.Random
    energy_mj: float = 0.0
    last_t: float | None = None
    pid: int | None = None
    unsupported: set[str] = field(default_factory=set)
    lost: bool = False


@dataclass(frozen=True)
class Owner:
    user: str
    job_id: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    account: str | None = None


class SimulatedNvml:
    """A fleet node's GPUs, each following a scenario; ``clock`` drives time (epoch seconds)."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(
        self,
        scenarios: list[str],
        *,
        seed: int = 0,
        node: str = "sim",
        model: str = "NVIDIA H100 80GB HBM3",
        owner: Owner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = sorted(set(scenarios) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
        self.clock = clock
        self.owner = owner or Owner(user="sim")
        self.gpus = [
            SimGpu(
                index=i,
                uuid=f"GPU-{_uuid_part(node, seed, i)}",
                model=model,
                scenario=scenario,
                rng=random.Random(f"{seed}-{node}-{i}"),
                pid=None if scenario == "unallocated" else 40_000 + 100 * seed + i,
            )
            for i, scenario in enumerate(scenarios)
        ]
        self.initialised = False

    # -- pynvml API -------------------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802
        self.initialised = True

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimGpu:  # noqa: N802
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, h: SimGpu) -> str:  # noqa: N802
        self._check(h, "uuid")
        return h.uuid

    def nvmlDeviceGetName(self, h: SimGpu) -> str:  # noqa: N802
        self._check(h, "name")
        return h.model

    def nvmlDeviceGetUtilizationRates(self, h: SimGpu) -> _Util:  # noqa: N802
        self._check(h, "utilization")
        util = self._utilization(h, self.clock())
        return _Util(gpu=round(util), memory=round(util * 0.6))

    def nvmlDeviceGetMemoryInfo(self, h: SimGpu) -> _Memory:  # noqa: N802
        self._check(h, "memory")
        total = MODELS[h.model][0]
        used = self._memory_used(h)
        return _Memory(total=total, used=used, free=total - used)

    def nvmlDeviceGetPowerUsage(self, h: SimGpu) -> int:  # noqa: N802
        self._check(h, "power")
        return round(self._power_watts(h, self.clock()) * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: SimGpu) -> int:  # noqa: N802
        self._check(h, "power_limit")
        return round(MODELS[h.model][1] * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: SimGpu) -> int:  # noqa: N802
        self._check(h, "energy")
        now = self.clock()
        if h.last_t is not None and now > h.last_t:
            # Integrate power over the elapsed time so the counter behaves like the real one.
            h.energy_mj += self._power_watts(h, now) * (now - h.last_t) * 1000
        h.last_t = now
        return int(h.energy_mj)

    def nvmlDeviceGetTemperature(self, h: SimGpu, _sensor: int) -> int:  # noqa: N802
        self._check(h, "temperature")
        return round(32 + 45 * self._power_watts(h, self.clock()) / MODELS[h.model][1])

    def nvmlDeviceGetClockInfo(self, h: SimGpu, clock_type: int) -> int:  # noqa: N802
        self._check(h, "clock")
        if clock_type == self.NVML_CLOCK_MEM:
            return 2619
        busy = h.scenario in ("training", "data_starved", "energy_waste")
        return MODELS[h.model][2] if busy else 345

    def nvmlDeviceGetComputeRunningProcesses(self, h: SimGpu) -> list[_Process]:  # noqa: N802
        self._check(h, "processes")
        return [] if h.pid is None else [_Process(pid=h.pid, usedGpuMemory=self._memory_used(h))]

    # -- simulation -------------------------------------------------------------------------
    def owner_of(self, pid: int) -> Owner | None:
        """The simulated owner of a simulated process."""
        return self.owner if any(g.pid == pid for g in self.gpus) else None

    def host_iowait(self) -> float:
        """The node's I/O wait ratio: high when any GPU is starved for data."""
        starved = any(g.scenario == "data_starved" for g in self.gpus)
        rng = self.gpus[0].rng if self.gpus else random.Random(0)
        return min(1.0, (0.35 if starved else 0.02) + rng.uniform(0, 0.05))

    def _check(self, h: SimGpu, fn: str) -> None:
        if h.lost:
            raise NVMLError_GpuIsLost("GPU is lost")
        if fn in h.unsupported:
            raise NVMLError_NotSupported("Not Supported")

    def _utilization(self, h: SimGpu, t: float) -> float:
        noise = h.rng.uniform(-3, 3)
        if h.scenario == "training":
            return _clamp(95 + noise)
        if h.scenario == "data_starved":
            # Saw-tooth between about 20 and 50 %: the GPU races through a batch, then waits.
            phase = (t % 30) / 30
            return _clamp(20 + 30 * phase + noise)
        return 0.0

    def _memory_used(self, h: SimGpu) -> int:
        total = MODELS[h.model][0]
        fraction = {
            "training": 0.85,
            "allocated_idle": 0.4,
            "data_starved": 0.6,
            "energy_waste": 0.3,
        }
        return int(total * fraction.get(h.scenario, 0.0)) + 512 * 1024**2

    def _power_watts(self, h: SimGpu, t: float) -> float:
        tdp = MODELS[h.model][1]
        if h.scenario == "energy_waste":
            return tdp * 0.55
        util = self._utilization(h, t)
        return tdp * (IDLE_POWER_FRACTION + 0.85 * util / 100) + h.rng.uniform(-2, 2)


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))


def _uuid_part(node: str, seed: int, index: int) -> str:
    digest = random.Random(f"{node}/{seed}/{index}").getrandbits(128)
    h = f"{digest:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SimulatedHost:
    """Host readings that match a simulated node: starved nodes wait on disk."""

    def __init__(self, sim: SimulatedNvml) -> None:
        self.sim = sim

    def collect(self, ts: datetime, _monotonic: float) -> dict[str, Any]:
        iowait = self.sim.host_iowait()
        starved = iowait > 0.2
        return {
            "ts": ts.isoformat(),
            "cpu_busy_ratio": round(0.25 + 0.1 * iowait, 4),
            "iowait_ratio": round(iowait, 4),
            "io_pressure_some_ratio": round(min(1.0, iowait * 1.5), 4),
            "io_pressure_full_ratio": round(iowait * 0.8, 4),
            "disk_read_bytes_per_s": 2.0e9 if starved else 5.0e7,
            "memory_used_bytes": 200 * 1024**3,
            "memory_total_bytes": 1024 * 1024**3,
        }

    def attribute(self, pid: int) -> dict[str, Any]:
        owner = self.sim.owner_of(pid)
        if owner is None:
            return {}
        return {k: v for k, v in vars(owner).items() if v is not None}
