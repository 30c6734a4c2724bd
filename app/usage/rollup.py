"""Pure rollup arithmetic: raw samples → minute buckets → hour buckets. No database here.

Each sample stands for the time since the previous one (``max_gap_seconds`` at most); a sample
after a longer gap, or the first one, stands for ``DEFAULT_SAMPLE_SECONDS``.
Energy comes from the cumulative counter's delta, but only while that delta is something the
GPU could have drawn: at most its power limit (``power_limit_watts`` of the sample, else
``UNKNOWN_LIMIT_WATTS``) times the elapsed seconds times ``ENERGY_TOLERANCE``. A delta outside
[0, bound] is a reset (the counter went down: driver reload, reboot) or a glitch (a counter
jump, or samples of two histories interleaved, each with its own counter); then, as after a
gap or without a counter, energy is power * the sample's duration, itself capped by the gap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.kit.timebuckets import floor

DEFAULT_SAMPLE_SECONDS = 10.0
# A counter delta may exceed power limit x seconds a little: the counter and the timestamp are
# read at slightly different instants, and boost can briefly overshoot the enforced limit.
ENERGY_TOLERANCE = 1.1
# The bound when a sample carries no power limit: above any single GPU's board power today
# (H200 SXM 700 W, B200 1,000 W, GB200 1,200 W), far below the kilowatts of a bogus delta.
UNKNOWN_LIMIT_WATTS = 1500.0

# (user, namespace, pod_name, job_id, account)
OwnerKey = tuple[str | None, str | None, str | None, str | None, str | None]
OWNER_FIELDS = ("user", "namespace", "pod_name", "job_id", "account")


@dataclass(frozen=True, slots=True)
class GpuPoint:
    """One raw GPU sample, as the rollup needs it."""

    ts: datetime
    utilization: float | None = None
    memory_used_bytes: int | None = None
    power_watts: float | None = None
    energy_mj: int | None = None
    owners: tuple[OwnerKey, ...] = ()
    power_limit_watts: float | None = None


@dataclass(frozen=True, slots=True)
class HostPoint:
    ts: datetime
    cpu_busy: float | None = None
    iowait: float | None = None
    io_pressure_some: float | None = None
    io_pressure_full: float | None = None
    disk_read_bytes_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    idle_percent: float = 5.0
    low_percent: float = 30.0
    max_gap_seconds: float = 60.0


class _Mean:
    __slots__ = ("total", "weight")

    def __init__(self) -> None:
        self.total = 0.0
        self.weight = 0.0

    def add(self, value: float | None, weight: float) -> None:
        if value is not None:
            self.total += value * weight
            self.weight += weight

    @property
    def value(self) -> float | None:
        return self.total / self.weight if self.weight > 0 else None


def _max(current: Any, value: Any) -> Any:
    if value is None:
        return current
    return value if current is None or value > current else current


@dataclass(slots=True)
class GpuBucket:
    """One GPU's minute or hour: the columns of ``GpuMinuteRollup`` / ``GpuHourRollup``."""

    bucket: datetime
    samples: int = 0
    observed_seconds: float = 0.0
    utilization_mean: float | None = None
    utilization_max: float | None = None
    memory_used_max_bytes: int | None = None
    power_mean_watts: float | None = None
    energy_joules: float | None = None
    idle_seconds: float = 0.0
    low_util_seconds: float = 0.0
    busy_seconds: float = 0.0
    owners: dict[OwnerKey, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The rollup row (owners as a JSON list, longest first)."""
        return {
            "bucket": self.bucket,
            "samples": self.samples,
            "observed_seconds": self.observed_seconds,
            "utilization_mean": self.utilization_mean,
            "utilization_max": self.utilization_max,
            "memory_used_max_bytes": self.memory_used_max_bytes,
            "power_mean_watts": self.power_mean_watts,
            "energy_joules": self.energy_joules,
            "idle_seconds": self.idle_seconds,
            "low_util_seconds": self.low_util_seconds,
            "busy_seconds": self.busy_seconds,
            "owners": owners_to_json(self.owners) or None,
        }

    @classmethod
    def from_row(cls, row: Any) -> GpuBucket:
        fields = {k: getattr(row, k) for k in cls.__slots__ if k != "owners"}
        return cls(**fields, owners=owners_from_json(row.owners))


def owners_to_json(owners: dict[OwnerKey, float]) -> list[dict[str, Any]]:
    ordered = sorted(owners.items(), key=lambda kv: (-kv[1], [v or "" for v in kv[0]]))
    return [
        {**{f: v for f, v in zip(OWNER_FIELDS, key, strict=True) if v is not None}, "seconds": s}
        for key, s in ordered
    ]


def owners_from_json(items: list[dict[str, Any]] | None) -> dict[OwnerKey, float]:
    out: dict[OwnerKey, float] = {}
    for item in items or []:
        key: OwnerKey = tuple(item.get(f) for f in OWNER_FIELDS)  # type: ignore[assignment]
        out[key] = out.get(key, 0.0) + float(item["seconds"])
    return out


def _durations(times: Sequence[datetime], max_gap: float) -> list[tuple[float, bool]]:
    """Seconds each sample stands for, and whether its predecessor is within ``max_gap``.

    Only the predecessor counts, so a sample's figures change only when an earlier sample
    arrives late; ingest then marks the following minute dirty as well.
    """
    out: list[tuple[float, bool]] = []
    first = min(DEFAULT_SAMPLE_SECONDS, max_gap)
    for i, ts in enumerate(times):
        gap = (ts - times[i - 1]).total_seconds() if i > 0 else None
        if gap is not None and 0 < gap <= max_gap:
            out.append((gap, True))
        else:
            out.append((first, False))
    return out


def gpu_buckets(
    points: Sequence[GpuPoint],
    *,
    width: timedelta = timedelta(minutes=1),
    only: set[datetime] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[GpuBucket]:
    """Roll one GPU's samples (sorted by time) into buckets of ``width``.

    Pass the samples just before the first wanted bucket too (``max_gap`` of them): they give
    the first sample its duration and energy delta. ``only`` keeps just those buckets.
    """
    buckets: dict[datetime, GpuBucket] = {}
    util_means: dict[datetime, _Mean] = defaultdict(_Mean)
    power_means: dict[datetime, _Mean] = defaultdict(_Mean)
    durations = _durations([p.ts for p in points], thresholds.max_gap_seconds)
    for i, (p, (seconds, contiguous)) in enumerate(zip(points, durations, strict=True)):
        start = floor(p.ts, width)
        if only is not None and start not in only:
            continue
        b = buckets.get(start)
        if b is None:
            b = buckets[start] = GpuBucket(start)
        b.samples += 1
        b.observed_seconds += seconds
        u = p.utilization
        if u is not None:
            util_means[start].add(u, seconds)
            b.utilization_max = _max(b.utilization_max, u)
            if u < thresholds.idle_percent:
                b.idle_seconds += seconds
            elif u < thresholds.low_percent:
                b.low_util_seconds += seconds
            else:
                b.busy_seconds += seconds
        b.memory_used_max_bytes = _max(b.memory_used_max_bytes, p.memory_used_bytes)
        power_means[start].add(p.power_watts, seconds)
        joules = _energy(points[i - 1] if contiguous else None, p, seconds)
        if joules is not None:
            b.energy_joules = (b.energy_joules or 0.0) + joules
        if p.owners:
            share = seconds / len(p.owners)
            for owner in p.owners:
                b.owners[owner] = b.owners.get(owner, 0.0) + share
    for start, b in buckets.items():
        b.utilization_mean = util_means[start].value
        b.power_mean_watts = power_means[start].value
    return sorted(buckets.values(), key=lambda b: b.bucket)


def _energy(prev: GpuPoint | None, p: GpuPoint, seconds: float) -> float | None:
    """Joules for the ``seconds`` since ``prev`` (``None`` when not contiguous)."""
    if prev is not None and prev.energy_mj is not None and p.energy_mj is not None:
        joules = (p.energy_mj - prev.energy_mj) / 1000.0
        limit = p.power_limit_watts or prev.power_limit_watts or UNKNOWN_LIMIT_WATTS
        if 0 <= joules <= limit * seconds * ENERGY_TOLERANCE:
            return joules
        # Below 0 the counter was reset (driver reload, reboot); above the bound it is a
        # glitch or another history's counter: either way the delta is not this GPU's draw.
    if p.power_watts is not None:
        return p.power_watts * seconds
    return None


def combine_gpu(parts: Iterable[GpuBucket], bucket: datetime) -> GpuBucket:
    """Minute buckets → one hour bucket (or any coarser bucket)."""
    out = GpuBucket(bucket)
    util, power = _Mean(), _Mean()
    for m in parts:
        out.samples += m.samples
        out.observed_seconds += m.observed_seconds
        util.add(m.utilization_mean, m.idle_seconds + m.low_util_seconds + m.busy_seconds)
        power.add(m.power_mean_watts, m.observed_seconds)
        out.utilization_max = _max(out.utilization_max, m.utilization_max)
        out.memory_used_max_bytes = _max(out.memory_used_max_bytes, m.memory_used_max_bytes)
        if m.energy_joules is not None:
            out.energy_joules = (out.energy_joules or 0.0) + m.energy_joules
        out.idle_seconds += m.idle_seconds
        out.low_util_seconds += m.low_util_seconds
        out.busy_seconds += m.busy_seconds
        for owner, seconds in m.owners.items():
            out.owners[owner] = out.owners.get(owner, 0.0) + seconds
    out.utilization_mean = util.value
    out.power_mean_watts = power.value
    return out


@dataclass(slots=True)
class HostBucket:
    bucket: datetime
    samples: int = 0
    observed_seconds: float = 0.0
    cpu_busy_mean: float | None = None
    iowait_mean: float | None = None
    iowait_max: float | None = None
    io_pressure_some_mean: float | None = None
    io_pressure_full_mean: float | None = None
    disk_read_bytes: float | None = None
    disk_read_bytes_per_s_max: float | None = None

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_row(cls, row: Any) -> HostBucket:
        return cls(**{k: getattr(row, k) for k in cls.__slots__})


_HOST_MEANS = ("cpu_busy", "iowait", "io_pressure_some", "io_pressure_full")


def host_buckets(
    points: Sequence[HostPoint],
    *,
    width: timedelta = timedelta(minutes=1),
    only: set[datetime] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[HostBucket]:
    """Roll one node's host samples (sorted by time) into buckets of ``width``."""
    buckets: dict[datetime, HostBucket] = {}
    means: dict[tuple[datetime, str], _Mean] = defaultdict(_Mean)
    durations = _durations([p.ts for p in points], thresholds.max_gap_seconds)
    for p, (seconds, _) in zip(points, durations, strict=True):
        start = floor(p.ts, width)
        if only is not None and start not in only:
            continue
        b = buckets.get(start)
        if b is None:
            b = buckets[start] = HostBucket(start)
        b.samples += 1
        b.observed_seconds += seconds
        for name in _HOST_MEANS:
            means[start, name].add(getattr(p, name), seconds)
        b.iowait_max = _max(b.iowait_max, p.iowait)
        rate = p.disk_read_bytes_per_s
        if rate is not None:
            b.disk_read_bytes = (b.disk_read_bytes or 0.0) + rate * seconds
            b.disk_read_bytes_per_s_max = _max(b.disk_read_bytes_per_s_max, rate)
    for start, b in buckets.items():
        for name in _HOST_MEANS:
            setattr(b, f"{name}_mean", means[start, name].value)
    return sorted(buckets.values(), key=lambda b: b.bucket)


def combine_host(parts: Iterable[HostBucket], bucket: datetime) -> HostBucket:
    """Minute host buckets → one hour bucket."""
    out = HostBucket(bucket)
    means = {name: _Mean() for name in _HOST_MEANS}
    for m in parts:
        out.samples += m.samples
        out.observed_seconds += m.observed_seconds
        for name in _HOST_MEANS:
            means[name].add(getattr(m, f"{name}_mean"), m.observed_seconds)
        out.iowait_max = _max(out.iowait_max, m.iowait_max)
        if m.disk_read_bytes is not None:
            out.disk_read_bytes = (out.disk_read_bytes or 0.0) + m.disk_read_bytes
        out.disk_read_bytes_per_s_max = _max(
            out.disk_read_bytes_per_s_max, m.disk_read_bytes_per_s_max
        )
    for name in _HOST_MEANS:
        setattr(out, f"{name}_mean", means[name].value)
    return out
