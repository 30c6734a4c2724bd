from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import Role, hash_secret, role_allows
from app.models import ApiKey, NodeToken
from tests.factories.nodes import create_api_key, create_node_token, make_batch


def _ingest(client: TestClient, session: Session, **kw) -> dict:
    batch = make_batch(**kw)
    token = create_node_token(session, node=batch["node"]["name"])
    r = client.post(
        "/api/v1/ingest", content=json.dumps(batch), headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    return batch


class TestSecrets:
    def test_tokens_and_keys_are_stored_hashed(self, session: Session) -> None:
        token = create_node_token(session)
        key = create_api_key(session)
        stored_token = session.scalars(select(NodeToken)).one()
        stored_key = session.scalars(select(ApiKey)).one()
        assert stored_token.token_hash == hash_secret(token)
        assert stored_key.key_hash == hash_secret(key)
        assert token not in (stored_token.token_hash, stored_token.prefix)
        assert key not in (stored_key.key_hash, stored_key.prefix)

    def test_role_order(self) -> None:
        assert role_allows("admin", Role.FINANCE)
        assert role_allows("finance", Role.VIEWER)
        assert not role_allows("finance", Role.SRE)
        assert not role_allows("viewer", Role.FINANCE)
        assert not role_allows("sre", Role.ADMIN)
        assert not role_allows("nonsense", Role.VIEWER)


class TestReadApi:
    def test_gpus_need_a_key(self, client: TestClient) -> None:
        assert client.get("/api/v1/gpus").status_code == 401
        assert (
            client.get("/api/v1/gpus", headers={"Authorization": "Bearer nope"}).status_code == 401
        )

    def test_node_token_is_not_an_api_key(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        assert (
            client.get("/api/v1/gpus", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )

    def test_lists_gpus_with_latest_utilization(self, client: TestClient, session: Session) -> None:
        _ingest(client, session, node="node-a", gpus=2, utilization=42.0)
        _ingest(client, session, node="node-b", gpus=1, utilization=7.0)
        key = create_api_key(session)
        r = client.get("/api/v1/gpus", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 3
        first = body["items"][0]
        assert first["uuid"] == "GPU-node-a-0"
        assert first["node"] == "node-a"
        assert first["model"] == "NVIDIA H100 80GB HBM3"
        assert first["utilization"] == 42.0
        assert first["last_seen"] == "2026-11-01T12:00:20Z"
        assert body["items"][2]["utilization"] == 7.0

    def test_pagination_and_node_filter(self, client: TestClient, session: Session) -> None:
        _ingest(client, session, node="node-a", gpus=3)
        key = create_api_key(session)
        auth = {"Authorization": f"Bearer {key}"}
        page = client.get("/api/v1/gpus?limit=2&offset=2", headers=auth).json()
        assert [g["uuid"] for g in page["items"]] == ["GPU-node-a-2"]
        assert page["total"] == 3
        assert client.get("/api/v1/gpus?node=other", headers=auth).json()["total"] == 0
        assert client.get("/api/v1/gpus?limit=0", headers=auth).status_code == 422


class TestOpenRoutes:
    def test_health_docs_and_login_are_open(self, client: TestClient) -> None:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/docs").status_code == 200
        assert "/api/v1/ingest" in client.get("/openapi.json").json()["paths"]
        assert client.get("/login").status_code == 200

    def test_pages_redirect_to_sign_in(self, client: TestClient) -> None:
        r = client.get("/", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
        assert client.get("/charts/utilization.json").status_code == 401

    def test_sign_in_sets_cookie_and_shows_chart(
        self, client: TestClient, session: Session
    ) -> None:
        key = create_api_key(session)
        bad = client.post("/login", data={"api_key": "wrong", "next": "/"}, follow_redirects=False)
        assert bad.status_code == 401
        r = client.post(
            "/login", data={"api_key": key, "next": "//evil.example"}, follow_redirects=False
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/"
        page = client.get("/")
        assert page.status_code == 200
        assert "utilization-chart" in page.text
        assert key not in page.text
