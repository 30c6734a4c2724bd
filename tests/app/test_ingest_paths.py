"""Ingest's short cuts on both dialects: one read for token, node and GPUs, inventory written
only when it changed, the one-statement write, and the per-process partition cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.ingest import repository, service
from app.models import Gpu, GpuProcessSample, GpuSample, HostSample, Node, NodeToken, RollupDirty
from app.usage import partitions
from tests.factories.nodes import create_node_token, make_batch

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _post(client: TestClient, token: str, body: dict):
    return client.post(
        "/api/v1/ingest",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )


def _count(session: Session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _two_known_nodes(client: TestClient, session: Session) -> str:
    """node-a and node-b, each with stored GPUs; returns node-a's token."""
    token_a = create_node_token(session, node="node-a")
    token_b = create_node_token(session, node="node-b")
    assert _post(client, token_a, make_batch(node="node-a")).status_code == 200
    assert _post(client, token_b, make_batch(node="node-b")).status_code == 200
    return token_a


def _dirty(session: Session, kind: str = "gpu") -> set[tuple[int, datetime]]:
    rows = session.execute(
        select(RollupDirty.entity_id, RollupDirty.bucket).where(RollupDirty.kind == kind)
    )
    return {(e, b) for e, b in rows}


class TestTokensAndNodes:
    def test_a_known_token_still_cannot_write_another_node(
        self, client: TestClient, session: Session
    ) -> None:
        token_a = _two_known_nodes(client, session)
        # Both nodes and their GPUs are known now; a later batch is still checked.
        later = T0 + timedelta(minutes=5)
        assert _post(client, token_a, make_batch(node="node-b", start=later)).status_code == 403
        stolen = make_batch(node="node-a", start=later)
        stolen["gpus"].append({"uuid": "GPU-node-b-0", "index": 2})
        stolen["samples"].append({"gpu_uuid": "GPU-node-b-0", "ts": later.isoformat()})
        assert _post(client, token_a, stolen).status_code == 403
        gpu_b = session.scalars(select(Gpu).where(Gpu.uuid == "GPU-node-b-0")).one()
        assert _count(session, GpuSample, GpuSample.gpu_id == gpu_b.id) == 3
        assert _count(session, GpuSample, GpuSample.ts >= later) == 0

    def test_revoked_token_is_401(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        assert _post(client, token, make_batch()).status_code == 200
        row = session.scalars(select(NodeToken)).one()
        row.revoked_at = datetime.now(UTC)
        session.flush()
        later = make_batch(start=T0 + timedelta(minutes=5))
        assert _post(client, token, later).status_code == 401

    def test_bookkeeping_columns_follow_each_batch(
        self, client: TestClient, session: Session
    ) -> None:
        token = create_node_token(session)
        assert _post(client, token, make_batch()).status_code == 200
        later = T0 + timedelta(minutes=5)
        assert _post(client, token, make_batch(start=later)).status_code == 200
        node = session.scalars(select(Node)).one()
        session.refresh(node)
        assert node.last_seen == later + timedelta(seconds=20)
        for gpu in session.scalars(select(Gpu)):
            assert gpu.last_seen == later + timedelta(seconds=20)
        assert session.scalars(select(NodeToken)).one().last_used_at is not None
        # Older data does not move last_seen back.
        assert _post(client, token, make_batch(start=T0 - timedelta(hours=1))).status_code == 200
        session.refresh(node)
        assert node.last_seen == later + timedelta(seconds=20)


class TestInventory:
    def test_changes_are_stored_after_unchanged_batches(
        self, client: TestClient, session: Session
    ) -> None:
        token = create_node_token(session)
        assert _post(client, token, make_batch()).status_code == 200
        assert _post(client, token, make_batch(start=T0 + timedelta(minutes=1))).status_code == 200
        changed = make_batch(start=T0 + timedelta(minutes=2))
        changed["node"]["labels"] = {"team": "infra"}
        changed["node"]["hostname"] = "host-a.example"
        changed["gpus"][1]["model"] = "NVIDIA H200"
        changed["gpus"][0]["status"] = "lost"
        assert _post(client, token, changed).status_code == 200
        node = session.scalars(select(Node)).one()
        session.refresh(node)
        assert node.labels == {"team": "infra"}
        assert node.hostname == "host-a.example"
        gpus = {g.uuid: g for g in session.scalars(select(Gpu))}
        for gpu in gpus.values():
            session.refresh(gpu)
        assert gpus["GPU-node-a-1"].model == "NVIDIA H200"
        assert gpus["GPU-node-a-0"].status == "lost"

    def test_a_new_gpu_joins_a_known_node(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        assert _post(client, token, make_batch(gpus=1)).status_code == 200
        r = _post(client, token, make_batch(gpus=2, start=T0 + timedelta(minutes=1)))
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 6
        assert _count(session, Gpu) == 2
        assert _count(session, GpuProcessSample) == 9


class TestDirtyMarks:
    def test_retry_marks_nothing_and_late_data_marks_the_next_minute(
        self, client: TestClient, session: Session
    ) -> None:
        token = create_node_token(session)
        later = T0 + timedelta(hours=2)
        assert _post(client, token, make_batch(gpus=1, start=later)).status_code == 200
        gpu_id = session.scalars(select(Gpu.id)).one()
        assert _dirty(session) == {(gpu_id, later)}
        session.execute(delete(RollupDirty))
        # A pure retry stores nothing and marks nothing.
        again = _post(client, token, make_batch(gpus=1, start=later)).json()
        assert again["inserted"] == 0
        assert again["host_inserted"] == 0
        assert _dirty(session) == set() == _dirty(session, "host")
        # Late data: its own minute and the minute after its last sample (the next stored
        # sample may now have a predecessor within the gap).
        late = make_batch(gpus=1, samples_per_gpu=6, start=T0 + timedelta(seconds=30))
        assert _post(client, token, late).json()["inserted"] == 6
        assert _dirty(session) == {
            (gpu_id, T0),
            (gpu_id, T0 + timedelta(minutes=1)),
            (gpu_id, T0 + timedelta(minutes=2)),
        }
        assert len(_dirty(session, "host")) == 3

    def test_remark_bumps_the_version(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        assert _post(client, token, make_batch(gpus=1, samples_per_gpu=1)).status_code == 200
        nxt = make_batch(gpus=1, samples_per_gpu=1, start=T0 + timedelta(seconds=30))
        assert _post(client, token, nxt).status_code == 200
        versions = session.scalars(
            select(RollupDirty.version).where(RollupDirty.kind == "gpu")
        ).all()
        assert versions == [2]

    def test_host_samples_without_gpu_samples(self, client: TestClient, session: Session) -> None:
        token = create_node_token(session)
        batch = make_batch(gpus=1)
        batch["samples"] = []
        r = _post(client, token, batch).json()
        assert (r["inserted"], r["host_inserted"]) == (0, 3)
        assert _count(session, HostSample) == 3
        assert _dirty(session) == set()
        assert len(_dirty(session, "host")) == 1


class TestLargeBatches:
    """At ``COPY_MIN_SAMPLES`` and above PostgreSQL stages the rows with COPY; same results."""

    def test_staged_batch_is_idempotent_and_marks_only_new_rows(
        self, client: TestClient, session: Session
    ) -> None:
        token = create_node_token(session)
        per_gpu = repository.COPY_MIN_SAMPLES // 2 + 1  # two GPUs: just over the threshold
        big = make_batch(samples_per_gpu=per_gpu)
        r = _post(client, token, big).json()
        assert (r["inserted"], r["duplicates"]) == (2 * per_gpu, 0)
        assert (r["host_inserted"], r["host_duplicates"]) == (per_gpu, 0)
        assert _count(session, GpuSample) == 2 * per_gpu == _count(session, GpuProcessSample)
        assert _count(session, HostSample) == per_gpu
        marks = _dirty(session)
        assert len(marks) == 2 * len({b for _, b in marks})
        session.execute(delete(RollupDirty))
        # A retry stores and marks nothing; half new, half old stores the new half only.
        r = _post(client, token, big).json()
        assert (r["inserted"], r["duplicates"], r["host_inserted"]) == (0, 2 * per_gpu, 0)
        assert _dirty(session) == set() == _dirty(session, "host")
        shifted = make_batch(
            samples_per_gpu=per_gpu, start=T0 + timedelta(seconds=10 * (per_gpu // 2))
        )
        r = _post(client, token, shifted).json()
        new = per_gpu // 2  # shifted by that many intervals
        assert (r["inserted"], r["duplicates"]) == (2 * new, 2 * (per_gpu - new))
        assert _count(session, GpuSample) == 2 * (per_gpu + new)
        assert _dirty(session)
        node = session.scalars(select(Node)).one()
        session.refresh(node)
        assert node.last_seen == T0 + timedelta(seconds=10 * (per_gpu // 2 + per_gpu - 1))
        if session.get_bind().dialect.name == "postgresql":
            staged = session.execute(
                text("SELECT (SELECT count(*) FROM _ingest_gpu_samples) + "
                     "(SELECT count(*) FROM _ingest_gpu_process_samples) + "
                     "(SELECT count(*) FROM _ingest_host_samples)")
            ).scalar()  # fmt: skip
            assert staged == 0

    def test_a_staged_batch_naming_another_nodes_gpu_writes_nothing(
        self, client: TestClient, session: Session
    ) -> None:
        token_a = _two_known_nodes(client, session)
        later = T0 + timedelta(minutes=5)
        stolen = make_batch(node="node-a", samples_per_gpu=repository.COPY_MIN_SAMPLES, start=later)
        stolen["gpus"].append({"uuid": "GPU-node-b-0", "index": 2})
        stolen["samples"].append({"gpu_uuid": "GPU-node-b-0", "ts": later.isoformat()})
        assert _post(client, token_a, stolen).status_code == 403
        assert _count(session, GpuSample, GpuSample.ts >= later) == 0
        assert _count(session, HostSample, HostSample.ts >= later) == 0


class TestPartitionCache:
    @pytest.fixture(autouse=True)
    def _postgres_only(self, session: Session) -> None:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite has no partitions")

    def test_a_day_created_in_this_transaction_is_not_cached(self, session: Session) -> None:
        day = datetime.now(UTC).date() + timedelta(days=7)
        partitions.forget_known_days()
        with session.begin_nested() as sp:
            partitions.ensure_days_cached(session, [day])
            assert partitions.partition_name("gpu_samples", day) in _tables(session)
            sp.rollback()
        assert partitions.partition_name("gpu_samples", day) not in _tables(session)
        # Not remembered: the next call creates it again.
        partitions.ensure_days_cached(session, [day])
        assert partitions.partition_name("gpu_samples", day) in _tables(session)

    def test_dropping_partitions_forgets_the_cache(self, session: Session) -> None:
        today = datetime.now(UTC).date()
        partitions.ensure_days(session, [today])
        partitions.ensure_days_cached(session, [today])
        assert partitions._known_days
        partitions.drop_before(session, today - timedelta(days=400))
        partitions.ensure_days(session, [today - timedelta(days=500)])
        partitions.drop_before(session, today - timedelta(days=400))
        assert not partitions._known_days


def _tables(session: Session) -> set[str]:
    return set(session.execute(text("SELECT relname FROM pg_class")).scalars())


def test_a_token_made_by_the_service_authenticates_in_one_query(session: Session) -> None:
    secret = auth_service.create_node_token(session, node_name="node-q").secret
    state = service.authenticate(session, secret)
    assert state.name == "node-q"
    assert state.gpus == {}
