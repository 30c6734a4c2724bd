"""Reports API: the GPU spend report for a period, as JSON, CSV or XLSX (finance and admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from app.auth.service import Role
from app.costs.engine import GROUPS
from app.deps import SessionDep, require_role
from app.errors import Forbidden, Unauthenticated, error_responses
from app.models import ApiKey
from app.reports import render
from app.reports import service as reports_service
from app.reports.period import PERIOD_HELP, BadGroupBy, BadPeriod, parse_group_by, resolve_period

router = APIRouter(prefix="/api/v1", tags=["reports"])
FinanceAuth = Annotated[ApiKey, Depends(require_role(Role.FINANCE))]
Format = Literal["json", "csv", "xlsx"]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(BadGroupBy, BadPeriod, Unauthenticated, Forbidden),
    400: {"description": "bad_period or bad_group_by: the period, dates, zone or grouping"},
    200: {
        "description": "The report: JSON, or a CSV / XLSX attachment (`format`)",
        "content": {render.MEDIA_TYPES["csv"]: {}, render.MEDIA_TYPES["xlsx"]: {}},
    },
}


@router.get("/reports/spend", response_class=JSONResponse, responses=_RESPONSES)
def get_spend_report(
    session: SessionDep,
    _key: FinanceAuth,
    period: Annotated[str | None, Query(description=PERIOD_HELP)] = None,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="YYYY-MM-DD (start of that day in tz) or ISO 8601 with offset; "
            "instead of period",
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="YYYY-MM-DD, INCLUSIVE (the report ends at the start of the next day), "
            "or ISO 8601 with offset (exclusive); default now",
        ),
    ] = None,
    tz: Annotated[str, Query(description="IANA time zone of days and months")] = "UTC",
    group_by: Annotated[
        str, Query(description=f"one or two (comma-separated) of {', '.join(GROUPS)}")
    ] = "team",
    format: Format = "json",
) -> Response:
    """GPU spend by group over a period, with the previous period, coverage and idle owners.

    Rounded amounts add up: the lines to each currency's total, a group's days to its cost.
    """
    groups = parse_group_by(group_by)
    now = datetime.now(UTC)
    window = resolve_period(period=period, start=start, end=end, tz=tz, now=now)
    report = reports_service.spend_report(
        session, start=window.start, end=window.end, tz=window.tz, label=window.label,
        group_by=groups, now=now,
    )  # fmt: skip
    if format == "json":
        return JSONResponse(render.to_json(report))
    body: str | bytes = render.to_csv(report) if format == "csv" else render.to_xlsx(report)
    name = render.file_name(report, format)
    return Response(
        body,
        media_type=render.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
