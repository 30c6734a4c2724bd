"""What each GPU is doing now: busy, idle and held, idle and free, starved, stale or lost.

One classification for the fleet page, the fleet summary API and ``/metrics``, from what is
stored: the GPU's health (NVML status), when it last reported, its latest sample (utilization,
and whether a job or pod holds it or a process runs on it) and whether a data-starvation finding
is open on it. NVML health alone says "ok" for a GPU that a job holds and does nothing with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.config import settings
from app.models import Finding, Gpu, GpuSample

STATES = ("busy", "idle_held", "idle_free", "starved", "stale", "lost", "unknown")
STALE_AFTER = timedelta(seconds=150)  # 3 intervals x 5 at the default 10 s (DESIGN.md)


@dataclass(frozen=True)
class GpuNow:
    """What the state is decided from."""

    status: str  # NVML health: ok, lost, error, reset_required, driver_mismatch
    last_seen: datetime | None
    utilization: float | None  # latest sample, percent
    held: bool  # a job or pod holds it, or a process runs on it (latest sample)
    starved: bool  # a data_starvation finding is open on it


def gpu_state(gpu: GpuNow, *, now: datetime, idle_percent: float | None = None) -> str:
    """One of ``STATES``: health first, then silence, then what the latest sample shows."""
    idle_below = settings.idle_utilization_percent if idle_percent is None else idle_percent
    if gpu.status != "ok":
        return "lost"
    if gpu.last_seen is None or gpu.last_seen < now - STALE_AFTER:
        return "stale"
    if gpu.starved:
        return "starved"
    if gpu.utilization is None:
        return "unknown"
    if gpu.utilization < idle_below:
        return "idle_held" if gpu.held else "idle_free"
    return "busy"


def current(session: Session, gpu_ids: list[int] | None = None) -> dict[int, GpuNow]:
    """Each GPU's ``GpuNow`` from its latest sample (one query) and its open starvation."""
    s = GpuSample
    held = or_(s.process_count > 0, s.alloc_job_id.is_not(None), s.alloc_pod.is_not(None),
               s.alloc_user.is_not(None))  # fmt: skip
    stmt = select(Gpu.id, Gpu.status, Gpu.last_seen, s.utilization_gpu, held).outerjoin(
        s, and_(s.gpu_id == Gpu.id, s.ts == Gpu.last_seen)
    )
    starving = select(Finding.gpu_id).where(
        Finding.kind == "data_starvation", Finding.state == "open", Finding.gpu_id.is_not(None)
    )
    if gpu_ids is not None:
        stmt = stmt.where(Gpu.id.in_(gpu_ids))
        starving = starving.where(Finding.gpu_id.in_(gpu_ids))
    starved = set(session.scalars(starving))
    return {
        gpu_id: GpuNow(status, last_seen, util, bool(is_held), gpu_id in starved)
        for gpu_id, status, last_seen, util, is_held in session.execute(stmt)
    }


def count(session: Session, *, now: datetime) -> dict[str, int]:
    """How many GPUs are in each state now (every state listed, 0 included)."""
    out = dict.fromkeys(STATES, 0)
    for gpu in current(session).values():
        out[gpu_state(gpu, now=now)] += 1
    return out
