"""A restarted ``gpuledger demo`` resumes its history instead of storing it a second time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import func, select

from app import demo
from app.db import reset_engine, session_scope
from app.main import create_app
from app.models import GpuSample
from app.usage import query
from app.usage import service as usage_service

# Off the backfill's 20 s grid, as a real restart is: a second copy would interleave.
NOW = datetime(2026, 11, 1, 12, 0, 3, tzinfo=UTC)
RESTART = NOW + timedelta(minutes=10, seconds=7)
STEP = timedelta(seconds=demo.BACKFILL_STEP_SECONDS)
GPUS = sum(len(n.scenarios) for n in demo.FLEET)
FIRST_READINGS = demo.BACKFILL_MINUTES * 60 // demo.BACKFILL_STEP_SECONDS
RESUMED_READINGS = 30  # NOW .. NOW + 9:40 on the 20 s grid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The demo's database and a real HTTP server over it in this process; (url, tokens)."""
    _key, tokens = demo.prepare(tmp_path / "demo")
    port = _free_port()
    config = uvicorn.Config(
        create_app(embedded_jobs=False), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="demo-test-server", daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if srv.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert srv.started
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        reset_engine()


def _samples() -> dict[int, list[tuple[datetime, int | None]]]:
    with session_scope() as session:
        rows = session.execute(
            select(GpuSample.gpu_id, GpuSample.ts, GpuSample.energy_mj).order_by(
                GpuSample.gpu_id, GpuSample.ts
            )
        )
        out: dict[int, list[tuple[datetime, int | None]]] = {}
        for gpu_id, ts, energy in rows:
            out.setdefault(gpu_id, []).append((ts, energy))
    return out


def test_restart_sends_only_the_missing_minutes(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    assert demo.backfill_fleet(url, tokens, now=NOW) == len(demo.FLEET) * FIRST_READINGS
    first = _samples()
    assert sum(len(v) for v in first.values()) == GPUS * FIRST_READINGS

    assert demo.backfill_fleet(url, tokens, now=RESTART) == len(demo.FLEET) * RESUMED_READINGS
    second = _samples()
    assert sum(len(v) for v in second.values()) == GPUS * (FIRST_READINGS + RESUMED_READINGS)
    for gpu_id, points in second.items():
        assert points[: len(first[gpu_id])] == first[gpu_id]  # nothing slipped in between
        times = [ts for ts, _ in points]
        assert {b - a for a, b in pairwise(times)} == {STEP}
        assert times[-1] < RESTART
        # The simulated counter goes on across the restart instead of starting from 0 again.
        counters = [e for _, e in points]
        assert all(e is not None for e in counters)
        assert counters == sorted(counters)  # type: ignore[type-var]


def test_restarted_fleet_draws_no_more_than_its_power_limit(
    server: tuple[str, dict[str, str]],
) -> None:
    url, tokens = server
    demo.backfill_fleet(url, tokens, now=NOW)
    demo.backfill_fleet(url, tokens, now=RESTART)
    for _ in range(100):
        with session_scope() as session:
            if usage_service.rollup_pending(session).dirty == 0:
                break
    with session_scope() as session:
        limit = session.scalar(select(func.max(GpuSample.power_limit_watts)))
        summary = query.fleet_summary(
            session, start=NOW - timedelta(hours=3), end=RESTART, now=RESTART
        )
    assert limit == 700.0  # the simulated H100s
    assert summary.power_mean_watts is not None
    assert 0 < summary.power_mean_watts <= GPUS * limit
    gpu_seconds = summary.gpu_hours * 3600
    assert gpu_seconds == pytest.approx(GPUS * (FIRST_READINGS + RESUMED_READINGS) * 20, rel=0.01)
    assert summary.energy_joules <= limit * gpu_seconds
