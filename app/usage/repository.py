"""SQL for rollups: dirty-bucket bookkeeping, loading raw samples, writing rollup rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.kit.upsert import upsert
from app.models import (
    FleetHourRollup,
    GpuHourRollup,
    GpuMinuteRollup,
    GpuProcessSample,
    GpuSample,
    HostHourRollup,
    HostMinuteRollup,
    HostSample,
    RollupDirty,
)
from app.usage.rollup import GpuBucket, GpuPoint, HostBucket, HostPoint, OwnerKey

GPU = "gpu"
HOST = "host"
IN_CHUNK = 500  # ids per IN (...) list


def mark_dirty(session: Session, kind: str, keys: Iterable[tuple[int, datetime]]) -> int:
    """Mark (entity, minute) buckets stale; a re-mark bumps ``version`` so a running rollup
    that already read the old samples does not clear it (see ``clear_dirty``)."""
    rows = [{"kind": kind, "entity_id": e, "bucket": b, "version": 1} for e, b in set(keys)]
    if not rows:
        return 0
    table = cast(Table, RollupDirty.__table__)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows.sort(key=lambda r: (r["entity_id"], r["bucket"]))  # a stable lock order
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.kind, table.c.entity_id, table.c.bucket],
        set_={"version": table.c.version + 1},
    )
    for start in range(0, len(rows), 2000):
        session.execute(stmt, rows[start : start + 2000])
    return len(rows)


DirtyKey = tuple[str, int, datetime, int]


def claim_dirty(session: Session, *, limit: int) -> list[DirtyKey]:
    """The oldest ``limit`` stale buckets with the version seen now."""
    stmt = (
        select(RollupDirty.kind, RollupDirty.entity_id, RollupDirty.bucket, RollupDirty.version)
        .order_by(RollupDirty.bucket, RollupDirty.kind, RollupDirty.entity_id)
        .limit(limit)
    )
    return [(k, e, b, v) for k, e, b, v in session.execute(stmt)]


def clear_dirty(session: Session, keys: Sequence[DirtyKey]) -> None:
    """Forget the buckets just recomputed, unless ingest re-marked them meanwhile."""
    table = cast(Table, RollupDirty.__table__)
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start : start + IN_CHUNK]
        session.execute(
            delete(table).where(
                tuple_(table.c.kind, table.c.entity_id, table.c.bucket, table.c.version).in_(
                    [tuple(k) for k in chunk]
                )
            )
        )


# A sample's allocation in ``OwnerKey`` order (user, namespace, pod_name, job_id, account).
ALLOCATION_OWNER = (
    GpuSample.alloc_user,
    GpuSample.alloc_namespace,
    GpuSample.alloc_pod,
    GpuSample.alloc_job_id,
    GpuSample.alloc_account,
)


def load_gpu_points(
    session: Session, gpu_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[GpuPoint]]:
    """Raw samples of ``gpu_ids`` in [start, end), sorted, with the owners and power limit."""
    owners: dict[tuple[int, datetime], set[OwnerKey]] = defaultdict(set)
    procs = select(
        GpuProcessSample.gpu_id,
        GpuProcessSample.ts,
        GpuProcessSample.user,
        GpuProcessSample.namespace,
        GpuProcessSample.pod_name,
        GpuProcessSample.job_id,
        GpuProcessSample.account,
    ).where(
        GpuProcessSample.gpu_id.in_(gpu_ids),
        GpuProcessSample.ts >= start,
        GpuProcessSample.ts < end,
    )
    for gpu_id, ts, *owner in session.execute(procs):
        owners[gpu_id, ts].add(cast(OwnerKey, tuple(owner)))
    stmt = (
        select(
            GpuSample.gpu_id,
            GpuSample.ts,
            GpuSample.utilization_gpu,
            GpuSample.memory_used_bytes,
            GpuSample.power_watts,
            GpuSample.energy_mj,
            GpuSample.power_limit_watts,
            *ALLOCATION_OWNER,
        )
        .where(GpuSample.gpu_id.in_(gpu_ids), GpuSample.ts >= start, GpuSample.ts < end)
        .order_by(GpuSample.gpu_id, GpuSample.ts)
    )
    out: dict[int, list[GpuPoint]] = defaultdict(list)
    for gpu_id, ts, util, mem, power, energy, limit, *holder in session.execute(stmt):
        # The holder (job or pod) owns the GPU's time, busy or idle; processes only without one.
        found = {cast(OwnerKey, tuple(holder))} if any(holder) else owners.get((gpu_id, ts))
        out[gpu_id].append(
            GpuPoint(
                ts,
                util,
                mem,
                power,
                energy,
                tuple(sorted(found, key=str)) if found else (),
                power_limit_watts=limit,
            )
        )
    return out


def load_host_points(
    session: Session, node_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[HostPoint]]:
    stmt = (
        select(
            HostSample.node_id,
            HostSample.ts,
            HostSample.cpu_busy_ratio,
            HostSample.iowait_ratio,
            HostSample.io_pressure_some_ratio,
            HostSample.io_pressure_full_ratio,
            HostSample.disk_read_bytes_per_s,
        )
        .where(HostSample.node_id.in_(node_ids), HostSample.ts >= start, HostSample.ts < end)
        .order_by(HostSample.node_id, HostSample.ts)
    )
    out: dict[int, list[HostPoint]] = defaultdict(list)
    for node_id, ts, cpu, iowait, some, full, disk in session.execute(stmt):
        out[node_id].append(HostPoint(ts, cpu, iowait, some, full, disk))
    return out


_GPU_MODELS = {"minute": GpuMinuteRollup, "hour": GpuHourRollup}
_HOST_MODELS = {"minute": HostMinuteRollup, "hour": HostHourRollup}


def replace_buckets(
    session: Session,
    kind: str,
    tier: str,
    keys: Sequence[tuple[int, datetime]],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Make the rollup rows of ``keys`` exactly ``rows`` (a bucket with no row is deleted)."""
    model = (_GPU_MODELS if kind == GPU else _HOST_MODELS)[tier]
    entity = "gpu_id" if kind == GPU else "node_id"
    table = cast(Table, model.__table__)
    kept = {(r[entity], r["bucket"]) for r in rows}
    gone = [k for k in keys if k not in kept]
    for start in range(0, len(gone), IN_CHUNK):
        session.execute(
            delete(table).where(
                tuple_(table.c[entity], table.c.bucket).in_(gone[start : start + IN_CHUNK])
            )
        )
    upsert(session, model, rows, [entity, "bucket"])


def load_minute_buckets(
    session: Session, kind: str, ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[Any]]:
    """Minute rollups of ``ids`` in [start, end) as ``GpuBucket``/``HostBucket`` per id."""
    model = _GPU_MODELS["minute"] if kind == GPU else _HOST_MODELS["minute"]
    entity = "gpu_id" if kind == GPU else "node_id"
    table = cast(Table, model.__table__)
    stmt = select(table).where(
        table.c[entity].in_(ids), table.c.bucket >= start, table.c.bucket < end
    )
    factory = GpuBucket.from_row if kind == GPU else HostBucket.from_row
    out: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(stmt):
        out[getattr(row, entity)].append(factory(row))
    return out


def refresh_fleet_hours(session: Session, hours: Iterable[datetime]) -> None:
    """Recompute the fleet rows of ``hours`` from the GPU hour rollups."""
    hours = sorted(set(hours))
    h = GpuHourRollup
    for start in range(0, len(hours), IN_CHUNK):
        chunk = hours[start : start + IN_CHUNK]
        stmt = (
            select(
                h.bucket,
                func.count(),
                func.sum(h.observed_seconds),
                func.sum(
                    func.coalesce(h.utilization_mean, 0.0)
                    * (h.idle_seconds + h.low_util_seconds + h.busy_seconds)
                ),
                func.sum(func.coalesce(h.power_mean_watts, 0.0) * h.observed_seconds),
                func.sum(func.coalesce(h.energy_joules, 0.0)),
                func.sum(h.idle_seconds),
                func.sum(h.low_util_seconds),
                func.sum(h.busy_seconds),
            )
            .where(h.bucket.in_(chunk))
            .group_by(h.bucket)
        )
        names = [
            "bucket",
            "gpus",
            "observed_seconds",
            "utilization_seconds",
            "power_watt_seconds",
            "energy_joules",
            "idle_seconds",
            "low_util_seconds",
            "busy_seconds",
        ]
        rows = [dict(zip(names, r, strict=True)) for r in session.execute(stmt)]
        found = {r["bucket"] for r in rows}
        missing = [b for b in chunk if b not in found]
        if missing:
            session.execute(delete(FleetHourRollup).where(FleetHourRollup.bucket.in_(missing)))
        upsert(session, FleetHourRollup, rows, ["bucket"])


def delete_older(
    session: Session, model: type[Any], column: str, before: datetime, *, batch: int
) -> int:
    """Delete rows with ``column < before`` in batches of ``batch`` (keeps SQLite locks short)."""
    table = cast(Table, model.__table__)
    pk = list(table.primary_key.columns)
    total = 0
    while True:
        victims = select(*pk).where(table.c[column] < before).limit(batch)
        result = session.execute(
            delete(table)
            .where(and_(tuple_(*pk).in_(victims)))
            .execution_options(synchronize_session=False)
        )
        count = result.rowcount or 0  # type: ignore[attr-defined]
        total += count
        if count < batch:
            return total
