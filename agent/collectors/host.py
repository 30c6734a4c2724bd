"""Host readings from a ``/proc`` tree: CPU busy and I/O wait, I/O pressure, memory.

Every value is a ratio or rate over the interval since the previous ``collect()``; the first
call only primes the counters. Tests point ``proc_root`` at fixture trees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# /proc/stat cpu columns: user nice system idle iowait irq softirq steal (guest is in user).
_IDLE, _IOWAIT = 3, 4


@dataclass
class _CpuTimes:
    total: int
    idle: int
    iowait: int


def read_cpu_times(proc_root: Path) -> _CpuTimes | None:
    try:
        first = (proc_root / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:9]]
    return _CpuTimes(total=sum(values), idle=values[_IDLE], iowait=values[_IOWAIT])


def read_pressure_total_us(proc_root: Path, resource: str = "io") -> tuple[int, int] | None:
    """(some, full) stall totals in microseconds, or None on kernels without PSI."""
    try:
        lines = (proc_root / "pressure" / resource).read_text().splitlines()
    except OSError:
        return None
    totals: dict[str, int] = {}
    for line in lines:
        kind, *fields = line.split()
        for f in fields:
            name, _, value = f.partition("=")
            if name == "total":
                totals[kind] = int(value)
    if "some" not in totals:
        return None
    return totals["some"], totals.get("full", 0)


def read_meminfo(proc_root: Path) -> tuple[int, int] | None:
    """(used, total) bytes, where used = MemTotal - MemAvailable."""
    try:
        text = (proc_root / "meminfo").read_text()
    except OSError:
        return None
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            kib[name] = int(parts[0])
    if "MemTotal" not in kib or "MemAvailable" not in kib:
        return None
    return (kib["MemTotal"] - kib["MemAvailable"]) * 1024, kib["MemTotal"] * 1024


def _delta(now: int, before: int) -> int | None:
    # A counter that went backwards was reset (reboot, container restart): skip that interval.
    return now - before if now >= before else None


class HostCollector:
    """Reads host figures from ``proc_root``; returns one host sample per ``collect()``."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self.proc_root = proc_root
        self._cpu: _CpuTimes | None = None
        self._psi: tuple[int, int] | None = None
        self._mono: float | None = None

    def collect(self, ts: datetime, monotonic: float) -> dict[str, Any]:
        sample: dict[str, Any] = {"ts": ts.isoformat()}
        cpu = read_cpu_times(self.proc_root)
        if cpu is not None and self._cpu is not None:
            total = _delta(cpu.total, self._cpu.total)
            if total:
                idle = cpu.idle - self._cpu.idle
                iowait = cpu.iowait - self._cpu.iowait
                sample["cpu_busy_ratio"] = _ratio(1 - (idle + iowait) / total)
                sample["iowait_ratio"] = _ratio(iowait / total)
        psi = read_pressure_total_us(self.proc_root)
        if psi is not None and self._psi is not None and self._mono is not None:
            elapsed_us = (monotonic - self._mono) * 1_000_000
            some, full = _delta(psi[0], self._psi[0]), _delta(psi[1], self._psi[1])
            if elapsed_us > 0 and some is not None and full is not None:
                sample["io_pressure_some_ratio"] = _ratio(some / elapsed_us)
                sample["io_pressure_full_ratio"] = _ratio(full / elapsed_us)
        mem = read_meminfo(self.proc_root)
        if mem is not None:
            sample["memory_used_bytes"], sample["memory_total_bytes"] = mem
        self._cpu, self._psi, self._mono = cpu, psi, monotonic
        return sample


def _ratio(value: float) -> float:
    return round(max(0.0, min(1.0, value)), 6)
