"""Server-rendered pages: sign-in, the fleet utilization page and the spend report."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import plotly.io
import plotly.offline
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Role
from app.charts.spend import spend_figure
from app.charts.utilization import utilization_figure
from app.config import settings
from app.costs import service as costs_service
from app.costs.engine import GROUPS
from app.deps import SESSION_COOKIE, SessionDep
from app.errors import Unauthenticated
from app.kit.money import round_columns, round_money
from app.models import ApiKey
from app.nodes import service as nodes_service
from app.reports import render as reports_render
from app.reports import rounding as reports_rounding
from app.reports import service as reports_service
from app.reports.period import BadGroupBy, BadPeriod, parse_group_by, resolve_period, zone

router = APIRouter(include_in_schema=False)
SPEND_WINDOW = timedelta(hours=24)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _signed_in(request: Request, session: Session) -> ApiKey | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    try:
        return auth_service.authenticate_key(session, secret)
    except Unauthenticated:
        return None


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": next, "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        auth_service.authenticate_key(session, api_key.strip())
    except Unauthenticated:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": next, "error": "That API key is not valid."},
            status_code=401,
        )
    # Only local paths: an open redirect would let a link send a signed-in user anywhere.
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        api_key.strip(),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=7 * 24 * 3600,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _figure_json(session: Session) -> dict[str, Any]:
    window = timedelta(minutes=settings.chart_window_minutes)
    points = nodes_service.utilization_since(session, since=datetime.now(UTC) - window)
    fig = utilization_figure(
        points, title=f"GPU utilization, last {settings.chart_window_minutes} min"
    )
    result: dict[str, Any] = json.loads(plotly.io.to_json(fig))
    return result


def _script_json(value: Any) -> str:
    # Inside <script>, "</" would end the element early; "<\/" is the same JSON string.
    return json.dumps(value).replace("</", "<\\/")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> Response:
    key = _signed_in(request, session)
    if key is None:
        return _to_login(request)
    gpus, total = nodes_service.list_gpus(session, limit=1000)
    now = datetime.now(UTC)
    spend = _spend_table(session, now)
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "figure": _script_json(_figure_json(session)),
            "gpus": gpus,
            "total": total,
            "key": key,
            "spend": spend,
            "spend_hours": int(SPEND_WINDOW.total_seconds() // 3600),
        },
    )


SPEND_COLUMNS = ("cost", "billed_cost", "estimated_cost", "idle_cost", "unused_cost",
                 "unmeasured_cost")  # fmt: skip


def _spend_table(session: Session, now: datetime) -> dict[str, Any]:
    """GPU spend by team over the last day, rounded so that the rows add up to the total."""
    report = costs_service.cost_report(session, start=now - SPEND_WINDOW, end=now, group_by="team")
    teams = sorted(report.groups)
    rows: dict[str, dict[str, Any]] = dict(
        round_columns({t: report.groups[t] for t in teams}, SPEND_COLUMNS, report.currency)
    )
    for team in teams:
        rows[team]["unpriced_gpu_hours"] = report.groups[team]["unpriced_gpu_hours"]
    return {
        "currency": report.currency,
        "rows": rows,
        "total": round_money(report.total["cost"], report.currency),
        "unpriced_gpu_hours": report.total["unpriced_gpu_hours"],
        "pricing": report.pricing,
    }


@router.get("/charts/utilization.json")
def utilization_chart(request: Request, session: SessionDep) -> Response:
    if _signed_in(request, session) is None:
        return Response(status_code=401)
    return Response(json.dumps(_figure_json(session)), media_type="application/json")


@cache
def _plotly_js() -> str:
    return str(plotly.offline.get_plotlyjs())


@router.get("/static/plotly.min.js")
def plotly_js() -> Response:
    # Served locally: GPU Ledger pages must work on networks without internet access.
    return Response(
        _plotly_js(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


# The spend report page -------------------------------------------------------------------------

REPORT_PRESETS = (
    ("last-month", "Last full month"),
    ("mtd", "Month to date"),
    ("last-24h", "Last 24 h"),
    ("last-7d", "Last 7 days"),
    ("last-30d", "Last 30 days"),
)
REPORT_MONTHS = 12  # recent calendar months offered in the period picker
TOP_IDLE_OWNERS = 10


@cache
def _time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def _recent_months(now: datetime, tz: str) -> list[str]:
    try:
        first = now.astimezone(zone(tz)).date().replace(day=1)
    except BadPeriod:
        first = now.date().replace(day=1)
    months = []
    for _ in range(REPORT_MONTHS):
        first = (first - timedelta(days=1)).replace(day=1)
        months.append(f"{first:%Y-%m}")
    return months


def _report_query(
    period: str | None, start: str | None, end: str | None, tz: str, group_by: str
) -> dict[str, str]:
    """The form's choice as API arguments: 'custom' means from/to; any other period wins."""
    period = (period or "").strip()
    if period == "custom":
        period = ""
    elif period:
        start = end = None
    query = {
        "period": period,
        "from": (start or "").strip(),
        "to": (end or "").strip(),
        "tz": tz.strip() or "UTC",
        "group_by": group_by.strip() or "team",
    }
    return {k: v for k, v in query.items() if v}


def _spend_context(session: Session, query: dict[str, str], now: datetime) -> dict[str, Any]:
    groups = parse_group_by(query["group_by"])
    window = resolve_period(
        period=query.get("period"), start=query.get("from"), end=query.get("to"),
        tz=query["tz"], now=now,
    )  # fmt: skip
    report = reports_service.spend_report(
        session, start=window.start, end=window.end, tz=window.tz, label=window.label,
        group_by=groups, now=now,
    )  # fmt: skip
    views = reports_rounding.tables(report)
    title = f"GPU spend per day by {' and '.join(groups)}, {report.label}"
    charts = {
        t.currency: _script_json(
            json.loads(
                plotly.io.to_json(
                    spend_figure([d for d, _ in t.daily], currency=t.currency, title=title)
                )
            )
        )
        for t in views
    }
    local = zone(report.tz)
    return {
        "report": report,
        "tables": views,
        "charts": charts,
        "times": {
            name: getattr(report, name).astimezone(local).strftime("%Y-%m-%d %H:%M")
            for name in ("start", "end", "previous_start", "previous_end")
        }
        | {"generated": f"{report.generated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"},
        "coverage_notes": reports_render.coverage_notes(report),
        "idle_owners": [
            (o, round_money(o.idle_cost, o.currency))
            for o in report.top_idle_owners[:TOP_IDLE_OWNERS]
        ],
    }


@router.get("/reports/spend", response_class=HTMLResponse)
def spend_report_page(
    request: Request,
    session: SessionDep,
    period: str | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    tz: str = "UTC",
    group_by: str = "team",
) -> Response:
    key = _signed_in(request, session)
    if key is None:
        return _to_login(request)
    now = datetime.now(UTC)
    query = _report_query(period, start, end, tz, group_by)
    custom = "from" in query or "to" in query
    context: dict[str, Any] = {
        "key": key,
        "presets": REPORT_PRESETS,
        "months": _recent_months(now, query["tz"]),
        "time_zones": _time_zones(),
        "selected": query.get("period") or ("custom" if custom else "last-month"),
        "start": query.get("from", ""),
        "end": query.get("to", ""),
        "tz": query["tz"],
        "group_by": query["group_by"],
        "group_choices": [*GROUPS, "team,project"],
        "downloads": {
            f: f"/api/v1/reports/spend?{urlencode({**query, 'format': f})}"
            for f in ("csv", "xlsx", "json")
        },
        "error": None,
        "forbidden": False,
    }
    if not auth_service.role_allows(key.role, Role.FINANCE):
        context["forbidden"] = True
        return templates.TemplateResponse(request, "report.html", context, status_code=403)
    try:
        context.update(_spend_context(session, query, now))
    except (BadPeriod, BadGroupBy) as e:
        context["error"] = e.message
        return templates.TemplateResponse(request, "report.html", context, status_code=400)
    return templates.TemplateResponse(request, "report.html", context)
