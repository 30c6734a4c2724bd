"""``gpuledger demo`` on a fresh data directory: a fleet of simulated GPUs shows up."""

from __future__ import annotations

import time
import urllib.error

from tests.e2e.conftest import Demo


def _wait_for_gpus(demo: Demo, minimum: int) -> dict:
    body: dict = {"items": []}
    for _ in range(300):
        try:
            body = demo.get_json("/api/v1/gpus?limit=1000")
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
            continue
        if sum(1 for g in body["items"] if g["utilization"] is not None) >= minimum:
            break
        time.sleep(0.2)
    return body


def test_demo_fleet_reports(demo: Demo) -> None:
    body = _wait_for_gpus(demo, 12)
    with_samples = [g for g in body["items"] if g["utilization"] is not None]
    assert len(with_samples) >= 12
    nodes = {g["node"] for g in with_samples}
    assert len(nodes) >= 3
    # The scenarios differ: some GPUs are busy, some idle.
    assert max(g["utilization"] for g in with_samples) > 80
    assert min(g["utilization"] for g in with_samples) < 5
    assert (demo.data_dir / "gpuledger.db").exists()


def test_demo_key_file_is_private(demo: Demo) -> None:
    assert (demo.data_dir / "demo-admin-key").stat().st_mode & 0o077 == 0
