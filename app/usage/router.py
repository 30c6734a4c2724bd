"""``GET /api/v1/gpus/{uuid}/series`` and ``GET /api/v1/fleet/summary`` (viewer role)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query

from app.deps import NowDep, SessionDep, ViewerAuth
from app.errors import Forbidden, Unauthenticated, error_responses
from app.reports.period import BadPeriod, parse_instant
from app.usage import query
from app.usage.query import BadRange, GpuNotFound
from app.usage.schemas import FleetSummaryRead, SeriesPoint, SeriesRead

router = APIRouter(prefix="/api/v1", tags=["usage"])

TzQuery = Annotated[
    str, Query(description="IANA zone the answer's times are written in, e.g. Europe/Berlin")
]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        description="a date (the start of that day in tz) or ISO 8601 with offset; "
        "default: 'to' - 1 day",
    ),
]
ToQuery = Annotated[
    str | None,
    Query(
        alias="to", description="a date (that day included) or ISO 8601 with offset; default now"
    ),
]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise BadRange(f"unknown time zone {name!r}") from e


def _window(start: str | None, end: str | None, zone: ZoneInfo) -> tuple[datetime, datetime]:
    last = parse_instant(end, tz=zone, end=True) if end else datetime.now(UTC)
    first = parse_instant(start, tz=zone) if start else last - timedelta(days=1)
    return first, last


@router.get(
    "/gpus/{uuid}/series",
    response_model=SeriesRead,
    responses=error_responses(Unauthenticated, Forbidden, GpuNotFound, BadRange, BadPeriod),
)
def get_gpu_series(
    uuid: str,
    session: SessionDep,
    _key: ViewerAuth,
    metric: Annotated[str, Query(description=", ".join(query.METRICS))] = "utilization",
    start: FromQuery = None,
    end: ToQuery = None,
    step: Annotated[int | None, Query(ge=1, le=31 * 86400, description="seconds")] = None,
    tz: TzQuery = "UTC",
) -> SeriesRead:
    """A GPU's metric over time: raw samples, minute or hour rollups depending on the range."""
    zone = _zone(tz)
    first, last = _window(start, end, zone)
    series = query.gpu_series(
        session,
        uuid=uuid,
        metric=metric,
        start=first,
        end=last,
        step=timedelta(seconds=step) if step else None,
    )
    return SeriesRead(
        uuid=series.uuid,
        metric=series.metric,
        resolution=series.resolution,
        step_seconds=series.step_seconds,
        tz=tz,
        points=[SeriesPoint(ts=ts.astimezone(zone), value=v) for ts, v in series.points],
    )


@router.get(
    "/fleet/summary",
    response_model=FleetSummaryRead,
    responses=error_responses(Unauthenticated, Forbidden, BadRange, BadPeriod),
)
def get_fleet_summary(
    session: SessionDep,
    _key: ViewerAuth,
    now: NowDep,
    start: FromQuery = None,
    end: ToQuery = None,
    tz: TzQuery = "UTC",
) -> FleetSummaryRead:
    """GPUs by state now; GPU-hours, mean utilization, power and energy over the window."""
    zone = _zone(tz)
    first, last = _window(start, end, zone)
    s = query.fleet_summary(session, start=first, end=last, now=now)
    return FleetSummaryRead(
        start=s.start.astimezone(zone),
        end=s.end.astimezone(zone),
        tz=tz,
        gpus_by_state=s.gpus_by_state,
        gpu_hours=s.gpu_hours,
        utilization_mean=s.utilization_mean,
        power_mean_watts=s.power_mean_watts,
        energy_joules=s.energy_joules,
        energy_kwh=s.energy_joules / 3.6e6,
        idle_seconds=s.idle_seconds,
        low_util_seconds=s.low_util_seconds,
        busy_seconds=s.busy_seconds,
    )
