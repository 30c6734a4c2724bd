"""The backend's Prometheus ``/metrics``: open findings and their cost per hour, GPUs by state.

Everything is read at scrape time by a ``Collector`` over the request's session, in a registry
of its own (never prometheus-client's global one), so no request code sets a gauge. Scrapes
carry ``Authorization: Bearer <GPULEDGER_METRICS_TOKEN>``; ``GPULEDGER_METRICS_OPEN=true``
serves them without one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.orm import Session

from app.config import settings
from app.deps import NowDep, SessionDep, bearer_secret
from app.errors import Forbidden, Unauthenticated, error_responses
from app.findings import queries
from app.usage import query as usage_query

router = APIRouter(tags=["metrics"])


class FindingsCollector(Collector):
    """Open findings by kind and team, their summed cost per hour, and GPUs by state."""

    def __init__(self, session: Session, *, now: datetime) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        open_findings = GaugeMetricFamily(
            "gpuledger_findings_open", "Findings open now.", labels=["kind", "team"]
        )
        waste = GaugeMetricFamily(
            "gpuledger_waste_dollars_per_hour",
            "Summed cost per hour of the priced open findings, in the currency of the label.",
            labels=["kind", "team", "currency"],
        )
        counts: dict[tuple[str, str], int] = {}
        for group in queries.open_findings_by_group(self.session):
            key = (group.kind, group.team)
            counts[key] = counts.get(key, 0) + group.findings
            if group.currency is not None and group.cost_per_hour is not None:
                waste.add_metric([group.kind, group.team, group.currency], group.cost_per_hour)
        for (kind, team), n in sorted(counts.items()):
            open_findings.add_metric([kind, team], n)
        gpus = GaugeMetricFamily(
            "gpuledger_gpus",
            "GPUs now, by state (busy, idle, starved, stale, lost, ...).",
            labels=["state"],
        )
        for state, n in usage_query.gpus_by_state(self.session, now=self.now).items():
            gpus.add_metric([state], n)
        yield open_findings
        yield waste
        yield gpus


def require_scrape_token(request: Request) -> None:
    """Admit a scrape with the metrics token, or any scrape when metrics are configured open."""
    if settings.metrics_open:
        return
    given = bearer_secret(request.headers.get("authorization"))
    if given is None:
        raise Unauthenticated(
            "missing scrape token: send 'Authorization: Bearer <GPULEDGER_METRICS_TOKEN>'"
        )
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if not expected:
        raise Forbidden(
            "/metrics is closed: set GPULEDGER_METRICS_TOKEN (or GPULEDGER_METRICS_OPEN=true)"
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("invalid scrape token")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}},
        **error_responses(Unauthenticated, Forbidden),
    },
)
def get_metrics(
    request: Request,
    _token: Annotated[None, Depends(require_scrape_token)],
    session: SessionDep,
    now: NowDep,
) -> Response:
    """Prometheus metrics of the fleet (scrape token: ``GPULEDGER_METRICS_TOKEN``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FindingsCollector(session, now=now))
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type)
