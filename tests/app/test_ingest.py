from __future__ import annotations

import gzip
import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Gpu, GpuProcessSample, GpuSample, HostSample, Node
from tests.factories.nodes import create_node_token, make_batch


def _post(client: TestClient, token: str | None, body: bytes | dict, **headers: str):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(
        "/api/v1/ingest", content=data, headers={"Content-Type": "application/json", **headers}
    )


def _count(session: Session, model) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


class TestIngest:
    def test_stores_batch_and_counts(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        r = _post(client, token, make_batch(gpus=2, samples_per_gpu=3))
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 6
        assert r.json()["duplicates"] == 0
        assert r.json()["host_inserted"] == 3
        assert _count(session, GpuSample) == 6
        assert _count(session, GpuProcessSample) == 6
        assert _count(session, HostSample) == 3
        node = session.scalars(select(Node).where(Node.name == "node-a")).one()
        assert node.labels == {"team": "ml"}
        assert node.last_seen is not None
        assert node.last_seen.utcoffset() is not None

    def test_retried_batch_is_stored_once(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch()
        assert _post(client, token, batch).json()["inserted"] == 6
        again = _post(client, token, batch).json()
        assert again["inserted"] == 0
        assert again["duplicates"] == 6
        assert again["host_duplicates"] == 3
        assert _count(session, GpuSample) == 6

    def test_gzip_body(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        body = gzip.compress(json.dumps(make_batch()).encode())
        r = _post(client, token, body, **{"Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 6

    def test_gzip_bomb_is_refused(self, client: TestClient, session: Session, monkeypatch) -> None:
        monkeypatch.setattr("app.ingest.router.MAX_BODY_BYTES", 10_000)
        token = create_node_token(session)
        body = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
        r = _post(client, token, body, **{"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert _count(session, GpuSample) == 0

    def test_missing_token_is_401(self, client: TestClient) -> None:
        r = _post(client, None, make_batch())
        assert r.status_code == 401
        assert r.json()["error"] == "unauthenticated"

    def test_bad_token_is_401(self, client: TestClient, session: Session) -> None:
        create_node_token(session)
        r = _post(client, "gpln_not-a-real-token", make_batch())
        assert r.status_code == 401

    def test_other_nodes_token_is_403_and_writes_nothing(
        self, client: TestClient, session: Session
    ) -> None:
        create_node_token(session, node="node-a")
        token_b = create_node_token(session, node="node-b")
        r = _post(client, token_b, make_batch(node="node-a"))
        assert r.status_code == 403
        assert "node-b" in r.json()["message"]
        assert _count(session, GpuSample) == 0

    def test_gpu_of_another_node_is_403_and_nothing_is_half_written(
        self, client: TestClient, session: Session
    ) -> None:
        token_a = create_node_token(session, node="node-a")
        token_b = create_node_token(session, node="node-b")
        assert _post(client, token_a, make_batch(node="node-a", gpus=1)).status_code == 200
        stolen = make_batch(node="node-b", gpus=1)
        stolen["gpus"].append({"uuid": "GPU-node-a-0", "index": 1})
        r = _post(client, token_b, stolen)
        assert r.status_code == 403
        assert _count(session, GpuSample) == 3  # node-a's only; node-b's own samples were not kept
        assert (
            session.scalar(
                select(func.count()).select_from(Gpu).join(Node).where(Node.name == "node-b")
            )
            == 0
        )

    def test_malformed_json_is_422(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        r = _post(client, token, b'{"schema_version": 1, "node": ')
        assert r.status_code == 422
        assert r.json()["error"] == "invalid_payload"

    def test_bad_value_names_the_field(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch()
        batch["samples"][1]["utilization_gpu"] = 250
        r = _post(client, token, batch)
        assert r.status_code == 422
        fields = [e["field"] for e in r.json()["detail"]]
        assert "samples[1].utilization_gpu" in fields
        assert _count(session, GpuSample) == 0

    def test_naive_timestamp_is_refused(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch()
        batch["samples"][0]["ts"] = "2026-11-01T12:00:00"
        r = _post(client, token, batch)
        assert r.status_code == 422
        assert any(e["field"] == "samples[0].ts" for e in r.json()["detail"])

    def test_unknown_schema_version_is_422(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch()
        batch["schema_version"] = 99
        r = _post(client, token, batch)
        assert r.status_code == 422
        assert r.json()["detail"][0]["field"] == "schema_version"

    def test_sample_for_unlisted_gpu_is_422(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch()
        batch["samples"][0]["gpu_uuid"] = "GPU-unknown"
        r = _post(client, token, batch)
        assert r.status_code == 422
        assert "GPU-unknown" in r.json()["message"]

    def test_timestamps_stored_as_utc(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch(gpus=1, samples_per_gpu=1)
        batch["samples"][0]["ts"] = "2026-11-01T14:00:00+02:00"
        assert _post(client, token, batch).status_code == 200
        ts = session.scalars(select(GpuSample.ts)).one()
        assert ts.isoformat() == "2026-11-01T12:00:00+00:00"


class TestLargeBatches:
    """Batches past ``COPY_MIN_ROWS`` take the COPY path on PostgreSQL; results are the same."""

    def test_large_batch_and_its_retry(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch(gpus=8, samples_per_gpu=60)
        first = _post(
            client, token, gzip.compress(json.dumps(batch).encode()), **{"Content-Encoding": "gzip"}
        )
        assert first.status_code == 200, first.text
        assert first.json()["inserted"] == 480
        assert first.json()["host_inserted"] == 60
        again = _post(client, token, batch).json()
        assert (again["inserted"], again["duplicates"]) == (0, 480)
        assert _count(session, GpuSample) == 480
        assert _count(session, GpuProcessSample) == 480

    def test_overlapping_batch_counts_only_new_rows(
        self, client: TestClient, session: Session
    ) -> None:
        token = create_node_token(session)
        assert (
            _post(client, token, make_batch(gpus=8, samples_per_gpu=30)).json()["inserted"] == 240
        )
        bigger = make_batch(gpus=8, samples_per_gpu=60)
        bigger["batch_id"] = "bigger"
        r = _post(client, token, bigger).json()
        assert (r["inserted"], r["duplicates"]) == (240, 240)
