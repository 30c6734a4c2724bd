"""A simulated NVML with named, seeded scenarios, shaped like ``pynvml`` so that the real
collector code runs unchanged on top of it (demos, tests, benchmarks)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Each scenario shapes a GPU's utilization, memory, power and clocks; values get seeded noise.
SCENARIOS = (
    "training",
    "allocated_idle",
    "unallocated",
    "data_starved",
    "energy_waste",
    "throttling",
    "xid",
)
BUSY_SCENARIOS = ("training", "data_starved", "energy_waste", "throttling", "xid")
# Clock-event reason bits (nvml.h): SW power cap, HW slowdown, SW and HW thermal slowdown.
THROTTLE_REASONS = 0x4 | 0x8 | 0x20 | 0x40
GPU_IDLE_REASON = 0x1
XID_PERIOD_SECONDS = 60.0
XID_CODES = (13, 31, 43, 48, 79)

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


class NVMLError_NotFound(NVMLError):  # noqa: N801
    pass


class NVMLError_Timeout(NVMLError):  # noqa: N801
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
class _ProcessUtil:
    pid: int
    timeStamp: int  # noqa: N815  (pynvml's field names)
    smUtil: int  # noqa: N815
    memUtil: int  # noqa: N815


@dataclass
class _Event:
    device: Any
    eventType: int  # noqa: N815  (pynvml's field names)
    eventData: int  # noqa: N815


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
    next_xid_t: float | None = None


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
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_Timeout = NVMLError_Timeout
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
        self._events: list[_Event] = []

    # -- pynvml API -------------------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802
        self.initialised = True

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15-sim"

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
        if h.scenario == "throttling":
            return 89
        return round(32 + 45 * self._power_watts(h, self.clock()) / MODELS[h.model][1])

    def nvmlDeviceGetClockInfo(self, h: SimGpu, clock_type: int) -> int:  # noqa: N802
        self._check(h, "clock")
        if clock_type == self.NVML_CLOCK_MEM:
            return 2619
        if h.scenario == "throttling":
            return int(MODELS[h.model][2] * 0.55)
        return MODELS[h.model][2] if h.scenario in BUSY_SCENARIOS else 345

    def nvmlDeviceGetComputeRunningProcesses(self, h: SimGpu) -> list[_Process]:  # noqa: N802
        self._check(h, "processes")
        return [] if h.pid is None else [_Process(pid=h.pid, usedGpuMemory=self._memory_used(h))]

    def nvmlDeviceGetProcessUtilization(  # noqa: N802
        self, h: SimGpu, last_seen_us: int
    ) -> list[_ProcessUtil]:
        self._check(h, "process_utilization")
        now = self.clock()
        now_us = int(now * 1_000_000)
        if h.pid is None or now_us <= last_seen_us:
            raise NVMLError_NotFound("Not Found")
        util = round(self._utilization(h, now))
        return [_ProcessUtil(pid=h.pid, timeStamp=now_us, smUtil=util, memUtil=round(util * 0.6))]

    def nvmlDeviceGetPcieThroughput(self, h: SimGpu, counter: int) -> int:  # noqa: N802
        """KB/s; counter 0 is TX, 1 is RX. Starved GPUs wait on host-to-device copies."""
        self._check(h, "pcie")
        util = self._utilization(h, self.clock())
        rx = 2_000_000 if h.scenario == "data_starved" else 20_000 * util
        return round(rx if counter == 1 else rx / 8)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: SimGpu) -> int:  # noqa: N802
        self._check(h, "clock_event_reasons")
        if h.scenario == "throttling":
            return THROTTLE_REASONS
        return 0 if h.scenario in BUSY_SCENARIOS else GPU_IDLE_REASON

    def nvmlDeviceGetTotalEccErrors(self, h: SimGpu, _error: int, _counter: int) -> int:  # noqa: N802
        self._check(h, "ecc")
        return 2 if h.scenario == "xid" else 0

    def nvmlDeviceGetMigMode(self, h: SimGpu) -> list[int]:  # noqa: N802
        self._check(h, "mig")
        return [0, 0]

    def nvmlEventSetCreate(self) -> list[_Event]:  # noqa: N802
        return self._events

    def nvmlDeviceGetSupportedEventTypes(self, h: SimGpu) -> int:  # noqa: N802
        self._check(h, "events")
        return 0x8 | 0x2  # XID critical errors, double-bit ECC

    def nvmlDeviceRegisterEvents(  # noqa: N802
        self, h: SimGpu, _types: int, _event_set: list[_Event]
    ) -> None:
        self._check(h, "events")

    def nvmlEventSetWait(self, _event_set: list[_Event], _timeout_ms: int) -> _Event:  # noqa: N802
        now = self.clock()
        for g in self.gpus:
            if g.scenario != "xid":
                continue
            if g.next_xid_t is None:
                g.next_xid_t = now + g.rng.uniform(0, XID_PERIOD_SECONDS)
            if now >= g.next_xid_t:
                g.next_xid_t = now + g.rng.uniform(0.5, 1.5) * XID_PERIOD_SECONDS
                self._events.append(_Event(g, 0x8, g.rng.choice(XID_CODES)))
        if not self._events:
            raise NVMLError_Timeout("Timeout")
        return self._events.pop(0)

    # -- simulation -------------------------------------------------------------------------
    def continue_energy(self, uuid: str, energy_mj: int, *, at: float) -> None:
        """Go on from a counter reading taken at ``at`` (epoch seconds) instead of from 0."""
        for g in self.gpus:
            if g.uuid == uuid:
                g.energy_mj, g.last_t = float(energy_mj), at

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
        if h.scenario in ("training", "xid"):
            return _clamp(95 + noise)
        if h.scenario == "throttling":
            return _clamp(88 + noise)
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
            "throttling": 0.8,
            "xid": 0.7,
        }
        return int(total * fraction.get(h.scenario, 0.0)) + 512 * 1024**2

    def _power_watts(self, h: SimGpu, t: float) -> float:
        tdp = MODELS[h.model][1]
        if h.scenario == "energy_waste":
            return tdp * 0.55
        if h.scenario == "throttling":
            return tdp * 0.98 + h.rng.uniform(-2, 2)
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
            # Starved nodes read at the disks' ceiling.
            "disk_read_bytes_per_s": 2.0e9 if starved else 5.0e7,
            "disk_write_bytes_per_s": 2.0e7,
            "net_rx_bytes_per_s": 1.2e9 if starved else 1.0e8,
            "net_tx_bytes_per_s": 5.0e7,
            "memory_used_bytes": 200 * 1024**3,
            "memory_total_bytes": 1024 * 1024**3,
        }

    def attribute(self, pid: int) -> dict[str, Any]:
        owner = self.sim.owner_of(pid)
        if owner is None:
            return {}
        return {k: v for k, v in vars(owner).items() if v is not None}
