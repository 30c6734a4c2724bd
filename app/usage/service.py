"""Usage: incremental rollups of what ingest marked dirty, and GPU-hours for the cost engine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import settings
from app.costs import dirty as cost_dirty
from app.findings import dirty as findings_dirty
from app.kit.timebuckets import HOUR, MINUTE, floor_hour, floor_minute, utc
from app.models import Gpu, GpuHourRollup
from app.usage import repository
from app.usage.repository import GPU, HOST
from app.usage.rollup import (
    OWNER_FIELDS,
    Thresholds,
    combine_gpu,
    combine_host,
    gpu_buckets,
    host_buckets,
    owners_from_json,
)
from app.usage.types import GpuHour, OwnerShare

IDS_PER_QUERY = 200


@dataclass(frozen=True)
class RollupStats:
    dirty: int = 0
    gpu_minutes: int = 0
    gpu_hours: int = 0
    host_minutes: int = 0
    host_hours: int = 0


def thresholds() -> Thresholds:
    return Thresholds(
        idle_percent=settings.idle_utilization_percent,
        low_percent=settings.low_utilization_percent,
        max_gap_seconds=settings.max_sample_gap_seconds,
    )


def rollup_pending(session: Session, *, limit: int | None = None) -> RollupStats:
    """Recompute the minute and hour rollups of up to ``limit`` dirty (entity, minute) buckets."""
    keys = repository.claim_dirty(session, limit=limit or settings.rollup_batch_rows)
    if not keys:
        return RollupStats()
    dirty: dict[str, dict[int, set[datetime]]] = {GPU: defaultdict(set), HOST: defaultdict(set)}
    for kind, entity, bucket, _ in keys:
        dirty[kind][entity].add(bucket)
    stats = rollup_buckets(session, gpu=dirty[GPU], host=dirty[HOST])
    repository.clear_dirty(session, keys)
    session.flush()
    return RollupStats(len(keys), *_astuple(stats)[1:])


def rollup_buckets(
    session: Session,
    *,
    gpu: Mapping[int, set[datetime]],
    host: Mapping[int, set[datetime]],
) -> RollupStats:
    """Recompute the given (entity → minutes) buckets, their hours and the fleet hours."""
    gpu_m, gpu_h, hours = _refresh(session, GPU, gpu)
    host_m, host_h, _ = _refresh(session, HOST, host)
    repository.refresh_fleet_hours(session, hours)
    return RollupStats(0, gpu_m, gpu_h, host_m, host_h)


def _refresh(
    session: Session, kind: str, dirty: Mapping[int, set[datetime]]
) -> tuple[int, int, set[datetime]]:
    """Rebuild the dirty minutes and their hours for one kind; returns counts and the hours."""
    limits = thresholds()
    lookback = timedelta(seconds=limits.max_gap_seconds)
    load: Callable[..., Mapping[int, Sequence[Any]]]
    roll: Callable[..., list[Any]]
    combine: Callable[..., Any]
    if kind == GPU:
        load, roll, combine = repository.load_gpu_points, gpu_buckets, combine_gpu
        entity = "gpu_id"
    else:
        load, roll, combine = repository.load_host_points, host_buckets, combine_host
        entity = "node_id"
    # Entities with the same dirty span share one query: normally all of them (the last minute).
    groups: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    for entity_id, minutes in dirty.items():
        groups[min(minutes), max(minutes)].append(entity_id)
    minute_count = hour_count = 0
    all_hours: set[datetime] = set()
    for (first, last), ids in groups.items():
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = sorted(ids[start : start + IDS_PER_QUERY])
            points: Mapping[int, Sequence[Any]] = load(
                session, chunk, first - lookback, last + MINUTE
            )
            keys: list[tuple[int, datetime]] = []
            rows: list[dict[str, Any]] = []
            for entity_id in chunk:
                wanted = dirty[entity_id]
                keys.extend((entity_id, m) for m in wanted)
                rows.extend(
                    {entity: entity_id, **b.row()}
                    for b in roll(points.get(entity_id, []), only=wanted, thresholds=limits)
                )
            repository.replace_buckets(session, kind, "minute", keys, rows)
            findings_dirty.mark_rollup(session, kind, keys)  # re-read minutes already evaluated
            minute_count += len(rows)
            hours = {(e, floor_hour(m)) for e, m in keys}
            h_first, h_last = min(h for _, h in hours), max(h for _, h in hours)
            stored = repository.load_minute_buckets(session, kind, chunk, h_first, h_last + HOUR)
            per_hour: dict[tuple[int, datetime], list[Any]] = defaultdict(list)
            for entity_id, buckets in stored.items():
                for b in buckets:
                    per_hour[entity_id, floor_hour(b.bucket)].append(b)
            hour_rows = [
                {entity: e, **combine(per_hour[e, h], h).row()}
                for e, h in sorted(hours)
                if per_hour.get((e, h))
            ]
            repository.replace_buckets(session, kind, "hour", sorted(hours), hour_rows)
            if kind == GPU:  # the ledger prices GPU-hours: re-price the ones just rewritten
                cost_dirty.mark_gpu_hours(session, hours)
            hour_count += len(hour_rows)
            all_hours.update(h for _, h in hours)
    return minute_count, hour_count, all_hours


def rollup_all(session_factory: Callable[[], Any], *, limit: int | None = None) -> RollupStats:
    """Drain the dirty queue, one transaction per ``limit`` buckets (tasks and embedded mode)."""
    total = RollupStats()
    batch = limit or settings.rollup_batch_rows
    while True:
        with session_factory() as session:
            stats = rollup_pending(session, limit=batch)
        total = RollupStats(*(a + b for a, b in zip(_astuple(total), _astuple(stats), strict=True)))
        if stats.dirty < batch:
            return total


def _astuple(stats: RollupStats) -> tuple[int, ...]:
    return (stats.dirty, stats.gpu_minutes, stats.gpu_hours, stats.host_minutes, stats.host_hours)


def gpu_hours(session: Session, *, start: datetime, end: datetime) -> list[GpuHour]:
    """Every GPU-hour in [start, end) from the hourly rollups, with each owner's share of time."""
    h = GpuHourRollup
    stmt = (
        select(h, Gpu.node_id)
        .join(Gpu, Gpu.id == h.gpu_id)
        .where(h.bucket >= utc(start), h.bucket < utc(end))
        .order_by(h.bucket, h.gpu_id)
    )
    return [gpu_hour_of(row, node_id) for row, node_id in session.execute(stmt)]


def gpu_hour_of(row: Any, node_id: int) -> GpuHour:
    """One hourly rollup row as the cost engine reads it (owners longest first)."""
    owners = [
        OwnerShare(seconds=seconds, **dict(zip(OWNER_FIELDS, key, strict=True)))
        for key, seconds in sorted(
            owners_from_json(row.owners).items(), key=lambda kv: (-kv[1], str(kv[0]))
        )
    ]
    return GpuHour(
        gpu_id=row.gpu_id,
        node_id=node_id,
        hour=row.bucket,
        observed_seconds=row.observed_seconds,
        measured_seconds=row.idle_seconds + row.low_util_seconds + row.busy_seconds,
        utilization_mean=row.utilization_mean,
        idle_seconds=row.idle_seconds,
        energy_joules=row.energy_joules,
        owners=owners,
    )


def dirty_minutes(
    times_by_entity: Mapping[int, Sequence[datetime]],
    previous_last_seen: Mapping[int, datetime | None],
) -> set[tuple[int, datetime]]:
    """The minutes a batch makes stale: its samples' minutes and, for data older than what
    was already stored (late data), the minutes whose next sample may now have a predecessor."""
    gap = timedelta(seconds=settings.max_sample_gap_seconds)
    out: set[tuple[int, datetime]] = set()
    for entity_id, times in times_by_entity.items():
        if not times:
            continue
        out.update((entity_id, floor_minute(t)) for t in times)
        seen = previous_last_seen.get(entity_id)
        first, last = min(times), max(times)
        if seen is not None and first < seen:
            m = floor_minute(last)
            while m <= last + gap:
                out.add((entity_id, m))
                m += MINUTE
    return out
