"""Typed helpers that make inventory rows and wire batches for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.auth import service as auth_service


def create_node_token(session: Session, *, node: str = "node-a") -> str:
    return auth_service.create_node_token(session, node_name=node).secret


def create_api_key(session: Session, *, role: auth_service.Role = auth_service.Role.VIEWER) -> str:
    return auth_service.create_api_key(session, name=f"test {role}", role=role).secret


def make_batch(
    *,
    node: str = "node-a",
    gpus: int = 2,
    samples_per_gpu: int = 3,
    start: datetime | None = None,
    step_seconds: int = 10,
    utilization: float = 50.0,
) -> dict[str, Any]:
    """A valid wire batch with ``gpus`` GPUs and ``samples_per_gpu`` samples each."""
    start = start or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    gpu_list: list[dict[str, Any]] = [
        {
            "uuid": f"GPU-{node}-{i}",
            "index": i,
            "model": "NVIDIA H100 80GB HBM3",
            "memory_total_bytes": 80 * 1024**3,
        }
        for i in range(gpus)
    ]
    samples = [
        {
            "gpu_uuid": g["uuid"],
            "ts": (start + timedelta(seconds=step_seconds * k)).isoformat(),
            "utilization_gpu": utilization,
            "memory_used_bytes": 10 * 1024**3,
            "power_watts": 300.0,
            "energy_mj": 1_000_000 + k * 3_000_000,
            "processes": [
                {
                    "pid": 100 + g["index"],
                    "used_memory_bytes": 10 * 1024**3,
                    "owner": {"user": "alice"},
                }
            ],
        }
        for g in gpu_list
        for k in range(samples_per_gpu)
    ]
    host = [
        {"ts": (start + timedelta(seconds=step_seconds * k)).isoformat(), "iowait_ratio": 0.05}
        for k in range(samples_per_gpu)
    ]
    return {
        "schema_version": 1,
        "batch_id": f"{node}-{start.isoformat()}",
        "node": {"name": node, "cluster": "test", "labels": {"team": "ml"}},
        "gpus": gpu_list,
        "samples": samples,
        "host_samples": host,
    }
