"""Server-rendered pages: sign-in and the fleet utilization page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import plotly.io
import plotly.offline
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.charts.utilization import utilization_figure
from app.config import settings
from app.costs import service as costs_service
from app.deps import SESSION_COOKIE, SessionDep
from app.errors import Unauthenticated
from app.models import ApiKey
from app.nodes import service as nodes_service

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
    spend = costs_service.cost_report(session, start=now - SPEND_WINDOW, end=now, group_by="team")
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
