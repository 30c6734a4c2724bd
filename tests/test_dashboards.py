"""Grafana dashboards: valid JSON, stable unique uids, a datasource variable, no __inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DASHBOARDS = sorted((Path(__file__).parents[1] / "dashboards").glob("*.json"))
AGENT_METRICS = (Path(__file__).parents[1] / "agent" / "metrics.py").read_text()


def test_there_are_dashboards() -> None:
    assert DASHBOARDS


def test_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_shape(path: Path) -> None:
    text = path.read_text()
    board = json.loads(text)
    assert "__inputs" not in board
    assert "${DS_" not in text
    assert board["uid"] == path.stem
    assert board["title"].startswith("GPU Ledger / ")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_queries_use_metrics_the_agent_exports(path: Path) -> None:
    board = json.loads(path.read_text())
    for panel in board["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(DCGM_FI_\w+|gpuledger_\w+)", target["expr"]):
                assert f'"{name}' in AGENT_METRICS, f"{panel['title']}: {name} is not exported"
