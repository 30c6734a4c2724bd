"""Inventory API: nodes and GPUs with filters and pagination."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.app.usage.conftest import Ingest
from tests.factories.nodes import create_api_key, make_batch


def test_nodes_and_gpu_filters(client: TestClient, session: Session, ingest: Ingest) -> None:
    assert client.get("/api/v1/nodes").status_code == 401  # (its rollback would undo the setup)
    ingest(make_batch(node="node-a", gpus=2))
    other = make_batch(node="node-b", gpus=3)
    other["node"]["cluster"] = "other"
    ingest(other)
    headers = {"Authorization": f"Bearer {create_api_key(session)}"}
    r = client.get("/api/v1/nodes", headers=headers)
    assert r.status_code == 200, r.text
    nodes = r.json()
    assert nodes["total"] == 2
    assert [(n["name"], n["gpus"], n["cluster"]) for n in nodes["items"]] == [
        ("node-a", 2, "test"),
        ("node-b", 3, "other"),
    ]
    page = client.get("/api/v1/nodes", params={"limit": 1, "offset": 1}, headers=headers).json()
    assert [n["name"] for n in page["items"]] == ["node-b"]
    gpus = client.get("/api/v1/gpus", params={"cluster": "other"}, headers=headers).json()
    assert gpus["total"] == 3
    assert {g["node"] for g in gpus["items"]} == {"node-b"}
    assert (
        client.get("/api/v1/gpus", params={"status": "lost"}, headers=headers).json()["total"] == 0
    )
