"""What real drivers report beyond "ok": GPU states, reserved memory, MIG instance UUIDs and the
instance each process runs on are accepted and stored. Both dialects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import Gpu, GpuProcessSample, GpuSample
from app.usage.query import gpus_by_state
from tests.factories.nodes import make_batch


def _ingest(session: Session, batch: dict[str, Any]) -> None:
    token = auth_service.create_node_token(session, node_name=batch["node"]["name"]).secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, token),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip


@pytest.mark.parametrize("status", ["error", "reset_required", "driver_mismatch"])
def test_a_gpu_that_is_not_ok_is_stored_and_counted_as_down(session: Session, status: str) -> None:
    batch = make_batch(node="n1", gpus=2, samples_per_gpu=1)
    batch["gpus"][1]["status"] = status
    batch["samples"][1]["status"] = status
    _ingest(session, batch)
    assert set(session.scalars(select(Gpu.status))) == {"ok", status}
    assert set(session.scalars(select(GpuSample.status))) == {"ok", status}
    ts = max(s.ts for s in IngestBatch.model_validate(batch).samples)
    assert gpus_by_state(session, now=ts + timedelta(seconds=30))["lost"] == 1


def test_an_unknown_status_is_refused() -> None:
    batch = make_batch(node="n1", gpus=1, samples_per_gpu=1)
    batch["gpus"][0]["status"] = "melted"
    with pytest.raises(ValidationError, match="status"):
        IngestBatch.model_validate(batch)


def test_reserved_memory_mig_uuids_and_process_instances_are_stored(session: Session) -> None:
    batch = make_batch(node="n1", gpus=1, samples_per_gpu=1)
    batch["gpus"][0].update(mig_mode=True, mig_instances=[
        {"uuid": "MIG-5c89e5e8-1f8d-5d6c-9d1b-2f0a6b1b3c11", "gi_id": 1, "ci_id": 0,
         "profile": "3g.40gb", "memory_total_bytes": 40 * 1024**3},
    ])  # fmt: skip
    sample = batch["samples"][0]
    sample["memory_reserved_bytes"] = 512 * 1024**2
    sample["processes"][0].update(gpu_instance_id=1, compute_instance_id=0)
    _ingest(session, batch)
    gpu = session.scalars(select(Gpu)).one()
    assert gpu.mig_instances is not None
    assert gpu.mig_instances[0]["uuid"] == "MIG-5c89e5e8-1f8d-5d6c-9d1b-2f0a6b1b3c11"
    assert session.scalar(select(GpuSample.memory_reserved_bytes)) == 512 * 1024**2
    proc = session.scalars(select(GpuProcessSample)).one()
    assert (proc.gpu_instance_id, proc.compute_instance_id) == (1, 0)
