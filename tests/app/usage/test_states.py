"""Each GPU's state now: health, silence, starvation, then idle held / idle free / busy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import Finding, Gpu
from app.nodes import service as nodes_service
from app.usage.query import gpus_by_state
from app.usage.states import GpuNow, gpu_state
from tests.factories.nodes import make_batch

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SEEN = NOW - timedelta(seconds=20)


@pytest.mark.parametrize(
    ("gpu", "state"),
    [
        (GpuNow("ok", SEEN, 90.0, True, False), "busy"),
        (GpuNow("ok", SEEN, 0.0, True, False), "idle_held"),
        (GpuNow("ok", SEEN, 0.0, False, False), "idle_free"),
        (GpuNow("ok", SEEN, 35.0, True, True), "starved"),
        (GpuNow("ok", NOW - timedelta(minutes=10), 90.0, True, False), "stale"),
        (GpuNow("ok", None, None, False, False), "stale"),
        (GpuNow("lost", SEEN, 90.0, True, False), "lost"),
        (GpuNow("reset_required", SEEN, 0.0, False, False), "lost"),
        (GpuNow("ok", SEEN, None, True, False), "unknown"),  # MIG: no utilization reading
    ],
)
def test_gpu_state(gpu: GpuNow, state: str) -> None:
    assert gpu_state(gpu, now=NOW, idle_percent=5.0) == state


def _ingest(session: Session, batch: dict[str, Any]) -> None:
    token = auth_service.create_node_token(session, node_name=batch["node"]["name"]).secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, token),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip


def test_the_fleet_shows_what_each_gpu_does_not_only_its_health(session: Session) -> None:
    """Four healthy GPUs ("ok" to NVML): one busy, one held and idle with no process, one idle
    and free, one starved; the fleet summary and the GPU list say so."""
    batch = make_batch(node="n1", gpus=4, samples_per_gpu=1, start=SEEN)
    samples = {s["gpu_uuid"]: s for s in batch["samples"]}
    busy, held, free, starved = (samples[f"GPU-n1-{i}"] for i in range(4))
    busy["utilization_gpu"] = 95.0
    held.update(utilization_gpu=0.0, processes=[], allocation={"job_id": "77"})
    free.update(utilization_gpu=0.0, processes=[])
    starved["utilization_gpu"] = 40.0
    _ingest(session, batch)
    gpu3 = next(g for g in session.query(Gpu).all() if g.uuid == "GPU-n1-3")
    session.add(Finding(kind="data_starvation", state="open", gpu_id=gpu3.id,
                        node_id=gpu3.node_id, team="ml", owner="", started_at=SEEN,
                        opened_at=SEEN, last_seen_at=SEEN, currency="USD", evidence={},
                        updated_at=SEEN))  # fmt: skip
    session.flush()
    counts = gpus_by_state(session, now=NOW)
    assert {k: v for k, v in counts.items() if v} == {
        "busy": 1, "idle_held": 1, "idle_free": 1, "starved": 1,
    }  # fmt: skip
    gpus, _ = nodes_service.list_gpus(session, now=NOW)
    assert [(g.index, g.state, g.status) for g in gpus] == [
        (0, "busy", "ok"), (1, "idle_held", "ok"), (2, "idle_free", "ok"), (3, "starved", "ok"),
    ]  # fmt: skip
    later = gpus_by_state(session, now=NOW + timedelta(minutes=10))
    assert later["stale"] == 4
