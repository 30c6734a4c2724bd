"""Local /metrics: dcgm-exporter names, gpuledger_ series, promtool, and a real Prometheus scrape."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from agent.cli import make_agent
from agent.config import AgentSettings
from agent.loop import Agent
from agent.metrics import build_registry, serve
from agent.pusher import MemoryOutbox

REQUIRE_SERVICES = os.environ.get("GPULEDGER_TEST_REQUIRE_SERVICES") == "1"
DCGM = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
    "DCGM_FI_PROF_PCIE_RX_BYTES",
    "DCGM_FI_PROF_PCIE_TX_BYTES",
]


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    why = f"{name} is not installed (Debian package; bash scripts/system-deps.sh)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{why}, and GPULEDGER_TEST_REQUIRE_SERVICES=1")
    pytest.skip(why)


def _agent() -> Agent:
    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    agent = make_agent(
        AgentSettings(
            node_name="metrics-node",
            simulate=3,
            scenarios=["training", "throttling", "unallocated"],
        ),
        clock=lambda: t[0],
    )
    agent.outbox = MemoryOutbox()
    for _ in range(2):
        t[0] += 10
        agent.record(*agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0]))
    agent.outbox.put({"batch_id": "x"})
    return agent


def _text() -> str:
    return generate_latest(build_registry(_agent())).decode()


def test_dcgm_names_units_and_labels() -> None:
    text = _text()
    for name in DCGM:
        assert f"\n{name}{{" in text, name
    line = next(x for x in text.splitlines() if x.startswith("DCGM_FI_DEV_FB_USED{"))
    for label in (
        'gpu="0"',
        'UUID="GPU-',
        'device="nvidia0"',
        'modelName="NVIDIA H100 80GB HBM3"',
        'Hostname="metrics-node"',
    ):
        assert label in line
    used_mib = float(line.rsplit(" ", 1)[1])
    assert 60_000 < used_mib < 80 * 1024  # MiB, not bytes
    # dcgm-exporter's counter name has no _total: prometheus-client keeps it as untyped.
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION untyped" in text
    power = next(x for x in text.splitlines() if x.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert 100 < float(power.rsplit(" ", 1)[1]) < 700  # watts


def test_gpuledger_series() -> None:
    text = _text()
    for name in (
        "gpuledger_host_iowait_ratio",
        "gpuledger_host_memory_used_bytes",
        "gpuledger_process_gpu_memory_bytes{",
        "gpuledger_process_sm_utilization_ratio{",
        "gpuledger_agent_spool_batches 1.0",
        "gpuledger_agent_spool_bytes",
        "gpuledger_agent_dropped_batches_total 0.0",
        "gpuledger_agent_collection_seconds_total",
        "gpuledger_agent_collections_total 2.0",
        "gpuledger_gpu_up{",
    ):
        assert name in text, name


def test_promtool_finds_only_dcgm_compatibility_lints(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=_text(), capture_output=True, text=True, check=False
    )
    problems = [x for x in (result.stdout + result.stderr).splitlines() if x.strip()]
    # dcgm-exporter's own label names (modelName), kept so DCGM dashboards work, are the
    # only thing promtool may flag, and only on series that carry them.
    camel = "label names should be written in 'snake_case' not 'camelCase'"
    assert [p for p in problems if camel not in p] == []
    flagged = {p.split()[0] for p in problems}
    assert all(n.startswith(("DCGM_FI_", "gpuledger_gpu_", "gpuledger_process_")) for n in flagged)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bytes(r.read())


def test_metrics_port_serves_and_prometheus_scrapes_it(tmp_path: Path) -> None:
    prometheus = _binary("prometheus")
    port = serve(build_registry(_agent()), 0, "127.0.0.1")
    assert b"DCGM_FI_DEV_GPU_UTIL" in _get(f"http://127.0.0.1:{port}/metrics")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: gpuledger-agent\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    web = _free_port()
    with (tmp_path / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdout=log,
            stderr=log,
        )
    try:
        query = urllib.parse.quote('DCGM_FI_DEV_GPU_UTIL{Hostname="metrics-node"}')
        result: list[dict] = []
        for _ in range(120):
            try:
                body = json.loads(_get(f"http://127.0.0.1:{web}/api/v1/query?query={query}"))
                result = body["data"]["result"]
            except OSError:
                result = []
            if len(result) == 3:
                break
            time.sleep(0.25)
        assert len(result) == 3, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert {r["metric"]["gpu"] for r in result} == {"0", "1", "2"}
        assert all(r["metric"]["job"] == "gpuledger-agent" for r in result)
    finally:
        proc.terminate()
        proc.wait(20)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
