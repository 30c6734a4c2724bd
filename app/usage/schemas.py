"""API shapes of the usage domain. Times are ISO 8601; UTC unless the caller asked for ``tz``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class SeriesPoint(BaseModel):
    ts: datetime
    value: float | None


class SeriesRead(BaseModel):
    uuid: str
    metric: str
    resolution: str
    step_seconds: float | None
    tz: str
    points: list[SeriesPoint]


class FleetSummaryRead(BaseModel):
    start: datetime
    end: datetime
    tz: str
    gpus_by_state: dict[str, int]
    gpu_hours: float
    utilization_mean: float | None
    power_mean_watts: float | None
    energy_joules: float
    energy_kwh: float
    idle_seconds: float
    low_util_seconds: float
    busy_seconds: float
