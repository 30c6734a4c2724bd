"""Minute rollups written directly, from compact per-minute patterns, for detector tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.findings import service
from app.models import CostLedgerHour, Finding, Gpu, GpuMinuteRollup, HostMinuteRollup, Node

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
JOB = {"job_id": "4242", "user": "ana", "namespace": "ml", "account": "vision"}


@dataclass(frozen=True)
class G:
    """One GPU minute: utilization %, power W, memory bytes, who holds it (None: nobody)."""

    util: float | None = 0.0
    power: float | None = 70.0
    memory: int = 2 * 1024**3
    holder: dict[str, str] | None = None
    util_max: float | None = None


def held(util: float, power: float = 300.0, **kw: Any) -> G:
    return G(util=util, power=power, holder=JOB, **kw)


def free(util: float = 0.0, power: float = 60.0) -> G:
    return G(util=util, power=power, holder=None)


@dataclass(frozen=True)
class H:
    """One host minute: iowait and I/O pressure (ratios), disk read rate (bytes/s)."""

    iowait: float = 0.01
    pressure: float | None = None
    disk: float = 1e6
    samples: int = 6


def make_node(
    session: Session,
    *,
    name: str = "node-a",
    gpus: int = 1,
    model: str = "NVIDIA H100 80GB HBM3",
    labels: dict[str, str] | None = None,
) -> tuple[Node, list[Gpu]]:
    node = Node(name=name, labels=labels or {}, created_at=T0, provider="aws",
                instance_type="p5.48xlarge")  # fmt: skip
    session.add(node)
    session.flush()
    devices = [
        Gpu(
            uuid=f"GPU-{name}-{i}",
            node_id=node.id,
            index=i,
            model=model,
            status="ok",
            memory_total_bytes=80 * 1024**3,
            created_at=T0,
        )
        for i in range(gpus)
    ]
    session.add_all(devices)
    session.flush()
    return node, devices


def write_gpu(
    session: Session, gpu: Gpu, minutes: Sequence[G | None], *, start: datetime = T0
) -> None:
    """One rollup row per minute from ``start``; None leaves the minute without data."""
    rows = []
    for k, m in enumerate(minutes):
        if m is None:
            continue
        owners = [{**m.holder, "seconds": 60.0}] if m.holder else None
        util = m.util
        rows.append(
            {
                "gpu_id": gpu.id,
                "bucket": start + k * MINUTE,
                "samples": 6,
                "observed_seconds": 60.0,
                "utilization_mean": util,
                "utilization_max": m.util_max if m.util_max is not None else util,
                "memory_used_max_bytes": m.memory,
                "power_mean_watts": m.power,
                "energy_joules": None if m.power is None else m.power * 60.0,
                "idle_seconds": 60.0 if (util or 0) < 5 else 0.0,
                "low_util_seconds": 0.0,
                "busy_seconds": 0.0 if (util or 0) < 5 else 60.0,
                "owners": owners,
            }
        )
    if rows:
        session.execute(insert(GpuMinuteRollup), rows)
    _seen(session, gpu.node_id, start + len(minutes) * MINUTE, gpu)


def write_host(
    session: Session, node: Node, minutes: Sequence[H | None], *, start: datetime = T0
) -> None:
    rows = [
        {
            "node_id": node.id,
            "bucket": start + k * MINUTE,
            "samples": m.samples,
            "observed_seconds": 60.0,
            "cpu_busy_mean": 0.2,
            "iowait_mean": m.iowait,
            "iowait_max": m.iowait,
            "io_pressure_some_mean": m.pressure,
            "io_pressure_full_mean": None,
            "disk_read_bytes": m.disk * 60,
            "disk_read_bytes_per_s_max": m.disk,
        }
        for k, m in enumerate(minutes)
        if m is not None
    ]
    if rows:
        session.execute(insert(HostMinuteRollup), rows)
    present = [k for k, m in enumerate(minutes) if m is not None]
    if present:
        _seen(session, node.id, start + present[-1] * MINUTE + timedelta(seconds=50), None)


def _seen(session: Session, node_id: int, until: datetime, gpu: Gpu | None) -> None:
    node = session.get(Node, node_id)
    assert node is not None
    last = until - timedelta(seconds=10)
    if node.last_seen is None or last > node.last_seen:
        node.last_seen = last
    if gpu is not None and (gpu.last_seen is None or last > gpu.last_seen):
        gpu.last_seen = last
    session.flush()


def write_ledger(
    session: Session,
    gpu: Gpu,
    hours: Sequence[datetime],
    *,
    hourly: str = "4.00",
    source: str = "estimated",
    currency: str = "USD",
    owner: str = "job 4242 (vision)",
) -> None:
    """The ledger's price of the GPU's hours: ``hourly`` for a whole observed hour."""
    price = Decimal(hourly)
    session.execute(
        insert(CostLedgerHour),
        [
            {
                "node_id": gpu.node_id,
                "hour": h,
                "gpu_id": gpu.id,
                "owner": owner,
                "currency": currency,
                "team": "ml",
                "project": "",
                "source": source,
                "gpu_seconds": 3600.0,
                "cost": price if source != "unpriced" else Decimal(0),
                "utilized_cost": Decimal(0),
                "idle_cost": Decimal(0),
                "unused_cost": Decimal(0),
                "unmeasured_cost": Decimal(0),
                "energy_joules": 0.0,
                "energy_cost": Decimal(0),
            }
            for h in hours
        ],
    )


def findings(session: Session, kind: str | None = None) -> list[Finding]:
    session.expire_all()
    stmt = select(Finding).order_by(
        Finding.kind, Finding.node_id, Finding.gpu_id, Finding.started_at
    )
    if kind is not None:
        stmt = stmt.where(Finding.kind == kind)
    return list(session.scalars(stmt))


def evaluate(session: Session, at: datetime) -> service.EvaluateStats:
    return service.evaluate(session, now=at)


def snapshot(session: Session) -> list[tuple[Any, ...]]:
    """Every finding's public fields, comparable across runs."""
    gpus = {g.id: g.uuid for g in session.scalars(select(Gpu))}
    nodes = {n.id: n.name for n in session.scalars(select(Node))}
    return sorted(
        (f.kind, f.state, gpus.get(f.gpu_id or 0, ""), nodes[f.node_id], f.team, f.owner,
         f.started_at, f.opened_at, f.last_seen_at, f.resolved_at, f.cost_per_hour,
         f.cost_so_far, f.currency, f.cost_source, json.dumps(f.evidence, sort_keys=True))
        for f in findings(session)
    )  # fmt: skip


def random_scenario(session: Session, seed: int, *, minutes: int = 300) -> list[Gpu]:
    """Three GPUs and their node over ``minutes``: busy, idle, free, low, saw-toothed, hot and
    evaluation stretches, I/O waits and node silences, drawn from ``seed``; priced hourly."""
    import random

    rnd = random.Random(seed)
    node, gpus = make_node(session, gpus=3)
    io = 0.01
    host: list[H | None] = []
    for _ in range(minutes):
        if rnd.random() < 0.03:
            io = rnd.choice([0.01, 0.3, 0.5, 0.15])
        host.append(None if rnd.random() < 0.01 else H(iowait=io))
    k = 0
    while k < minutes:
        if rnd.random() < 0.01:  # a silence of 1-8 minutes
            length = rnd.randint(1, 8)
            host[k : k + length] = [None] * len(host[k : k + length])
            k += length
        k += 1
    write_host(session, node, host)
    for gpu in gpus:
        mode, seq = "busy", []
        for k in range(minutes):
            if rnd.random() < 0.06:
                mode = rnd.choice(["busy", "idle", "free", "low", "saw", "hot", "eval"])
            seq.append(None if host[k] is None else _minute(rnd, mode))
        write_gpu(session, gpu, seq)
        write_ledger(session, gpu, [T0 + timedelta(hours=h) for h in range(minutes // 60 + 1)])
    return gpus


def _minute(rnd: Any, mode: str) -> G:
    if mode == "busy":
        return held(rnd.uniform(70, 100))
    if mode == "idle":
        return held(rnd.choice([0, 0, 1, 3, 7]), power=rnd.choice([80, 200]))
    if mode == "free":
        return free(0, power=rnd.choice([60, 150]))
    if mode == "low":
        return held(rnd.uniform(20, 50))
    if mode == "saw":
        return held(rnd.choice([10, 90]))
    if mode == "hot":
        return free(0, power=250)
    return held(rnd.uniform(6, 14))  # an evaluation phase
