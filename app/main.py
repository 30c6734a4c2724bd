"""The ASGI application: routers, error rendering, health, embedded background jobs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app import __version__
from app.billing.router import router as billing_router
from app.config import settings
from app.costs.router import router as costs_router
from app.db import get_engine
from app.errors import AppError
from app.findings.metrics import router as metrics_router
from app.findings.router import router as findings_router
from app.ingest.router import router as ingest_router
from app.kit.validation import PayloadInvalid, field_errors, summarize
from app.nodes.router import router as nodes_router
from app.reports.router import router as reports_router
from app.scheduler import PERIODIC_JOBS, EmbeddedScheduler
from app.usage.router import router as usage_router
from app.web.router import router as web_router

log = logging.getLogger(__name__)


def _error(status: int, error: str, message: str, detail: object = None) -> JSONResponse:
    body: dict[str, object] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def create_app(*, embedded_jobs: bool | None = None) -> FastAPI:
    """Build the app; ``embedded_jobs`` runs periodic jobs in-process (default: when no Redis)."""
    run_jobs = settings.redis_url is None if embedded_jobs is None else embedded_jobs

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        get_engine()
        scheduler = EmbeddedScheduler() if run_jobs and PERIODIC_JOBS else None
        if scheduler is not None:
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()

    app = FastAPI(
        title="GPU Ledger",
        version=__version__,
        description="What every GPU-hour cost, what it did, and who should hear about the waste.",
        lifespan=lifespan,
    )

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return _error(exc.status_code, exc.error, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return _error(422, PayloadInvalid.error, summarize(errors), field_errors(errors))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness and database reachability (open: no credential needed)."""
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    app.include_router(ingest_router)
    app.include_router(billing_router)
    app.include_router(costs_router)
    app.include_router(nodes_router)
    app.include_router(usage_router)
    app.include_router(reports_router)
    app.include_router(findings_router)
    app.include_router(metrics_router)
    app.include_router(web_router)
    return app
