"""The series behind a finding: its GPU's and node's rollups over the episode, with context
before and after, merged into wider steps when the window holds more than ``MAX_POINTS``."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.findings.schemas import FindingSeries, GpuPoint, HostPoint
from app.kit.timebuckets import HOUR, MINUTE, floor, utc
from app.models import GpuHourRollup, GpuMinuteRollup, HostHourRollup, HostMinuteRollup

MAX_POINTS = 240  # per series: enough for a chart, small enough for every finding page
MINUTE_SPAN_MAX = timedelta(days=3)  # longer windows read hour rollups, as app.usage.query does
CONTEXT_MIN = timedelta(minutes=30)
CONTEXT_MAX = timedelta(hours=6)

Row = tuple[datetime, float | None, float | None, float | None]


def series_window(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) widened by a quarter of the episode on each side (30 min to 6 h), but not
    past ``now``."""
    start, end = utc(start), utc(end)
    context = min(max((end - start) / 4, CONTEXT_MIN), CONTEXT_MAX)
    return floor(start - context, MINUTE), max(end, min(end + context, utc(now)))


def read_series(
    session: Session,
    *,
    gpu_id: int | None,
    node_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> FindingSeries:
    """GPU utilization, power, memory and host I/O wait, pressure, disk reads around an episode."""
    lo, hi = series_window(start, end, now)
    hourly = hi - lo > MINUTE_SPAN_MAX
    base = HOUR if hourly else MINUTE
    if hourly:
        lo = floor(lo, HOUR)
    # MAX_POINTS - 1 steps: a window that does not start on a step boundary touches one more.
    step = base * max(1, math.ceil((hi - lo) / (base * (MAX_POINTS - 1))))
    g = GpuHourRollup if hourly else GpuMinuteRollup
    h = HostHourRollup if hourly else HostMinuteRollup
    gpu_rows: list[Row] = []
    if gpu_id is not None:
        gpu_rows = [
            (ts, util, power, None if mem is None else float(mem))
            for ts, util, power, mem in session.execute(
                select(g.bucket, g.utilization_mean, g.power_mean_watts, g.memory_used_max_bytes)
                .where(g.gpu_id == gpu_id, g.bucket >= lo, g.bucket < hi)
                .order_by(g.bucket)
            )
        ]
    host_rows: list[Row] = [
        (ts, iowait, pressure, _rate(read, seconds))
        for ts, iowait, pressure, read, seconds in session.execute(
            select(
                h.bucket,
                h.iowait_mean,
                h.io_pressure_some_mean,
                h.disk_read_bytes,
                h.observed_seconds,
            )
            .where(h.node_id == node_id, h.bucket >= lo, h.bucket < hi)
            .order_by(h.bucket)
        )
    ]
    if step > base:
        gpu_rows = _merge(gpu_rows, step, ("mean", "mean", "max"))
        host_rows = _merge(host_rows, step, ("mean", "mean", "mean"))
    return FindingSeries(
        start=lo,
        end=hi,
        resolution="hour" if hourly else "minute",
        step_seconds=int(step.total_seconds()),
        gpu=[
            GpuPoint(
                ts=ts,
                utilization=util,
                power_watts=power,
                memory_used_bytes=None if mem is None else int(mem),
            )
            for ts, util, power, mem in gpu_rows
        ],
        host=[
            HostPoint(
                ts=ts,
                iowait_ratio=iowait,
                io_pressure_some_ratio=psi,
                disk_read_bytes_per_second=rd,
            )
            for ts, iowait, psi, rd in host_rows
        ],
    )


def _rate(read_bytes: float | None, seconds: float | None) -> float | None:
    # disk_read_bytes is what the bucket read over its observed seconds, not over its width.
    if read_bytes is None or not seconds:
        return None
    return read_bytes / seconds


def _merge(rows: Iterable[Row], step: timedelta, hows: tuple[str, str, str]) -> list[Row]:
    """Rows merged into ``step`` buckets: each column's mean or max over its non-null values."""
    groups: dict[datetime, list[list[float]]] = defaultdict(lambda: [[] for _ in hows])
    for ts, *values in rows:
        columns = groups[floor(ts, step)]
        for column, value in zip(columns, values, strict=True):
            if value is not None:
                column.append(value)
    out: list[Row] = []
    for ts in sorted(groups):
        merged: list[float | None] = []
        for how, column in zip(hows, groups[ts], strict=True):
            if not column:
                merged.append(None)
            else:
                merged.append(max(column) if how == "max" else sum(column) / len(column))
        out.append((ts, merged[0], merged[1], merged[2]))
    return out
