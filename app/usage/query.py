"""Read side of usage: a GPU's series at the right resolution, the fleet summary.

The resolution follows the range so that the cost grows with the answer, not with the raw
data: up to ``RAW_MAX`` raw samples, up to ``MINUTE_MAX`` minute rollups, beyond that hours.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import settings
from app.errors import AppError, NotFound
from app.kit.timebuckets import floor, utc
from app.models import FleetHourRollup, Gpu, GpuHourRollup, GpuMinuteRollup, GpuSample
from app.usage import states

RAW_MAX = timedelta(hours=3)
MINUTE_MAX = timedelta(days=3)

# metric → (raw column, rollup column, how buckets combine)
METRICS: dict[str, tuple[str | None, str, str]] = {
    "utilization": ("utilization_gpu", "utilization_mean", "mean"),
    "utilization_max": ("utilization_gpu", "utilization_max", "max"),
    "memory_used_bytes": ("memory_used_bytes", "memory_used_max_bytes", "max"),
    "power_watts": ("power_watts", "power_mean_watts", "mean"),
    "energy_joules": (None, "energy_joules", "sum"),
    "idle_seconds": (None, "idle_seconds", "sum"),
}


class GpuNotFound(NotFound):
    error = "gpu_not_found"


class BadRange(AppError):
    status_code = 400
    error = "bad_range"


@dataclass(frozen=True)
class Series:
    uuid: str
    metric: str
    resolution: str  # "raw" | "minute" | "hour"
    step_seconds: float | None
    points: list[tuple[datetime, float | None]]


def choose_resolution(start: datetime, end: datetime, *, now: datetime | None = None) -> str:
    """Raw for short recent ranges, minutes up to a few days, hours beyond."""
    now = now or datetime.now(UTC)
    span = end - start
    raw_kept = now - timedelta(days=settings.raw_retention_days)
    if span <= RAW_MAX and start >= raw_kept:
        return "raw"
    minute_kept = now - timedelta(days=settings.minute_rollup_retention_days)
    if span <= MINUTE_MAX and start >= minute_kept:
        return "minute"
    return "hour"


def gpu_series(
    session: Session,
    *,
    uuid: str,
    metric: str,
    start: datetime,
    end: datetime,
    step: timedelta | None = None,
) -> Series:
    """One GPU's ``metric`` over [start, end), optionally re-bucketed to ``step``."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise BadRange("'to' must be after 'from'")
    if metric not in METRICS:
        raise BadRange(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    gpu_id = session.scalar(select(Gpu.id).where(Gpu.uuid == uuid))
    if gpu_id is None:
        raise GpuNotFound(f"no GPU {uuid!r}")
    raw_col, rollup_col, how = METRICS[metric]
    resolution = choose_resolution(start, end)
    if resolution == "raw" and raw_col is None:
        resolution = "minute"
    if resolution == "raw":
        ts_col, value_col = GpuSample.ts, getattr(GpuSample, raw_col or "")
        where = GpuSample.gpu_id == gpu_id
    else:
        model = GpuMinuteRollup if resolution == "minute" else GpuHourRollup
        ts_col, value_col = model.bucket, getattr(model, rollup_col)
        where = model.gpu_id == gpu_id
    stmt = select(ts_col, value_col).where(where, ts_col >= start, ts_col < end).order_by(ts_col)
    points: list[tuple[datetime, float | None]] = [
        (ts, None if v is None else float(v)) for ts, v in session.execute(stmt)
    ]
    if step is not None:
        points = _rebucket(points, step, how)
    return Series(uuid, metric, resolution, step.total_seconds() if step else None, points)


def _rebucket(
    points: list[tuple[datetime, float | None]], step: timedelta, how: str
) -> list[tuple[datetime, float | None]]:
    groups: dict[datetime, list[float]] = defaultdict(list)
    for ts, v in points:
        bucket = groups[floor(ts, step)]
        if v is not None:
            bucket.append(v)
    out: list[tuple[datetime, float | None]] = []
    for ts in sorted(groups):
        values = groups[ts]
        if not values:
            out.append((ts, None))
        elif how == "sum":
            out.append((ts, sum(values)))
        elif how == "max":
            out.append((ts, max(values)))
        else:
            out.append((ts, sum(values) / len(values)))
    return out


@dataclass(frozen=True)
class FleetSummary:
    start: datetime
    end: datetime
    gpus_by_state: dict[str, int]
    gpu_hours: float
    utilization_mean: float | None
    power_mean_watts: float | None  # the fleet's draw (summed over GPUs) while observed
    energy_joules: float
    idle_seconds: float
    low_util_seconds: float
    busy_seconds: float


def gpus_by_state(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """GPUs now: busy, idle and held, idle and free, starved, stale (silent), lost (see
    ``app.usage.states``)."""
    return states.count(session, now=now or datetime.now(UTC))


def fleet_summary(
    session: Session, *, start: datetime, end: datetime, now: datetime | None = None
) -> FleetSummary:
    """The fleet over [start, end) from the fleet hour rollups; GPU states as of ``now``."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise BadRange("'to' must be after 'from'")
    f = FleetHourRollup
    row = session.execute(
        select(
            func.coalesce(func.sum(f.observed_seconds), 0.0),
            func.coalesce(func.sum(f.utilization_seconds), 0.0),
            func.coalesce(func.sum(f.idle_seconds + f.low_util_seconds + f.busy_seconds), 0.0),
            func.coalesce(func.sum(f.power_watt_seconds), 0.0),
            func.coalesce(func.sum(f.energy_joules), 0.0),
            func.coalesce(func.sum(f.idle_seconds), 0.0),
            func.coalesce(func.sum(f.low_util_seconds), 0.0),
            func.coalesce(func.sum(f.busy_seconds), 0.0),
            # The fleet's observed time: each hour's GPU-seconds over its GPUs.
            func.coalesce(func.sum(f.observed_seconds / func.nullif(f.gpus, 0)), 0.0),
        ).where(f.bucket >= floor(start, timedelta(hours=1)), f.bucket < end)
    ).one()
    observed, util_s, util_w, power_s, energy, idle, low, busy, fleet_s = (float(v) for v in row)
    return FleetSummary(
        start=start,
        end=end,
        gpus_by_state=gpus_by_state(session, now=now),
        gpu_hours=observed / 3600,
        utilization_mean=util_s / util_w if util_w else None,
        power_mean_watts=power_s / fleet_s if fleet_s else None,
        energy_joules=energy,
        idle_seconds=idle,
        low_util_seconds=low,
        busy_seconds=busy,
    )
