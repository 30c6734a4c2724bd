"""Inventory queries: GPUs with their latest sample, utilization over a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.models import Cluster, Gpu, GpuMinuteRollup, GpuSample, Node
from app.nodes.schemas import GpuRead, NodeRead
from app.usage import states


def list_gpus(
    session: Session,
    *,
    node: str | None = None,
    cluster: str | None = None,
    model: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[GpuRead], int]:
    """GPUs ordered by node and index, each with its most recent sample's figures and its state
    now (``app.usage.states``)."""
    latest = and_(GpuSample.gpu_id == Gpu.id, GpuSample.ts == Gpu.last_seen)
    stmt = (
        select(
            Gpu,
            Node.name,
            GpuSample.utilization_gpu,
            GpuSample.memory_used_bytes,
            GpuSample.power_watts,
        )
        .join(Node, Node.id == Gpu.node_id)
        .outerjoin(GpuSample, latest)
    )
    count = select(func.count()).select_from(Gpu).join(Node, Node.id == Gpu.node_id)
    filters = []
    if node is not None:
        filters.append(Node.name == node)
    if cluster is not None:
        filters.append(Node.cluster_id.in_(select(Cluster.id).where(Cluster.name == cluster)))
    if model is not None:
        filters.append(Gpu.model == model)
    if status is not None:
        filters.append(Gpu.status == status)
    stmt, count = stmt.where(*filters), count.where(*filters)
    rows = session.execute(stmt.order_by(Node.name, Gpu.index).limit(limit).offset(offset)).all()
    now = now or datetime.now(UTC)
    known = states.current(session, [gpu.id for gpu, *_ in rows])
    items = [
        GpuRead(
            uuid=gpu.uuid,
            node=node_name,
            index=gpu.index,
            model=gpu.model,
            memory_total_bytes=gpu.memory_total_bytes,
            status=gpu.status,
            state=states.gpu_state(known[gpu.id], now=now) if gpu.id in known else "unknown",
            last_seen=gpu.last_seen,
            utilization=util,
            memory_used_bytes=mem,
            power_watts=power,
        )
        for gpu, node_name, util, mem, power in rows
    ]
    return items, session.scalar(count) or 0


def list_nodes(
    session: Session, *, cluster: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[NodeRead], int]:
    """Nodes ordered by name with their cluster and GPU count."""
    gpu_count = (
        select(func.count()).select_from(Gpu).where(Gpu.node_id == Node.id).scalar_subquery()
    )
    stmt = select(Node, Cluster.name, gpu_count).outerjoin(Cluster, Cluster.id == Node.cluster_id)
    count = select(func.count()).select_from(Node).outerjoin(Cluster, Cluster.id == Node.cluster_id)
    if cluster is not None:
        stmt, count = stmt.where(Cluster.name == cluster), count.where(Cluster.name == cluster)
    rows = session.execute(stmt.order_by(Node.name).limit(limit).offset(offset)).all()
    items = [
        NodeRead(
            name=n.name,
            cluster=cluster_name,
            hostname=n.hostname,
            provider=n.provider,
            instance_type=n.instance_type,
            region=n.region,
            labels=n.labels or {},
            agent_version=n.agent_version,
            gpus=gpus,
            last_seen=n.last_seen,
        )
        for n, cluster_name, gpus in rows
    ]
    return items, session.scalar(count) or 0


@dataclass(frozen=True)
class UtilizationPoint:
    gpu: str
    ts: datetime
    utilization: float | None


# Past this window the chart reads minute rollups: 10 s samples of a fleet are too many points.
RAW_CHART_MAX = timedelta(hours=2)


def utilization_since(
    session: Session, *, since: datetime, now: datetime | None = None
) -> list[UtilizationPoint]:
    """Every GPU's utilization since ``since``, labelled ``node/gpuN`` (minute means when long)."""
    long_window = (now or datetime.now(UTC)) - since > RAW_CHART_MAX
    gpu_id, ts, util = (
        (GpuMinuteRollup.gpu_id, GpuMinuteRollup.bucket, GpuMinuteRollup.utilization_mean)
        if long_window
        else (GpuSample.gpu_id, GpuSample.ts, GpuSample.utilization_gpu)
    )
    stmt = (
        select(Node.name, Gpu.index, ts, util)
        .join(Gpu, Gpu.id == gpu_id)
        .join(Node, Node.id == Gpu.node_id)
        .where(ts >= since)
        .order_by(Node.name, Gpu.index, ts)
    )
    return [
        UtilizationPoint(f"{node}/gpu{index}", at, value)
        for node, index, at, value in session.execute(stmt)
    ]
