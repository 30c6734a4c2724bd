"""API shapes of findings. Times are ISO 8601 UTC; money is text in the currency's minor unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field


class FindingLinks(BaseModel):
    self: str = Field(description="this finding in the API, with its evidence and series")
    page: str = Field(description="this finding's page in the web UI")


class FindingRead(BaseModel):
    id: int
    kind: str
    state: str = Field(description="open or resolved")
    node: str
    gpu_uuid: str | None = Field(description="null for a node-level finding (stale_agent)")
    gpu_index: int | None
    team: str | None
    owner: str | None = Field(description="job, pod or user holding the GPU; null when none")
    started_at: datetime = Field(description="first minute of the episode")
    opened_at: datetime = Field(description="when it had lasted long enough to be reported")
    last_seen_at: datetime = Field(description="start of the last minute the condition held")
    resolved_at: datetime | None
    duration_seconds: float = Field(
        description="started_at to resolved_at, or to the end of the last minute seen"
    )
    cost_per_hour: str | None = Field(description="rounded to the currency's minor unit")
    cost_so_far: str | None
    currency: str | None
    cost_source: str
    acked: bool
    acked_at: datetime | None
    acked_by: str | None = Field(description="name and id of the API key that acknowledged it")
    snoozed: bool = Field(description="snoozed_until is after the time of the request")
    snoozed_until: datetime | None
    links: FindingLinks


class FindingPage(BaseModel):
    items: list[FindingRead]
    total: int = Field(description="findings matching the filters, over all pages")
    limit: int
    next_cursor: str | None = Field(description="pass as 'cursor' for the next page")
    next: str | None = Field(description="the next page's URL (path and query)")


class GpuPoint(BaseModel):
    ts: datetime
    utilization: float | None = Field(description="percent, mean")
    power_watts: float | None = Field(description="mean")
    memory_used_bytes: int | None = Field(description="max")


class HostPoint(BaseModel):
    ts: datetime
    iowait_ratio: float | None = Field(description="0-1, mean")
    io_pressure_some_ratio: float | None = Field(description="0-1, mean (PSI 'some')")
    disk_read_bytes_per_second: float | None = Field(description="mean")


class FindingSeries(BaseModel):
    start: datetime = Field(description="the finding's window with context before and after")
    end: datetime
    resolution: str = Field(description="minute or hour: the rollups read")
    step_seconds: int = Field(description="width of each point (rollups merged when longer)")
    gpu: list[GpuPoint]
    host: list[HostPoint]


class FindingDetail(FindingRead):
    evidence: dict[str, Any]
    series: FindingSeries


class SnoozeRequest(BaseModel):
    until: AwareDatetime = Field(description="with a UTC offset, after the time of the request")
