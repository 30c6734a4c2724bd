"""Read models for nodes and GPUs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class GpuRead(BaseModel):
    uuid: str
    node: str
    index: int
    model: str | None
    memory_total_bytes: int | None
    status: str
    last_seen: datetime | None
    utilization: float | None
    memory_used_bytes: int | None
    power_watts: float | None


class GpuPage(BaseModel):
    items: list[GpuRead]
    total: int
    limit: int
    offset: int
