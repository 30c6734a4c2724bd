"""A GPU that a job holds and does not use is charged to that job: the allocation the agent
reports on each sample goes through ingest, the rollup and the ledger to GET /costs. Both dialects."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Role
from app.costs import ledger as cost_ledger
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import GpuProcessSample, GpuSample
from app.usage import service as usage_service
from bench import billing_samples as samples
from tests.factories.nodes import create_api_key, make_batch

START = samples.START
HELD = {"job_id": "4242", "user": "ana", "account": "vision", "pod": "train-0",
        "namespace": "ml", "container": "trainer"}  # fmt: skip


def _batch(*, allocated: bool, pid: int | None = None) -> dict[str, Any]:
    """Node "held": two GPUs at 0 %, no process on either; GPU 0 held by job 4242."""
    batch = make_batch(node="held", gpus=2, samples_per_gpu=60, start=START, step_seconds=60,
                       utilization=0.0)  # fmt: skip
    batch["node"].update(provider="aws", instance_id="i-0held", instance_type="p4d.24xlarge",
                         region="us-east-1")  # fmt: skip
    for s in batch["samples"]:
        s["processes"] = [] if pid is None else [{"pid": pid, "owner": {"user": "bob"}}]
        if allocated and s["gpu_uuid"].endswith("-0"):
            s["allocation"] = HELD
    return batch


def _ingest(session: Session, batch: dict[str, Any]) -> None:
    token = auth_service.create_node_token(session, node_name=batch["node"]["name"]).secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, token),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip


def test_the_allocation_is_stored_with_each_sample(session: Session) -> None:
    _ingest(session, _batch(allocated=True))
    rows = session.execute(
        select(GpuSample.alloc_job_id, GpuSample.alloc_user, GpuSample.alloc_account,
               GpuSample.alloc_pod, GpuSample.alloc_namespace, GpuSample.alloc_container)
        .where(GpuSample.alloc_job_id.is_not(None))
    ).all()  # fmt: skip
    assert len(rows) == 60  # GPU 0's samples; GPU 1 is free
    assert set(rows) == {("4242", "ana", "vision", "train-0", "ml", "trainer")}


def test_any_32_bit_unsigned_pid_is_stored(session: Session) -> None:
    _ingest(session, _batch(allocated=False, pid=2**32 - 1))
    pids = set(session.scalars(select(GpuProcessSample.pid)))
    assert pids == {2**32 - 1}


def test_an_allocated_idle_gpu_is_charged_to_its_job(client: TestClient, session: Session) -> None:
    _ingest(session, _batch(allocated=True))
    usage_service.rollup_pending(session)
    while cost_ledger.reprice_pending(session).keys:
        pass
    session.flush()
    viewer = {"Authorization": f"Bearer {create_api_key(session, role=Role.VIEWER)}"}
    window = {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat()}
    r = client.get("/api/v1/costs", headers=viewer, params={**window, "group_by": "team"})
    assert r.status_code == 200, r.text
    groups = r.json()["groups"]
    # One GPU's hour goes to the holder's team (its namespace, the first team rule), the other
    # is truly unallocated: half and half.
    assert set(groups) == {"ml", "unallocated"}
    held = Decimal(groups["ml"]["exact"]["cost"])
    free = Decimal(groups["unallocated"]["exact"]["cost"])
    assert held > 0
    assert held == free
    # It did nothing: the whole of the holder's cost is idle.
    assert Decimal(groups["ml"]["exact"]["idle_cost"]) == held
