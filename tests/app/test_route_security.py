"""Every API route refuses a caller without a credential: only health, sign-in and docs are open.

``/metrics`` is not open either: it takes the scrape token (``GPULEDGER_METRICS_TOKEN``), and
neither an API key nor a node token stands in for it.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.auth.service import Role
from app.config import settings
from app.main import create_app
from tests.factories.nodes import create_api_key, create_node_token

OPEN = {"/healthz"}
SCRAPE = {"/metrics"}  # Prometheus, with the scrape token
# Server-rendered pages are not in the OpenAPI document.
PAGES = [("GET", "/"), ("GET", "/charts/utilization.json"), ("GET", "/reports/spend")]


def _routes() -> list[tuple[str, str]]:
    """Every documented operation except health, and the pages."""
    paths = create_app(embedded_jobs=False).openapi()["paths"]
    api = [(m.upper(), p) for p, ops in paths.items() if p not in OPEN for m in ops]
    return sorted(api) + PAGES


ROUTES = _routes()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_api_is_covered() -> None:
    paths = {p for _, p in ROUTES}
    for expected in (
        "/api/v1/ingest",
        "/api/v1/gpus",
        "/api/v1/costs",
        "/api/v1/billing/imports",
        "/api/v1/findings",
        "/api/v1/findings/{finding_id}/ack",
        "/metrics",
        "/",
    ):
        assert expected in paths


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_credential_no_access(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, _concrete(path), follow_redirects=False)
    if path.startswith("/api/") or path in SCRAPE:
        assert r.status_code == 401, r.text
    else:  # pages send people to the sign-in page
        assert r.status_code in (303, 401), r.text


@pytest.mark.parametrize(
    ("method", "path"), [r for r in ROUTES if r[1].startswith("/api/") and r[1] != "/api/v1/ingest"]
)
def test_node_token_is_not_an_api_key(client: TestClient, session, method: str, path: str) -> None:
    token = create_node_token(session)
    r = client.request(method, _concrete(path), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        r
        for r in ROUTES
        if r[0] in ("POST", "PUT", "DELETE", "PATCH")
        and r[1] != "/api/v1/ingest"
        and r[1].startswith("/api/")
    ],
)
def test_viewer_cannot_write(client: TestClient, session, method: str, path: str) -> None:
    key = create_api_key(session)
    r = client.request(method, _concrete(path), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("path", sorted(SCRAPE))
def test_api_credentials_do_not_scrape(
    client: TestClient, session, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setattr(settings, "metrics_token", SecretStr("the-scrape-token"))
    secrets = [create_api_key(session, role=role) for role in Role] + [create_node_token(session)]
    session.commit()  # a refused request rolls the test session back to here
    for secret in secrets:
        r = client.get(path, headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401, r.text
    ok = client.get(path, headers={"Authorization": "Bearer the-scrape-token"})
    assert ok.status_code == 200
