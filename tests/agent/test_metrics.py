"""Local /metrics: dcgm-exporter's names, types and labels, gpuledger_ series, the page rendered
once per collection, promtool, and a real Prometheus scrape."""

from __future__ import annotations

import gzip
import re
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import build_parser, make_agent, settings_from_args
from agent.collectors.allocation import AllocationCollector, Holders
from agent.collectors.nvml import NvmlCollector
from agent.collectors.nvml_driver import (
    GIB,
    SimGpu,
    SimMigInstance,
    SimProcess,
    SimulatedDriver,
    installed,
)
from agent.config import AgentSettings, from_env
from agent.loop import Agent
from agent.metrics import build_registry, serve
from agent.pusher import MemoryOutbox
from tests.prometheus import binary, running_prometheus

TS = datetime(2026, 11, 1, 12, tzinfo=UTC)
DCGM = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_FB_TOTAL",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_SM_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_PROF_PCIE_RX_BYTES",
    "DCGM_FI_PROF_PCIE_TX_BYTES",
]
# As dcgm-exporter's etc/default-counters.csv types them.
COUNTERS = {
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
}


def _agent(**settings: Any) -> Agent:
    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    settings.setdefault("scenarios", ["training", "throttling", "unallocated"])
    agent = make_agent(
        AgentSettings(node_name="metrics-node", simulate=3, **settings), clock=lambda: t[0]
    )
    agent.outbox = MemoryOutbox()
    for _ in range(2):  # two readings: GPM and NVLink need an interval
        t[0] += 10
        agent.record(*agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0]))
    agent.outbox.put({"batch_id": "x"})
    return agent


def _text(agent: Agent | None = None) -> str:
    return build_registry(agent or _agent()).render().decode()


def _series(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name``."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            found.append((dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)), float(value)))
    return found


def _types(text: str) -> dict[str, str]:
    return dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))


class _Held(AllocationCollector):
    """The holders a scheduler names, as ``collect_once`` asks for them."""

    def __init__(self, held: Holders) -> None:
        super().__init__(gpustat_dir=None, pod_resources_socket=None)
        self.held = held

    def collect(self, monotonic: float) -> Holders:
        return self.held


class _Host:
    def collect(self, ts: datetime, _monotonic: float) -> dict[str, Any]:
        return {"ts": ts.isoformat()}


def _node_agent(
    nvml: Any, held: Holders | None = None, owners: dict[int, dict[str, Any]] | None = None
) -> Agent:
    return Agent(
        AgentSettings(node_name="node-k"),
        NvmlCollector(nvml, pcie_refresh_seconds=None),
        _Host(),
        attribute=lambda pid: (owners or {}).get(pid, {}),
        allocations=None if held is None else _Held(held),
    )


# -- names, types, labels -----------------------------------------------------------------------
def test_dcgm_names_units_types_and_labels() -> None:
    text = _text()
    for name in DCGM:
        assert f"\n{name}{{" in text, name
    types = _types(text)
    for name in DCGM:
        assert types[name] == ("counter" if name in COUNTERS else "gauge"), name
    # dcgm-exporter's counters keep their exact names: no _total appended.
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" not in text
    (labels, used_mib), *_ = _series(text, "DCGM_FI_DEV_FB_USED")
    assert labels["gpu"] == "0"
    assert labels["UUID"].startswith("GPU-")
    assert labels["pci_bus_id"] == "00000000:18:00.0"
    assert labels["device"] == "nvidia0"
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert labels["Hostname"] == "metrics-node"
    assert labels["DCGM_FI_DRIVER_VERSION"] == "550.54.15-sim"
    assert 60_000 < used_mib < 80 * 1024  # MiB, not bytes
    assert [v for _, v in _series(text, "DCGM_FI_DEV_FB_TOTAL")] == [80 * 1024.0] * 3
    (_, watts), *_ = _series(text, "DCGM_FI_DEV_POWER_USAGE")
    assert 100 < watts < 700
    throttle = _series(text, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS")
    assert throttle == _series(text, "DCGM_FI_DEV_CLOCKS_EVENT_REASONS")  # the older name
    assert throttle[1][1] == 0x4 | 0x8 | 0x20 | 0x40  # the throttling GPU
    tensor = {lab["gpu"]: v for lab, v in _series(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")}
    assert 0.5 < tensor["0"] < 0.6  # training at ~95 %: a ratio, not a percentage
    assert tensor["2"] == 0.0  # the unallocated GPU


def test_gpuledger_series() -> None:
    text = _text()
    for name in (
        "gpuledger_host_iowait_ratio",
        "gpuledger_host_memory_used_bytes",
        "gpuledger_process_gpu_memory_bytes{",
        "gpuledger_process_sm_utilization_ratio{",
        "gpuledger_agent_spool_batches 1\n",
        "gpuledger_agent_spool_bytes",
        "gpuledger_agent_dropped_batches_total 0\n",
        "gpuledger_agent_collection_seconds_total",
        "gpuledger_agent_collections_total 2\n",
        "gpuledger_gpu_up{",
        "process_resident_memory_bytes",
    ):
        assert name in text, name
    assert _types(text)["gpuledger_agent_collections_total"] == "counter"


def test_process_series_carry_no_pid_and_no_job_label() -> None:
    a, b, c = SimProcess(4242, 2 * GIB), SimProcess(4343, 3 * GIB), SimProcess(5000, GIB)
    gpu = SimGpu("GPU-1", processes=[a, b, c], process_samples=[(4242, 10, 30), (4343, 10, 20)])
    alice = {"user": "alice", "job_id": "1234"}
    owners = {4242: alice, 4343: alice, 5000: {"user": "bob"}}
    with installed(SimulatedDriver([gpu], pcie_delay_s=0)) as nvml:
        agent = _node_agent(nvml, owners=owners)
        agent.collect_once(TS, 0.0)
        text = _text(agent)
    memory = {
        lab["user"]: (lab, v) for lab, v in _series(text, "gpuledger_process_gpu_memory_bytes")
    }
    assert set(memory) == {"alice", "bob"}  # one series per owner, not per process
    labels, used = memory["alice"]
    assert used == 5 * GIB  # both of alice's processes
    assert labels["hpc_job"] == "1234"
    assert "pid" not in labels
    assert "job" not in labels  # Prometheus would rename it exported_job
    sm = {lab["user"]: v for lab, v in _series(text, "gpuledger_process_sm_utilization_ratio")}
    assert sm == {"alice": 0.5, "bob": 0.0}


def test_holder_labels_on_every_dcgm_series_of_an_allocated_gpu() -> None:
    gpus = [
        SimGpu("GPU-pod"),
        SimGpu("GPU-slurm", pci_bus_id="00000000:19:00.0"),
        SimGpu("GPU-proc", processes=[SimProcess(777)]),
        SimGpu("GPU-free"),
    ]
    held = {
        "GPU-pod": {"pod": "train-0", "namespace": "ml", "container": "trainer"},
        "1": {"job_id": "1234_7", "user": "alice", "account": "lab"},
    }
    owners = {777: {"user": "bob", "pod_name": "infer-1", "namespace": "serve", "pod_uid": "u"}}
    with installed(SimulatedDriver(gpus, pcie_delay_s=0)) as nvml:
        agent = _node_agent(nvml, held, owners)
        agent.collect_once(TS, 0.0)
        text = _text(agent)
    names = sorted(
        {line.split("{")[0] for line in text.splitlines() if line.startswith("DCGM_FI_")}
    )
    assert len(names) > 20
    for name in names:
        by_gpu = {lab["UUID"]: lab for lab, _ in _series(text, name)}
        pod = by_gpu["GPU-pod"]
        assert (pod["pod"], pod["namespace"], pod["container"]) == ("train-0", "ml", "trainer")
        assert by_gpu["GPU-slurm"]["hpc_job"] == "1234_7"
        assert "pod" not in by_gpu["GPU-slurm"]
        # No allocation: its process's owner names it.
        assert (by_gpu["GPU-proc"]["pod"], by_gpu["GPU-proc"]["namespace"]) == ("infer-1", "serve")
        assert not {"pod", "namespace", "container", "hpc_job"} & set(by_gpu["GPU-free"]), name


def test_xid_errors_carry_code_and_message() -> None:
    driver = SimulatedDriver([SimGpu("GPU-0"), SimGpu("GPU-1")], pcie_delay_s=0)
    with installed(driver) as nvml:
        agent = _node_agent(nvml)
        agent.collect_once(TS, 0.0)
        driver.raise_event(1, 79)
        agent.collect_once(TS, 1.0)
        text = _text(agent)
    xid = {lab["UUID"]: (lab, v) for lab, v in _series(text, "DCGM_FI_DEV_XID_ERRORS")}
    labels, value = xid["GPU-1"]
    assert value == 79
    assert (labels["err_code"], labels["err_msg"]) == ("79", "GPU has fallen off the bus")
    labels, value = xid["GPU-0"]
    assert (value, labels["err_code"], labels["err_msg"]) == (0, "0", "No Error")
    total = {lab["UUID"]: v for lab, v in _series(text, "gpuledger_gpu_xid_errors_total")}
    assert total == {"GPU-0": 0, "GPU-1": 1}


def test_mig_instances_have_their_own_memory_series() -> None:
    gpu = SimGpu(
        "GPU-m",
        name="NVIDIA A100-SXM4-80GB",
        processes=[SimProcess(111, 2 * GIB, gi_id=1, ci_id=0)],
        mig_instances=[
            SimMigInstance("MIG-a", gi_id=1, profile="3g.40gb", memory_total_bytes=40 * GIB),
            SimMigInstance("MIG-b", gi_id=2, profile="1g.10gb", memory_used_bytes=GIB),
        ],
    )
    owners = {111: {"user": "carol", "pod_name": "nb-0", "namespace": "lab"}}
    with installed(SimulatedDriver([gpu], pcie_delay_s=0)) as nvml:
        agent = _node_agent(nvml, owners=owners)
        agent.collect_once(TS, 0.0)
        text = _text(agent)
    used = {lab["GPU_I_ID"]: (lab, v) for lab, v in _series(text, "DCGM_FI_DEV_FB_USED")}
    assert set(used) == {"1", "2"}  # per GPU instance, no whole-GPU series
    labels, value = used["2"]
    assert (labels["GPU_I_PROFILE"], labels["UUID"], labels["gpu"]) == ("1g.10gb", "GPU-m", "0")
    assert value == 1024.0
    assert "pod" not in labels
    labels, _ = used["1"]
    assert (labels["GPU_I_PROFILE"], labels["pod"], labels["namespace"]) == (
        "3g.40gb",
        "nb-0",
        "lab",
    )
    total = {lab["GPU_I_ID"]: v for lab, v in _series(text, "DCGM_FI_DEV_FB_TOTAL")}
    assert total == {"1": 40 * 1024.0, "2": 10 * 1024.0}
    # GPU-wide readings stay per GPU, without instance labels.
    ((labels, _),) = _series(text, "DCGM_FI_DEV_GPU_TEMP")
    assert "GPU_I_ID" not in labels


# -- --hostname-label ----------------------------------------------------------------------------
def test_hostname_label_follows_the_option() -> None:
    args = build_parser().parse_args(["--simulate", "1", "--hostname-label", "hostname"])
    settings = settings_from_args(args, base=AgentSettings(node_name="n1"))
    assert settings.hostname_label == "hostname"
    text = _text(_agent(hostname_label=settings.hostname_label))
    ((labels, _),) = _series(text, "DCGM_FI_DEV_GPU_UTIL")[:1]
    assert labels["hostname"] == "metrics-node"
    assert "Hostname" not in labels
    assert from_env({"GPULEDGER_AGENT_HOSTNAME_LABEL": "hostname"}).hostname_label == "hostname"
    default = _series(_text(), "DCGM_FI_DEV_GPU_UTIL")[0][0]
    assert default["Hostname"] == "metrics-node"  # dcgm-exporter's label before its rename


def test_hostname_label_refuses_other_names() -> None:
    args = build_parser().parse_args([])
    with pytest.raises(ValueError, match="hostname-label"):
        settings_from_args(args, base=AgentSettings(hostname_label="host"))


# -- the page: rendered once per collection -----------------------------------------------------
def _get(url: str, **headers: str) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as r:
        return bytes(r.read()), dict(r.headers)


def test_scrapes_between_collections_get_the_same_rendered_page() -> None:
    agent = _agent()
    page = build_registry(agent)
    url = f"http://127.0.0.1:{serve(page, 0, '127.0.0.1')}/metrics"
    first, headers = _get(url)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert _get(url)[0] == first
    zipped, headers = _get(url, **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == first
    assert page.renders == 1  # three scrapes, one rendering
    agent.collect_once(TS, 0.0)
    second, _ = _get(url)
    assert page.renders == 2
    assert second != first
    assert b"gpuledger_agent_collections_total 3\n" in second


def test_promtool_finds_only_dcgm_compatibility_lints() -> None:
    promtool = binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=_text(), capture_output=True, text=True, check=False
    )
    problems = [x for x in (result.stdout + result.stderr).splitlines() if x.strip()]
    # dcgm-exporter's own label names (modelName) and its counters' names without _total, kept
    # so that DCGM dashboards and alert rules work, are the only lints, and only on its series.
    allowed = (
        "label names should be written in 'snake_case' not 'camelCase'",
        'counter metrics should have "_total" suffix',
        "metric name should not include type 'counter'",  # DCGM_FI_DEV_PCIE_REPLAY_COUNTER
    )
    assert [p for p in problems if not any(a in p for a in allowed)] == []
    flagged = {p.split()[0] for p in problems}
    assert all(n.startswith(("DCGM_FI_", "gpuledger_gpu_", "gpuledger_process_")) for n in flagged)
    # promtool read dcgm-exporter's counters as counters, and no other series as one.
    assert {p.split()[0] for p in problems if allowed[1] in p} == COUNTERS


def test_metrics_port_serves_and_prometheus_scrapes_it(tmp_path: Path) -> None:
    port = serve(build_registry(_agent()), 0, "127.0.0.1")
    assert b"DCGM_FI_DEV_GPU_UTIL" in _get(f"http://127.0.0.1:{port}/metrics")[0]
    scrape = f"  - job_name: gpuledger-agent\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    with running_prometheus(tmp_path, scrape) as prometheus:
        result = prometheus.wait_for(
            'DCGM_FI_DEV_GPU_UTIL{Hostname="metrics-node"}', lambda r: len(r) == 3
        )
        assert len(result) == 3, prometheus.log.read_text()[-2000:]
        assert {r["metric"]["gpu"] for r in result} == {"0", "1", "2"}
        assert all(r["metric"]["job"] == "gpuledger-agent" for r in result)
        assert "exported_job" not in result[0]["metric"]
        energy = prometheus.wait_for("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", lambda r: len(r) == 3)
        assert len(energy) == 3
