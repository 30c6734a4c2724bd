"""Host readings from a ``/proc`` tree: CPU busy and I/O wait, I/O pressure, disk and network
bytes, memory.

Every value is a ratio or rate over the interval since the previous ``collect()``; the first
call only primes the counters. A counter that goes backwards is taken as a 32-bit wrap when it
was near 2**32, else as a reset (that interval is skipped). Tests point ``proc_root`` at fixture
trees.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
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


SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size
# Devices stacked on others (device mapper, md RAID, loop, zram) would count the same bytes twice.
_VIRTUAL_DISK = re.compile(r"^(loop|ram|zram|dm-|md|sr|fd)")
# veth pairs carry container traffic that the physical interface counts as well.
_SKIP_NET = re.compile(r"^(lo|veth)")


def read_diskstats(proc_root: Path) -> dict[str, tuple[int, int]] | None:
    """Whole disks' (read, written) bytes; partitions are left out when their disk is listed."""
    try:
        lines = (proc_root / "diskstats").read_text().splitlines()
    except OSError:
        return None
    devices: dict[str, tuple[int, int]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 10 or _VIRTUAL_DISK.match(parts[2]):
            continue
        devices[parts[2]] = (int(parts[5]) * SECTOR_BYTES, int(parts[9]) * SECTOR_BYTES)
    return {name: v for name, v in devices.items() if _parent_disk(name, devices) is None}


def _parent_disk(name: str, devices: dict[str, tuple[int, int]]) -> str | None:
    # sda1 → sda, nvme0n1p2 → nvme0n1, mmcblk0p1 → mmcblk0
    m = re.match(r"^(.*?\d)p\d+$", name) or re.match(r"^(\D+)\d+$", name)
    if m and m.group(1) in devices and m.group(1) != name:
        return m.group(1)
    return None


def read_net_dev(proc_root: Path) -> dict[str, tuple[int, int]] | None:
    """(received, sent) bytes per interface, loopback and veth left out."""
    try:
        lines = (proc_root / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return None
    interfaces: dict[str, tuple[int, int]] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        parts = rest.split()
        if len(parts) < 9 or _SKIP_NET.match(name):
            continue
        interfaces[name] = (int(parts[0]), int(parts[8]))
    return interfaces


def _delta(now: int, before: int) -> int | None:
    if now >= before:
        return now - before
    # A 32-bit counter (32-bit kernels, some drivers) that wrapped past 2**32.
    if 2**31 <= before < 2**32:
        return now + 2**32 - before
    # Otherwise the counter was reset (reboot, device re-plugged): skip that interval.
    return None


def _rates(
    now: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]] | None, seconds: float
) -> dict[str, tuple[float, float]]:
    rates: dict[str, tuple[float, float]] = {}
    if before is None or seconds <= 0:
        return rates
    for name, (a, b) in now.items():
        if name not in before:
            continue
        da, db = _delta(a, before[name][0]), _delta(b, before[name][1])
        if da is not None and db is not None:
            rates[name] = (da / seconds, db / seconds)
    return rates


class HostCollector:
    """Reads host figures from ``proc_root``; returns one host sample per ``collect()``."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self.proc_root = proc_root
        self._cpu: _CpuTimes | None = None
        self._psi: tuple[int, int] | None = None
        self._disks: dict[str, tuple[int, int]] | None = None
        self._nets: dict[str, tuple[int, int]] | None = None
        self._mono: float | None = None
        # Per device and interface (read, write) / (rx, tx) bytes per second, for /metrics.
        self.disk_rates: dict[str, tuple[float, float]] = {}
        self.net_rates: dict[str, tuple[float, float]] = {}

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
        seconds = 0.0 if self._mono is None else monotonic - self._mono
        disks = read_diskstats(self.proc_root)
        if disks is not None:
            self.disk_rates = _rates(disks, self._disks, seconds)
            if self.disk_rates:
                sample["disk_read_bytes_per_s"] = _sum(r for r, _ in self.disk_rates.values())
                sample["disk_write_bytes_per_s"] = _sum(w for _, w in self.disk_rates.values())
        nets = read_net_dev(self.proc_root)
        if nets is not None:
            self.net_rates = _rates(nets, self._nets, seconds)
            if self.net_rates:
                sample["net_rx_bytes_per_s"] = _sum(r for r, _ in self.net_rates.values())
                sample["net_tx_bytes_per_s"] = _sum(t for _, t in self.net_rates.values())
        mem = read_meminfo(self.proc_root)
        if mem is not None:
            sample["memory_used_bytes"], sample["memory_total_bytes"] = mem
        self._cpu, self._psi, self._mono = cpu, psi, monotonic
        self._disks, self._nets = disks, nets
        return sample


def _sum(values: Iterable[float]) -> float:
    return round(sum(values), 3)


def _ratio(value: float) -> float:
    return round(max(0.0, min(1.0, value)), 6)
