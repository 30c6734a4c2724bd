"""The backend's /metrics: the scrape token, open findings and their cost, a real Prometheus."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app import migrate
from app.config import settings
from app.db import make_engine
from app.deps import request_now
from tests.factories.findings import create_finding, create_node
from tests.prometheus import binary, free_port, running_prometheus

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOKEN = "scrape-token-0123456789abcdef"
ROOT = Path(__file__).parents[3]


@pytest.fixture
def scrape(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(settings, "metrics_token", SecretStr(TOKEN))
    cast(FastAPI, client.app).dependency_overrides[request_now] = lambda: NOW
    return client


def _samples(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


class TestToken:
    def test_token_required(self, scrape: TestClient, session: Session) -> None:
        r = scrape.get("/metrics")
        assert (r.status_code, r.json()["error"]) == (401, "unauthenticated")
        assert "GPULEDGER_METRICS_TOKEN" in r.json()["message"]
        wrong = scrape.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        assert TOKEN not in wrong.text
        ok = scrape.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("text/plain")
        assert "# TYPE gpuledger_findings_open gauge" in ok.text

    def test_closed_without_a_token(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "metrics_token", None)
        assert client.get("/metrics").status_code == 401
        r = client.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        assert "GPULEDGER_METRICS_TOKEN" in r.json()["message"]
        monkeypatch.setattr(settings, "metrics_token", SecretStr(""))  # set but empty: closed
        r = client.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403

    def test_open_when_configured_open(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "metrics_token", None)
        monkeypatch.setattr(settings, "metrics_open", True)
        r = client.get("/metrics")
        assert r.status_code == 200
        assert "gpuledger_gpus" in r.text

    def test_openmetrics_when_asked(self, scrape: TestClient) -> None:
        r = scrape.get(
            "/metrics",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
        )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.endswith("# EOF\n")


class TestValues:
    def test_open_findings_and_their_cost(self, scrape: TestClient, session: Session) -> None:
        node, gpus = create_node(session, gpus=4)
        create_finding(session, node=node, gpu=gpus[0], team="ml", cost_per_hour="2.50")
        create_finding(session, node=node, gpu=gpus[1], team="ml", cost_per_hour="1.25")
        create_finding(
            session, node=node, gpu=gpus[2], team="ml", kind="data_starvation",
            cost_per_hour="4", currency="EUR",
        )  # fmt: skip
        create_finding(session, node=node, gpu=gpus[3], team="vision", cost_per_hour="3")
        # Resolved: counted nowhere.
        create_finding(session, node=node, gpu=gpus[3], team="vision", resolved=True)
        create_finding(session, node=node, gpu=gpus[0], team="ml", kind="energy_waste",
                       resolved=True)  # fmt: skip
        # Unpriced and without a team: open, but no cost to add up.
        create_finding(
            session, node=node, kind="stale_agent", team="", cost_per_hour=None,
            cost_so_far=None, currency=None, cost_source="unpriced",
        )  # fmt: skip
        samples = _samples(scrape)
        assert samples["gpuledger_findings_open"] == {
            (("kind", "idle_allocated"), ("team", "ml")): 2.0,
            (("kind", "data_starvation"), ("team", "ml")): 1.0,
            (("kind", "idle_allocated"), ("team", "vision")): 1.0,
            (("kind", "stale_agent"), ("team", "")): 1.0,
        }
        waste = samples["gpuledger_waste_dollars_per_hour"]
        assert waste == {
            (("currency", "USD"), ("kind", "idle_allocated"), ("team", "ml")): pytest.approx(3.75),
            (("currency", "EUR"), ("kind", "data_starvation"), ("team", "ml")): 4.0,
            (("currency", "USD"), ("kind", "idle_allocated"), ("team", "vision")): 3.0,
        }

    def test_no_ids_as_labels(self, scrape: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        create_finding(session, node=node, gpu=gpus[0], owner="job-7")
        labels = {name for series in _samples(scrape).values() for key in series for name, _ in key}
        assert labels == {"kind", "team", "currency", "state"}

    def test_nothing_open(self, scrape: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        create_finding(session, node=node, gpu=gpus[0], resolved=True)
        samples = _samples(scrape)
        assert "gpuledger_findings_open" not in samples
        assert "gpuledger_waste_dollars_per_hour" not in samples

    def test_gpus_by_state(self, scrape: TestClient, session: Session) -> None:
        _, gpus = create_node(session, gpus=3)
        gpus[0].status = "lost"
        gpus[1].last_seen = NOW  # seen now, but no minute rollup yet
        session.flush()
        states = {dict(k)["state"]: v for k, v in _samples(scrape)["gpuledger_gpus"].items()}
        assert (states["lost"], states["stale"], states["unknown"]) == (1, 1, 1)
        assert sum(states.values()) == 3  # every other state is listed, at 0


# The live server: the real settings from the environment, no in-process jobs (they could
# change the findings this test wrote).
SERVE = (
    "import sys, uvicorn\n"
    "from app.main import create_app\n"
    "uvicorn.run(create_app(embedded_jobs=False), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning')\n"
)


@contextmanager
def live_backend(tmp_path: Path) -> Iterator[str]:
    """A uvicorn server over a committed SQLite database with open findings; yields its URL."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        node, gpus = create_node(session, name="live-node", gpus=3)
        create_finding(session, node=node, gpu=gpus[0], team="ml", cost_per_hour="2.5")
        create_finding(session, node=node, gpu=gpus[1], team="ml", cost_per_hour="1.5")
        create_finding(session, node=node, gpu=gpus[2], team="vision", kind="data_starvation")
        create_finding(session, node=node, gpu=gpus[2], team="vision", resolved=True)
        session.commit()
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "GPULEDGER_DATABASE_URL": url,
        "GPULEDGER_DATA_DIR": str(tmp_path / "data"),
        "GPULEDGER_METRICS_TOKEN": TOKEN,
    }
    env.pop("GPULEDGER_REDIS_URL", None)
    env.pop("GPULEDGER_METRICS_OPEN", None)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_prometheus_scrapes_the_backend_with_its_token(tmp_path: Path) -> None:
    binary("prometheus")  # skip before starting anything when it is missing
    with live_backend(tmp_path) as base:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/metrics", timeout=5)
        refused.value.close()
        assert refused.value.code == 401
        token_file = tmp_path / "metrics-token"
        token_file.write_text(TOKEN + "\n")  # as a Kubernetes secret mount would have it
        target = base.removeprefix("http://")
        jobs = (
            "  - job_name: gpuledger-backend\n"
            "    authorization:\n"
            f"      credentials_file: {token_file}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
            "  - job_name: gpuledger-backend-no-token\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        with running_prometheus(tmp_path, jobs) as prom:
            result = prom.wait_for("gpuledger_findings_open", lambda r: len(r) == 2)
            assert len(result) == 2, prom.log.read_text()[-2000:]
            got = {(r["metric"]["kind"], r["metric"]["team"]): r["value"][1] for r in result}
            assert got == {("idle_allocated", "ml"): "2", ("data_starvation", "vision"): "1"}
            assert {r["metric"]["job"] for r in result} == {"gpuledger-backend"}
            waste = prom.wait_for("gpuledger_waste_dollars_per_hour", lambda r: len(r) == 2)
            by_kind = {r["metric"]["kind"]: float(r["value"][1]) for r in waste}
            assert by_kind == {"idle_allocated": 4.0, "data_starvation": 2.5}
            # Without the token the same target is down.
            up = prom.wait_for('up{job="gpuledger-backend-no-token"}', lambda r: len(r) == 1)
            assert [r["value"][1] for r in up] == ["0"]
