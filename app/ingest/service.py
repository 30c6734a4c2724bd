"""Store an agent batch: update the node and its GPUs, insert samples once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.errors import Forbidden, Unauthenticated
from app.ingest import repository
from app.ingest.repository import NodeState
from app.ingest.schemas import GpuInfo, IngestBatch, IngestResult, NodeIdentity
from app.kit.timebuckets import floor_day
from app.kit.upsert import bulk_insert_ignore, insert_ignore
from app.models import Cluster, Gpu, GpuProcessSample, GpuSample, HostSample, Node, NodeToken
from app.usage import partitions
from app.usage import repository as usage_repository
from app.usage import service as usage_service

_SAMPLE_FIELDS = [
    c.name for c in GpuSample.__table__.columns if c.name not in {"gpu_id", "ts", "status"}
]
_HOST_FIELDS = [c.name for c in HostSample.__table__.columns if c.name not in {"node_id", "ts"}]
# The PostgreSQL path builds tuples in ``repository.SAMPLE_COLUMNS`` order: these fields of
# the wire sample first, then gpu_id and process_count.
_SAMPLE_PG = repository.SAMPLE_COLUMNS[:-2]
_TS = _SAMPLE_PG.index("ts")


def _ensure_cluster(session: Session, name: str) -> Cluster:
    cluster = session.scalars(select(Cluster).where(Cluster.name == name)).one_or_none()
    if cluster is None:
        # Many nodes of a new cluster report at once: insert-or-ignore, then read the winner.
        insert_ignore(session, Cluster, [{"name": name, "created_at": datetime.now(UTC)}], ["name"])
        cluster = session.scalars(select(Cluster).where(Cluster.name == name)).one()
    return cluster


def _update_node(session: Session, node: Node, ident: NodeIdentity, seen: datetime) -> None:
    if ident.cluster:
        node.cluster_id = _ensure_cluster(session, ident.cluster).id
    for field in (
        "hostname",
        "provider",
        "instance_id",
        "instance_type",
        "region",
        "agent_version",
    ):
        value = getattr(ident, field)
        if value is not None:
            setattr(node, field, value)
    if ident.labels:
        node.labels = dict(ident.labels)
    if node.last_seen is None or seen > node.last_seen:
        node.last_seen = seen


def _sync_gpus(
    session: Session,
    node: Node,
    gpus: list[GpuInfo],
    last_seen: dict[str, datetime],
    previous: dict[int, datetime | None],
) -> dict[str, int]:
    """Create or update the batch's GPUs; refuse GPUs that belong to another node.

    ``previous`` receives each known GPU's last report before this batch (late-data check).
    """
    if not gpus:
        return {}
    uuids = [g.uuid for g in gpus]
    existing = {g.uuid: g for g in session.scalars(select(Gpu).where(Gpu.uuid.in_(uuids)))}
    previous.update({g.id: g.last_seen for g in existing.values()})
    now = datetime.now(UTC)
    for info in gpus:
        gpu = existing.get(info.uuid)
        if gpu is not None and gpu.node_id != node.id:
            raise Forbidden(
                f"GPU {info.uuid} belongs to another node; this token is for {node.name}"
            )
        if gpu is None:
            gpu = Gpu(uuid=info.uuid, node_id=node.id, created_at=now, index=info.index)
            session.add(gpu)
            existing[info.uuid] = gpu
        gpu.index = info.index
        gpu.status = info.status
        for field in ("model", "memory_total_bytes", "mig_mode"):
            value = getattr(info, field)
            if value is not None:
                setattr(gpu, field, value)
        if info.mig_instances is not None:
            gpu.mig_instances = [m.model_dump(exclude_none=True) for m in info.mig_instances]
        seen = last_seen.get(info.uuid)
        if seen is not None and (gpu.last_seen is None or seen > gpu.last_seen):
            gpu.last_seen = seen
    session.flush()
    return {uuid: gpu.id for uuid, gpu in existing.items()}


def authenticate(session: Session, secret: str) -> NodeState:
    """The live node token matching ``secret`` with its node and GPUs (one query)."""
    state = repository.load_node_state(session, token_hash=auth_service.hash_secret(secret))
    if state is None or state.revoked:
        raise Unauthenticated("invalid node token")
    return state


def ingest_batch(
    session: Session, *, token: NodeToken | NodeState, batch: IngestBatch
) -> IngestResult:
    """Store ``batch`` for the token's node; idempotent on (GPU, ts) and (node, ts)."""
    if session.get_bind().dialect.name != "postgresql" or isinstance(token, NodeToken):
        if isinstance(token, NodeState):
            token = session.get_one(NodeToken, token.token_id)
        if session.get_bind().dialect.name != "postgresql":
            return _ingest_orm(session, token=token, batch=batch)
        state = repository.load_node_state(session, token_id=token.id)
        assert state is not None  # noqa: S101 (the token row is in this session)
        token = state
    return _ingest_pg(session, state=token, batch=batch)


def _latest(batch: IngestBatch) -> dict[str, datetime]:
    last_seen: dict[str, datetime] = {}
    for s in batch.samples:
        if s.gpu_uuid not in last_seen or s.ts > last_seen[s.gpu_uuid]:
            last_seen[s.gpu_uuid] = s.ts
    return last_seen


def _inventory_changed(state: NodeState, batch: IngestBatch) -> bool:
    """Whether the batch says anything about the node or its GPUs that is not stored yet."""
    ident = batch.node
    if ident.cluster and ident.cluster != state.cluster:
        return True
    if ident.labels and dict(ident.labels) != state.inventory["labels"]:
        return True
    for name in repository.NODE_FIELDS:
        value = getattr(ident, name)
        if value is not None and value != state.inventory[name]:
            return True
    for info in batch.gpus:
        gpu = state.gpus.get(info.uuid)
        if gpu is None or gpu.index != info.index or gpu.status != info.status:
            return True
        for name in ("model", "memory_total_bytes", "mig_mode"):
            value = getattr(info, name)
            if value is not None and value != getattr(gpu, name):
                return True
        if info.mig_instances is not None and gpu.mig_instances != [
            m.model_dump(exclude_none=True) for m in info.mig_instances
        ]:
            return True
    return False


def _ingest_pg(session: Session, *, state: NodeState, batch: IngestBatch) -> IngestResult:
    """PostgreSQL: inventory only when it changed, then the whole batch in one statement."""
    if batch.node.name != state.name:
        raise Forbidden(f"this token writes node {state.name!r} only, not {batch.node.name!r}")
    last_seen = _latest(batch)
    times = list(last_seen.values()) + [h.ts for h in batch.host_samples]
    now = datetime.now(UTC)
    node_seen = max(times) if times else now
    gpu_seen_before = {g.id: g.last_seen for g in state.gpus.values()}
    if _inventory_changed(state, batch):
        node = session.get_one(Node, state.node_id)
        _update_node(session, node, batch.node, node_seen)
        gpu_ids = _sync_gpus(session, node, batch.gpus, last_seen, {})
    else:
        gpu_ids = {uuid: g.id for uuid, g in state.gpus.items()}

    samples: list[tuple[Any, ...]] = []
    processes: list[tuple[Any, ...]] = []
    for s in batch.samples:
        gpu_id = gpu_ids[s.gpu_uuid]
        count = None if s.processes is None else len(s.processes)
        samples.append((*(getattr(s, c) for c in _SAMPLE_PG), gpu_id, count))
        for p in s.processes or []:
            o = p.owner
            processes.append((gpu_id, s.ts, p.pid, p.used_memory_bytes, p.sm_utilization, o.user,
                              o.pod_uid, o.pod_name, o.namespace, o.container_id, o.job_id,
                              o.account, p.gpu_instance_id, p.compute_instance_id))  # fmt: skip
    hosts = [
        (state.node_id, *(getattr(h, c) for c in repository.HOST_COLUMNS[1:]))
        for h in batch.host_samples
    ]
    days = {floor_day(r[_TS]).date() for r in samples} | {floor_day(h[1]).date() for h in hosts}
    partitions.ensure_days_cached(session, days)

    per_gpu: dict[int, list[datetime]] = defaultdict(list)
    for row in samples:
        per_gpu[row[-2]].append(row[_TS])
    gpu_dirty = usage_service.dirty_minutes(per_gpu, gpu_seen_before)
    host_times = {state.node_id: [h[1] for h in hosts]}
    host_dirty = usage_service.dirty_minutes(host_times, {state.node_id: state.last_seen})
    inserted, host_inserted = repository.write_batch(
        session,
        state=state,
        samples=samples,
        processes=processes,
        hosts=hosts,
        gpu_dirty=list(gpu_dirty),
        host_dirty=list(host_dirty),
        gpu_seen={gpu_ids[u]: ts for u, ts in last_seen.items()},
        node_seen=node_seen,
        now=now,
    )
    return IngestResult(
        inserted=inserted,
        duplicates=len(samples) - inserted,
        host_inserted=host_inserted,
        host_duplicates=len(hosts) - host_inserted,
    )


def _ingest_orm(session: Session, *, token: NodeToken, batch: IngestBatch) -> IngestResult:
    """SQLite (embedded): the ORM path, batched inserts, one transaction."""
    node = session.get_one(Node, token.node_id)
    if batch.node.name != node.name:
        raise Forbidden(f"this token writes node {node.name!r} only, not {batch.node.name!r}")

    last_seen = _latest(batch)
    times = list(last_seen.values()) + [h.ts for h in batch.host_samples]
    node_seen_before = node.last_seen
    _update_node(session, node, batch.node, max(times) if times else datetime.now(UTC))
    gpu_seen_before: dict[int, datetime | None] = {}
    gpu_ids = _sync_gpus(session, node, batch.gpus, last_seen, gpu_seen_before)

    sample_rows: list[dict[str, Any]] = []
    process_rows: list[dict[str, Any]] = []
    for s in batch.samples:
        gpu_id = gpu_ids[s.gpu_uuid]
        row = {f: getattr(s, f) for f in _SAMPLE_FIELDS if f != "process_count"}
        row.update(gpu_id=gpu_id, ts=s.ts, status=s.status)
        row["process_count"] = None if s.processes is None else len(s.processes)
        sample_rows.append(row)
        process_rows.extend(
            {
                "gpu_id": gpu_id,
                "ts": s.ts,
                "pid": p.pid,
                "used_memory_bytes": p.used_memory_bytes,
                "sm_utilization": p.sm_utilization,
                "gpu_instance_id": p.gpu_instance_id,
                "compute_instance_id": p.compute_instance_id,
                **p.owner.model_dump(),
            }
            for p in s.processes or []
        )
    host_rows = [
        {"node_id": node.id, "ts": h.ts, **{f: getattr(h, f) for f in _HOST_FIELDS}}
        for h in batch.host_samples
    ]

    partitions.ensure_days(session, {floor_day(r["ts"]).date() for r in (*sample_rows, *host_rows)})
    inserted = bulk_insert_ignore(session, GpuSample, sample_rows, ["gpu_id", "ts"])
    bulk_insert_ignore(session, GpuProcessSample, process_rows, ["gpu_id", "ts", "pid"])
    host_inserted = bulk_insert_ignore(session, HostSample, host_rows, ["node_id", "ts"])
    _mark_dirty(
        session,
        sample_rows,
        host_rows,
        inserted,
        host_inserted,
        gpu_seen_before,
        node,
        node_seen_before,
    )
    token.last_used_at = datetime.now(UTC)
    session.flush()
    return IngestResult(
        inserted=inserted,
        duplicates=len(sample_rows) - inserted,
        host_inserted=host_inserted,
        host_duplicates=len(host_rows) - host_inserted,
    )


def _mark_dirty(
    session: Session,
    sample_rows: list[dict[str, Any]],
    host_rows: list[dict[str, Any]],
    inserted: int,
    host_inserted: int,
    gpu_seen_before: dict[int, datetime | None],
    node: Node,
    node_seen_before: datetime | None = None,
) -> None:
    """Queue the minutes this batch changed for the rollup task (a pure retry changes none)."""
    if inserted:
        times: dict[int, list[datetime]] = defaultdict(list)
        for row in sample_rows:
            times[row["gpu_id"]].append(row["ts"])
        keys = usage_service.dirty_minutes(times, gpu_seen_before)
        usage_repository.mark_dirty(session, usage_repository.GPU, keys)
    if host_inserted:
        host_times = {node.id: [row["ts"] for row in host_rows]}
        keys = usage_service.dirty_minutes(host_times, {node.id: node_seen_before})
        usage_repository.mark_dirty(session, usage_repository.HOST, keys)
