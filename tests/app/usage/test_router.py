"""Series and fleet summary over HTTP: auth, resolution by range, tz, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.usage import service
from tests.app.usage.conftest import Ingest
from tests.factories.nodes import create_api_key, make_batch

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(minutes=20)


@pytest.fixture
def viewer(session: Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(session)}"}


@pytest.fixture
def stored(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=2, samples_per_gpu=120, start=START, utilization=40.0))
    service.rollup_pending(session)


def _q(start: datetime, end: datetime, **kw: str) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat(), **kw}


@pytest.mark.usefixtures("stored")
class TestSeries:
    def test_needs_a_key(self, client: TestClient) -> None:
        assert client.get("/api/v1/gpus/GPU-node-a-0/series").status_code == 401

    def test_short_range_reads_raw_samples(self, client: TestClient, viewer) -> None:
        r = client.get("/api/v1/gpus/GPU-node-a-0/series", params=_q(START, NOW), headers=viewer)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resolution"] == "raw"
        assert len(body["points"]) == 120
        assert body["points"][0]["ts"].endswith("Z") or body["points"][0]["ts"].endswith("+00:00")

    def test_a_day_reads_minutes_and_a_month_hours(self, client: TestClient, viewer) -> None:
        day = client.get(
            "/api/v1/gpus/GPU-node-a-0/series",
            params=_q(NOW - timedelta(days=1), NOW + timedelta(minutes=1)),
            headers=viewer,
        ).json()
        assert day["resolution"] == "minute"
        assert len(day["points"]) == 20
        assert day["points"][0]["value"] == pytest.approx(40.0)
        month = client.get(
            "/api/v1/gpus/GPU-node-a-0/series",
            params=_q(NOW - timedelta(days=30), NOW + timedelta(hours=1), metric="energy_joules"),
            headers=viewer,
        ).json()
        assert month["resolution"] == "hour"
        assert sum(p["value"] for p in month["points"]) > 0

    def test_step_and_tz(self, client: TestClient, viewer) -> None:
        r = client.get(
            "/api/v1/gpus/GPU-node-a-0/series",
            params=_q(START, NOW, step="600", tz="Asia/Kolkata"),
            headers=viewer,
        ).json()
        assert r["step_seconds"] == 600
        # 120 samples 10 s apart from START: as many 600 s buckets as they touch (2 when START
        # falls on a ten-minute boundary, else 3), whatever the time the tests run.
        samples = [START + timedelta(seconds=10 * k) for k in range(120)]
        buckets = {int(t.timestamp()) // 600 for t in samples}
        assert len(r["points"]) == len(buckets)
        assert r["points"][0]["ts"].endswith("+05:30")

    @pytest.mark.parametrize(
        ("params", "status"),
        [
            ({"metric": "nope"}, 400),
            ({"tz": "Mars/Olympus"}, 400),
            ({"from": "2026-11-01T00:00:00"}, 400),  # naive: "no UTC offset"
            ({"from": "2026-11-01", "to": "2026-11-01"}, 200),  # plain dates: that day in tz
        ],
    )
    def test_bad_input(self, client: TestClient, viewer, params, status) -> None:
        r = client.get("/api/v1/gpus/GPU-node-a-0/series", params=params, headers=viewer)
        assert r.status_code == status, r.text

    def test_unknown_gpu_is_404(self, client: TestClient, viewer) -> None:
        r = client.get("/api/v1/gpus/GPU-nope/series", headers=viewer)
        assert r.status_code == 404
        assert r.json()["error"] == "gpu_not_found"


def test_fleet_summary_needs_a_key(client: TestClient) -> None:
    assert client.get("/api/v1/fleet/summary").status_code == 401


@pytest.mark.usefixtures("stored")
def test_fleet_summary(client: TestClient, viewer) -> None:
    from fastapi import FastAPI

    from app.deps import request_now

    # GPU states are "now": pinned to just after the last sample, not to when the test runs.
    cast(FastAPI, client.app).dependency_overrides[request_now] = lambda: NOW
    r = client.get(
        "/api/v1/fleet/summary",
        params=_q(NOW - timedelta(days=1), NOW + timedelta(hours=1)),
        headers=viewer,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gpus_by_state"]["busy"] == 2
    assert body["gpu_hours"] == pytest.approx(2 * 1200 / 3600, rel=0.02)
    assert body["utilization_mean"] == pytest.approx(40.0)
    assert body["energy_joules"] > 0
