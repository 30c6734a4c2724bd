"""Grafana dashboards over the agent's /metrics through a real Prometheus: every panel query and
template variable of dcgm-exporter's own dashboard (tests/fixtures/grafana/) and of GPU Ledger's
returns data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import make_agent
from agent.config import AgentSettings
from agent.metrics import build_registry, serve
from agent.pusher import MemoryOutbox
from tests.prometheus import Prometheus, running_prometheus

ROOT = Path(__file__).parents[2]
DCGM_DASHBOARD = ROOT / "tests" / "fixtures" / "grafana" / "dcgm-exporter-dashboard.json"
DASHBOARDS = [DCGM_DASHBOARD, *sorted((ROOT / "dashboards").glob("*.json"))]
JOB = "gpuledger-agent"
# Grafana's built-in interval variables, as a 1 s scrape interval gives them.
INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus that has scraped a simulated Hopper node twice (rates need two samples)."""
    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    agent = make_agent(
        AgentSettings(node_name="dash-node", simulate=4, scenarios=["training", "unallocated"]),
        clock=lambda: t[0],
    )
    agent.outbox = MemoryOutbox()
    for _ in range(2):  # the profiling ratios need two GPM samples
        t[0] += 10
        agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0])
    port = serve(build_registry(agent), 0, "127.0.0.1")
    scrape = f"  - job_name: {JOB}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), scrape) as prom:
        up = prom.wait_for(f'up{{job="{JOB}"}} == 1', bool)
        scrapes = prom.wait_for(
            f'count_over_time(up{{job="{JOB}"}}[5m])',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 2,
        )
        if not (up and scrapes and float(scrapes[0]["value"][1]) >= 2):
            pytest.fail(
                f"Prometheus never scraped the agent twice:\n{prom.log.read_text()[-2000:]}"
            )
        yield prom


def _targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel query, rows' nested panels included."""
    found = []
    panels = list(board.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", []) if t.get("expr")]
    return found


def _values(prometheus: Prometheus, query: str) -> list[str]:
    """What Grafana's ``label_values(metric, label)`` lists."""
    m = _LABEL_VALUES.match(query.strip())
    assert m, f"not a label_values() query: {query}"
    metric, label = m.groups()
    return sorted({r["metric"].get(label, "") for r in prometheus.query(metric)} - {""})


def _variables(prometheus: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable as Grafana sends "All" of it: its allValue, else a regex of every
    value (regex-escaped inside a PromQL string)."""
    chosen = dict(INTERVALS)
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        values = _values(prometheus, query["query"] if isinstance(query, dict) else query)
        assert values, f"variable ${variable['name']} ({query}) lists nothing"
        if variable.get("allValue"):
            chosen[variable["name"]] = variable["allValue"]
        else:
            escaped = [re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", v) for v in values]
            chosen[variable["name"]] = "(" + "|".join(escaped) + ")"
    return chosen


def _substitute(expr: str, variables: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in variables, f"unknown variable ${name} in {expr}"
        return variables[name]

    return _VARIABLE.sub(value, expr)


def test_the_dcgm_dashboard_is_the_upstream_copy() -> None:
    board = json.loads(DCGM_DASHBOARD.read_text())
    assert board["gnetId"] == 12239  # grafana.com's "NVIDIA DCGM Exporter Dashboard"
    assert len(_targets(board)) == 8
    readme = (DCGM_DASHBOARD.parent / "README.md").read_text()
    assert "NVIDIA/dcgm-exporter @ " in readme
    assert "Apache-2.0" in readme


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_returns_data(prometheus: Prometheus, path: Path) -> None:
    board = json.loads(path.read_text())
    variables = _variables(prometheus, board)
    targets = _targets(board)
    assert targets
    empty = []
    for title, expr in targets:
        promql = _substitute(expr, variables)
        if not prometheus.query(promql):
            empty.append(f"{title}: {promql}")
    assert empty == [], "\n".join(empty)
