"""Typed helpers that write findings and the rollups behind them directly, for API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.models import Finding, Gpu, GpuMinuteRollup, HostMinuteRollup, Node

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def create_node(session: Session, *, name: str = "node-a", gpus: int = 2) -> tuple[Node, list[Gpu]]:
    node = Node(name=name, labels={}, created_at=T0)
    session.add(node)
    session.flush()
    devices = [
        Gpu(uuid=f"GPU-{name}-{i}", node_id=node.id, index=i, status="ok", created_at=T0)
        for i in range(gpus)
    ]
    session.add_all(devices)
    session.flush()
    return node, devices


def create_finding(
    session: Session,
    *,
    node: Node,
    gpu: Gpu | None = None,
    kind: str = "idle_allocated",
    state: str = "open",
    team: str = "ml",
    owner: str = "",
    started_at: datetime = T0,
    opened_at: datetime | None = None,
    minutes: int = 30,
    resolved: bool = False,
    cost_per_hour: str | None = "2.5",
    cost_so_far: str | None = "1.25",
    currency: str | None = "USD",
    cost_source: str = "price_book",
    evidence: dict[str, Any] | None = None,
) -> Finding:
    """A finding that began at ``started_at`` and held for ``minutes`` (resolved after them)."""
    last_seen = started_at + timedelta(minutes=minutes - 1)
    finding = Finding(
        kind=kind,
        state="resolved" if resolved else state,
        gpu_id=gpu.id if gpu is not None else None,
        node_id=node.id,
        team=team,
        owner=owner,
        started_at=started_at,
        opened_at=opened_at or started_at + timedelta(minutes=10),
        last_seen_at=last_seen,
        resolved_at=last_seen + timedelta(minutes=1) if resolved else None,
        cost_per_hour=None if cost_per_hour is None else Decimal(cost_per_hour),
        cost_so_far=None if cost_so_far is None else Decimal(cost_so_far),
        currency=currency,
        cost_source=cost_source,
        evidence=evidence if evidence is not None else {"utilization_mean": 0.4},
        updated_at=last_seen,
    )
    session.add(finding)
    session.flush()
    return finding


def create_minute_rollups(
    session: Session, *, node: Node, gpu: Gpu, start: datetime, minutes: int
) -> None:
    """GPU and host minute rollups for [start, start + minutes): utilization = minute index % 100,
    power 100 W + index, memory index GiB; iowait 0.5, pressure 0.25, 60 MB read per minute."""
    gpu_rows = [
        {
            "gpu_id": gpu.id,
            "bucket": start + timedelta(minutes=i),
            "samples": 6,
            "observed_seconds": 60.0,
            "utilization_mean": float(i % 100),
            "power_mean_watts": 100.0 + i,
            "memory_used_max_bytes": i * 2**30,
            "idle_seconds": 60.0,
            "low_util_seconds": 0.0,
            "busy_seconds": 0.0,
        }
        for i in range(minutes)
    ]
    host_rows = [
        {
            "node_id": node.id,
            "bucket": start + timedelta(minutes=i),
            "samples": 6,
            "observed_seconds": 60.0,
            "iowait_mean": 0.5,
            "io_pressure_some_mean": 0.25,
            "disk_read_bytes": 60_000_000.0,
        }
        for i in range(minutes)
    ]
    session.execute(insert(GpuMinuteRollup), gpu_rows)
    session.execute(insert(HostMinuteRollup), host_rows)
    session.flush()
