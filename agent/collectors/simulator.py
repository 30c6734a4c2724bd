"""Simulated GPU nodes with named, seeded scenarios (demos, tests, benchmarks).

A scenario moves a ``SimGpu`` of the simulated driver library (``nvml_driver.py``) as time goes
on, and ``SimulatedNvml`` answers pynvml's functions from the real nvidia-ml-py binding bound to
that driver, so the collector runs over the same binding code as on a real node.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from agent.collectors.nvml_driver import (
    MIB,
    PCIE_DELAY_SECONDS,
    SimGpu,
    SimProcess,
    SimulatedDriver,
    load_binding,
)

# Each scenario shapes a GPU's utilization, memory, power and clocks; values get seeded noise.
SCENARIOS = (
    "training",
    "allocated_idle",
    "reserved",
    "unallocated",
    "data_starved",
    "energy_waste",
    "throttling",
    "xid",
)
# "reserved": a job holds the GPU and runs nothing on it (the costliest waste, no process to see).
NO_PROCESS = ("reserved", "unallocated")
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
RESERVED_BYTES = 512 * MIB  # what the driver and firmware hold on every GPU
PROCESS_SAMPLES_KEPT = 8
STEP_SECONDS = 0.1  # the scenarios move on at most this often, not at every NVML call


@dataclass(frozen=True)
class Owner:
    user: str
    job_id: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    account: str | None = None


@dataclass
class _Scenario:
    """What drives one simulated GPU: its scenario, noise and counters."""

    gpu: SimGpu
    scenario: str
    rng: random.Random
    pid: int | None
    energy_mj: float = 0.0
    last_t: float | None = None
    next_xid_t: float | None = None


class SimulatedNvml:
    """A fleet node's GPUs, each following a scenario; ``clock`` drives time (epoch seconds).

    Attribute access falls through to the binding, so ``NvmlCollector(SimulatedNvml(...))``
    calls nvidia-ml-py's own functions over the simulated driver.
    """

    def __init__(
        self,
        scenarios: list[str],
        *,
        seed: int = 0,
        node: str = "sim",
        model: str = "NVIDIA H100 80GB HBM3",
        owner: Owner | None = None,
        clock: Callable[[], float] = time.time,
        pcie_delay_s: float = PCIE_DELAY_SECONDS,
        pids: list[int] | None = None,
    ) -> None:
        """``pids``: the busy GPUs' process ids (default: made-up ones); ``pcie_delay_s``: how
        long each PCIe throughput call blocks in the driver, as on real GPUs."""
        unknown = sorted(set(scenarios) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
        self.clock = clock
        self.model = model
        self.owner = owner or Owner(user="sim")
        total, tdp, _ = MODELS[model]
        self.scenarios = [
            _Scenario(
                gpu=SimGpu(
                    uuid=f"GPU-{_uuid_part(node, seed, i)}",
                    name=model,
                    pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
                    memory_total_bytes=total,
                    memory_reserved_bytes=RESERVED_BYTES,
                    power_limit_mw=round(tdp * 1000),
                ),
                scenario=scenario,
                rng=random.Random(f"{seed}-{node}-{i}"),
                pid=None if scenario in NO_PROCESS else _pid(pids, seed, i),
            )
            for i, scenario in enumerate(scenarios)
        ]
        self._lock = threading.Lock()
        self._now: float | None = None
        self.driver = SimulatedDriver(
            [s.gpu for s in self.scenarios],
            version="550.54.15-sim",
            pcie_delay_s=pcie_delay_s,
            before_call=self._advance,
        )
        self.binding: ModuleType = load_binding(self.driver)

    def __getattr__(self, name: str) -> Any:
        if name == "binding":  # not set yet: no recursion
            raise AttributeError(name)
        value = getattr(self.binding, name)
        setattr(self, name, value)  # found directly from now on
        return value

    # -- simulation -------------------------------------------------------------------------
    def continue_energy(self, uuid: str, energy_mj: int, *, at: float) -> None:
        """Go on from a counter reading taken at ``at`` (epoch seconds) instead of from 0."""
        with self._lock:
            for s in self.scenarios:
                if s.gpu.uuid == uuid:
                    s.energy_mj, s.last_t = float(energy_mj), at
                    s.gpu.energy_mj = int(energy_mj)

    def owner_of(self, pid: int) -> Owner | None:
        """The simulated owner of a simulated process."""
        return self.owner if any(s.pid == pid for s in self.scenarios) else None

    def holders(self) -> dict[str, dict[str, str]]:
        """Who holds each GPU, by UUID: the node's job on every GPU but the unallocated ones."""
        o = self.owner
        holder = {"user": o.user, "job_id": o.job_id, "namespace": o.namespace,
                  "pod": o.pod_name, "account": o.account}  # fmt: skip
        held = {k: v for k, v in holder.items() if v}
        return {s.gpu.uuid: dict(held) for s in self.scenarios if s.scenario != "unallocated"}

    def host_iowait(self) -> float:
        """The node's I/O wait ratio: high when any GPU is starved for data."""
        starved = any(s.scenario == "data_starved" for s in self.scenarios)
        rng = self.scenarios[0].rng if self.scenarios else random.Random(0)
        return min(1.0, (0.35 if starved else 0.02) + rng.uniform(0, 0.05))

    def _advance(self) -> None:
        """Move every GPU to ``clock()``; the driver calls this before each symbol."""
        now = self.clock()
        if self._now is not None and abs(now - self._now) < STEP_SECONDS:
            return
        with self._lock:
            if self._now is not None and abs(now - self._now) < STEP_SECONDS:
                return
            self._now = now
            for s in self.scenarios:
                self._step(s, now)

    def _step(self, s: _Scenario, now: float) -> None:
        g, (total, tdp, max_clock) = s.gpu, MODELS[self.model]
        util = self._utilization(s, now)
        power = self._power_watts(s, util)
        if s.last_t is not None and now > s.last_t:
            # Integrate power over the elapsed time so the counter behaves like the real one.
            s.energy_mj += power * (now - s.last_t) * 1000
        s.last_t = now
        busy = s.scenario in BUSY_SCENARIOS
        used = int(total * _MEMORY_FRACTION.get(s.scenario, 0.0))
        g.utilization_gpu, g.utilization_memory = round(util), round(util * 0.6)
        g.memory_used_bytes = used
        g.power_mw, g.energy_mj = round(power * 1000), int(s.energy_mj)
        g.temperature_c = 89 if s.scenario == "throttling" else round(32 + 45 * power / tdp)
        if s.scenario == "throttling":
            g.sm_clock_mhz, g.clock_event_reasons = int(max_clock * 0.55), THROTTLE_REASONS
        else:
            g.sm_clock_mhz = max_clock if busy else 345
            g.clock_event_reasons = 0 if busy else GPU_IDLE_REASON
        # KB/s. Starved GPUs wait on host-to-device copies.
        rx = 2_000_000 if s.scenario == "data_starved" else 20_000 * util
        g.pcie_rx_kb, g.pcie_tx_kb = round(rx), round(rx / 8)
        g.ecc_uncorrected = 2 if s.scenario == "xid" else 0
        if s.pid is not None:
            g.processes = [SimProcess(pid=s.pid, used_memory_bytes=used)]
            now_us = int(now * 1_000_000)
            g.process_samples = [*g.process_samples, (s.pid, now_us, round(util))][
                -PROCESS_SAMPLES_KEPT:
            ]
        if s.scenario == "xid":
            if s.next_xid_t is None:
                s.next_xid_t = now + s.rng.uniform(0, XID_PERIOD_SECONDS)
            if now >= s.next_xid_t:
                s.next_xid_t = now + s.rng.uniform(0.5, 1.5) * XID_PERIOD_SECONDS
                self.driver.raise_event(self.scenarios.index(s), s.rng.choice(XID_CODES))

    def _utilization(self, s: _Scenario, t: float) -> float:
        noise = s.rng.uniform(-3, 3)
        if s.scenario in ("training", "xid"):
            return _clamp(95 + noise)
        if s.scenario == "throttling":
            return _clamp(88 + noise)
        if s.scenario == "data_starved":
            # Saw-tooth between about 20 and 50 %: the GPU races through a batch, then waits.
            phase = (t % 30) / 30
            return _clamp(20 + 30 * phase + noise)
        return 0.0

    def _power_watts(self, s: _Scenario, util: float) -> float:
        tdp = MODELS[self.model][1]
        if s.scenario == "energy_waste":
            return tdp * 0.55
        if s.scenario == "throttling":
            return tdp * 0.98 + s.rng.uniform(-2, 2)
        return tdp * (IDLE_POWER_FRACTION + 0.85 * util / 100) + s.rng.uniform(-2, 2)


_MEMORY_FRACTION = {
    "training": 0.85,
    "allocated_idle": 0.4,
    "data_starved": 0.6,
    "energy_waste": 0.3,
    "throttling": 0.8,
    "xid": 0.7,
}


def _pid(pids: list[int] | None, seed: int, index: int) -> int:
    if pids:
        return pids[index % len(pids)]
    return 20_000 + 100 * seed + index  # below 32768, the smallest default pid_max


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


class SimulatedAllocations:
    """The allocation source of a simulated node (``AllocationCollector``'s ``collect``)."""

    def __init__(self, sim: SimulatedNvml) -> None:
        self.sim = sim

    def collect(self, monotonic: float) -> dict[str, dict[str, str]]:
        return self.sim.holders()
