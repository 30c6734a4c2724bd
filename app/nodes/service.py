"""Inventory queries: GPUs with their latest sample, utilization over a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.models import Gpu, GpuSample, Node
from app.nodes.schemas import GpuRead


def list_gpus(
    session: Session, *, node: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[GpuRead], int]:
    """GPUs ordered by node and index, each with its most recent sample's figures."""
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
    if node is not None:
        stmt = stmt.where(Node.name == node)
        count = count.where(Node.name == node)
    rows = session.execute(stmt.order_by(Node.name, Gpu.index).limit(limit).offset(offset)).all()
    items = [
        GpuRead(
            uuid=gpu.uuid,
            node=node_name,
            index=gpu.index,
            model=gpu.model,
            memory_total_bytes=gpu.memory_total_bytes,
            status=gpu.status,
            last_seen=gpu.last_seen,
            utilization=util,
            memory_used_bytes=mem,
            power_watts=power,
        )
        for gpu, node_name, util, mem, power in rows
    ]
    return items, session.scalar(count) or 0


@dataclass(frozen=True)
class UtilizationPoint:
    gpu: str
    ts: datetime
    utilization: float | None


def utilization_since(session: Session, *, since: datetime) -> list[UtilizationPoint]:
    """Every GPU's utilization samples since ``since``, labelled ``node/gpuN``."""
    stmt = (
        select(Node.name, Gpu.index, GpuSample.ts, GpuSample.utilization_gpu)
        .join(Gpu, Gpu.id == GpuSample.gpu_id)
        .join(Node, Node.id == Gpu.node_id)
        .where(GpuSample.ts >= since)
        .order_by(Node.name, Gpu.index, GpuSample.ts)
    )
    return [
        UtilizationPoint(f"{node}/gpu{index}", ts, util)
        for node, index, ts, util in session.execute(stmt)
    ]
