"""Read models for nodes and GPUs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class GpuRead(BaseModel):
    uuid: str
    node: str
    index: int
    model: str | None
    memory_total_bytes: int | None
    status: str  # NVML health
    state: str = "unknown"  # busy, idle_held, idle_free, starved, stale, lost (app.usage.states)
    last_seen: datetime | None
    utilization: float | None
    memory_used_bytes: int | None
    power_watts: float | None


class GpuPage(BaseModel):
    items: list[GpuRead]
    total: int
    limit: int
    offset: int


class NodeRead(BaseModel):
    name: str
    cluster: str | None
    hostname: str | None
    provider: str | None
    instance_type: str | None
    region: str | None
    labels: dict[str, Any]
    agent_version: str | None
    gpus: int
    last_seen: datetime | None


class NodePage(BaseModel):
    items: list[NodeRead]
    total: int
    limit: int
    offset: int
