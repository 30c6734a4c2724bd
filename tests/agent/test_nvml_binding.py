"""The NVML collector over the real nvidia-ml-py binding and a simulated driver library: what
real drivers do (old and new symbols, late loading, lost GPUs, MIG, reserved memory, slow PCIe).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent.collectors.nvml import NvmlCollector
from agent.collectors.nvml_driver import (
    DEPRECATED,
    GIB,
    GPU_IS_LOST,
    LIB_RM_VERSION_MISMATCH,
    MIB,
    NO_PERMISSION,
    NOT_SUPPORTED,
    R470_MISSING,
    RESET_REQUIRED,
    SUCCESS,
    UNKNOWN,
    SimGpu,
    SimMigInstance,
    SimProcess,
    SimulatedDriver,
    installed,
)
from agent.collectors.simulator import SimulatedNvml
from agent.config import AgentSettings
from agent.loop import Agent
from agent.metrics import build_registry
from agent.payload import build_batch
from app.ingest.schemas import IngestBatch

TS = datetime(2026, 11, 1, 12, tzinfo=UTC)
Install = Callable[[SimulatedDriver], ModuleType]


@pytest.fixture
def install() -> Iterator[Install]:
    """Point the process's pynvml at a simulated driver until the test ends."""
    with ExitStack() as stack:
        yield lambda driver: stack.enter_context(installed(driver))


@pytest.fixture
def pid_max(tmp_path: Path) -> Path:
    path = tmp_path / "pid_max"
    path.write_text("4194304\n")
    return path


def _collector(nvml: Any, pid_max: Path, **kw: Any) -> NvmlCollector:
    kw.setdefault("pcie_refresh_seconds", None)  # tests call refresh_pcie() themselves
    return NvmlCollector(nvml, pid_max_path=pid_max, **kw)


def _gpu(uuid: str = "GPU-1", **kw: Any) -> SimGpu:
    return SimGpu(uuid, **kw)


class _Host:
    def collect(self, ts: datetime, _monotonic: float) -> dict[str, Any]:
        return {"ts": ts.isoformat(), "cpu_busy_ratio": 0.5}


def _agent(gpu: Any, node: str = "node-a") -> Agent:
    return Agent(AgentSettings(node_name=node), gpu, _Host())


# -- old drivers, and the loop ----------------------------------------------------------------
def test_r470_driver_falls_back_to_older_calls_and_the_loop_goes_on(
    install: Install, pid_max: Path
) -> None:
    gpu = _gpu(
        memory_used_bytes=10 * GIB,
        temperature_c=66,
        clock_event_reasons=0x4,
        processes=[SimProcess(4242, 5 * GIB)],
    )
    driver = SimulatedDriver([gpu], missing=R470_MISSING, pcie_delay_s=0)
    agent = _agent(_collector(install(driver), pid_max))
    for _ in range(2):
        _, samples, host = agent.collect_once(TS, 0.0)
    assert host["cpu_busy_ratio"] == 0.5
    (s,) = samples
    assert s["status"] == "ok"
    assert [p["pid"] for p in s["processes"]] == [4242]
    assert s["temperature_c"] == 66.0  # nvmlDeviceGetTemperature
    assert s["clock_event_reasons"] == 0x4  # ...ThrottleReasons
    assert s["memory_used_bytes"] == 10 * GIB + 512 * MIB  # v1 counts the reserved memory
    assert driver.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 4  # size, then fill
    assert agent.gpu_error is None


def test_driver_without_the_v2_call_uses_v1_records(install: Install, pid_max: Path) -> None:
    missing = R470_MISSING | {"nvmlDeviceGetComputeRunningProcesses_v2"}
    gpu = _gpu(processes=[SimProcess(4242, 5 * GIB), SimProcess(4343, None)])
    driver = SimulatedDriver([gpu], missing=missing, pcie_delay_s=0)
    _, (s,) = _collector(install(driver), pid_max).collect(TS)
    assert [(p["pid"], p["used_memory_bytes"]) for p in s["processes"]] == [
        (4242, 5 * GIB),
        (4343, None),
    ]
    assert driver.calls["nvmlDeviceGetComputeRunningProcesses"] == 2


def test_any_collector_exception_is_logged_once_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def collect(self, ts: datetime) -> Any:
            raise ValueError("a reading nobody expected")

    agent = _agent(Broken())
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            gpus, samples, host = agent.collect_once(TS, 0.0)
    assert (gpus, samples) == ([], [])
    assert host["cpu_busy_ratio"] == 0.5
    assert agent.cycles == 3
    assert "ValueError" in (agent.gpu_error or "")
    assert len([r for r in caplog.records if "no GPU readings" in r.getMessage()]) == 1


# -- a driver that loads after the agent started ----------------------------------------------
def test_late_driver_is_retried_with_backoff_and_nvml_up_follows(
    install: Install, pid_max: Path
) -> None:
    driver = SimulatedDriver([_gpu()], init_failures=3, pcie_delay_s=0)
    t = [0.0]
    agent = _agent(_collector(install(driver), pid_max, clock=lambda: t[0]))
    attempts = []
    for now in (0.0, 0.5, 1.0, 2.9, 3.0, 6.9, 7.0):
        t[0] = now
        _, samples, _ = agent.collect_once(TS, now)
        attempts.append(driver.init_attempts)
        text = build_registry(agent).render().decode()
        up = "gpuledger_agent_nvml_up 1\n" in text
        assert up == bool(samples), now
        assert up or "gpuledger_agent_nvml_up 0\n" in text
    # Tries at 0, 1 (+1 s), 3 (+2 s) and 7 (+4 s): the fourth one finds the driver.
    assert attempts == [1, 1, 2, 2, 3, 3, 4]
    assert samples[0]["gpu_uuid"] == "GPU-1"


def test_init_backoff_doubles_up_to_a_minute(install: Install, pid_max: Path) -> None:
    driver = SimulatedDriver([_gpu()], init_failures=1000, pcie_delay_s=0)
    t = [0.0]
    collector = _collector(install(driver), pid_max, clock=lambda: t[0])
    tried_at = []
    for step in range(1201):  # ten minutes in half seconds
        t[0] = step / 2
        before = driver.init_attempts
        _agent(collector).collect_once(TS, t[0])
        if driver.init_attempts > before:
            tried_at.append(t[0])
    assert tried_at == [0, 1, 3, 7, 15, 31, 63, *range(123, 601, 60)]


# -- GPUs that cannot be opened or read -------------------------------------------------------
def _unreadable_node() -> list[SimGpu]:
    return [
        _gpu("GPU-ok"),
        # The device cgroup hides it: no handle at all.
        _gpu("GPU-hidden", faults={"nvmlDeviceGetHandleByIndex_v2": NO_PERMISSION}),
        # Fallen off the bus before its UUID was read; its PCI info still answers.
        _gpu(
            "GPU-gone",
            pci_bus_id="00000000:3B:00.0",
            faults={
                "*": GPU_IS_LOST,
                "nvmlDeviceGetHandleByIndex_v2": SUCCESS,
                "nvmlDeviceGetPciInfo_v3": SUCCESS,
            },
        ),
        _gpu("GPU-also-ok"),
    ]


def test_unopenable_gpus_get_node_scoped_keys_and_healthy_ones_flow(
    install: Install, pid_max: Path
) -> None:
    keys = {}
    for node in ("node-a", "node-b"):
        driver = SimulatedDriver(_unreadable_node(), pcie_delay_s=0)
        agent = _agent(_collector(install(driver), pid_max), node=node)
        gpus, samples, host = agent.collect_once(TS, 0.0)
        batch = build_batch(
            node=agent.node_identity(), gpus=gpus, samples=samples, host_samples=[host]
        )
        IngestBatch.model_validate(batch)  # the backend takes the whole batch
        keys[node] = [g["uuid"] for g in gpus]
        assert [s["status"] for s in samples] == [
            "ok",
            "error",
            "lost",
            "ok",
        ]  # no permission; lost
        assert samples[0]["utilization_gpu"] is not None
    assert keys["node-a"] == [
        "GPU-ok",
        "node:node-a:gpu1",
        "node:node-a:pci:00000000:3B:00.0",
        "GPU-also-ok",
    ]
    assert not set(keys["node-a"][1:3]) & set(keys["node-b"])  # no id two nodes could send


def test_node_scoped_keys_fit_the_backend_column(install: Install, pid_max: Path) -> None:
    driver = SimulatedDriver([_gpu(faults={"*": NO_PERMISSION})], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max, node="n" * 200)
    (gpu,), _ = collector.collect(TS)
    assert gpu["uuid"].startswith("node:")
    assert gpu["uuid"].endswith(":gpu0")
    assert len(gpu["uuid"]) <= 100


@pytest.mark.parametrize(
    ("code", "reason", "status"),
    [
        (GPU_IS_LOST, "GpuIsLost", "lost"),
        (RESET_REQUIRED, "ResetRequired", "reset_required"),
        (LIB_RM_VERSION_MISMATCH, "LibRmVersionMismatch", "driver_mismatch"),
        (UNKNOWN, "Unknown", "error"),
    ],
)
def test_gpu_failing_a_reading_is_not_ok(
    install: Install,
    pid_max: Path,
    code: int,
    reason: str,
    status: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = _gpu("GPU-bad")
    driver = SimulatedDriver([bad, _gpu("GPU-good")], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max)
    collector.collect(TS)
    bad.faults["nvmlDeviceGetPowerUsage"] = code
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            gpus, samples = collector.collect(TS)
    assert gpus[0] == {"uuid": "GPU-bad", "index": 0, "status": status}
    assert samples[0] == {"gpu_uuid": "GPU-bad", "ts": TS.isoformat(), "status": status}
    IngestBatch.model_validate(  # the backend knows every status the agent sends
        build_batch(node={"name": "n"}, gpus=gpus, samples=samples, host_samples=[])
    )
    assert collector.details["GPU-bad"].status_reason == reason
    assert samples[1]["status"] == "ok"
    assert len([r for r in caplog.records if "GPU-bad" in r.getMessage()]) == 1
    del bad.faults["nvmlDeviceGetPowerUsage"]
    _, samples = collector.collect(TS)
    assert samples[0]["status"] == "ok"


# -- processes ----------------------------------------------------------------------------------
def test_implausible_pids_are_dropped_and_logged_once(
    install: Install, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "pid_max").write_text("32768\n")
    gpu = _gpu(processes=[SimProcess(0), SimProcess(1234), SimProcess(32768), SimProcess(32767)])
    collector = _collector(install(SimulatedDriver([gpu], pcie_delay_s=0)), tmp_path / "pid_max")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            _, (s,) = collector.collect(TS)
    assert [p["pid"] for p in s["processes"]] == [1234, 32767]
    assert len([r for r in caplog.records if "implausible pids" in r.getMessage()]) == 1


def test_record_size_mismatch_sends_no_garbage_pids(install: Install, pid_max: Path) -> None:
    gpu = _gpu(
        processes=[SimProcess(1234, 5 * GIB), SimProcess(2345, 3 * GIB), SimProcess(3456, GIB)],
        record_size_mismatch=True,
    )
    _, (s,) = _collector(install(SimulatedDriver([gpu], pcie_delay_s=0)), pid_max).collect(TS)
    assert [p["pid"] for p in s["processes"]] == [1234]  # the records after it are shifted


def test_listed_process_without_samples_is_idle_not_unknown(
    install: Install, pid_max: Path
) -> None:
    gpu = _gpu(processes=[SimProcess(7), SimProcess(8)], process_samples=[(7, 1_000, 60)])
    driver = SimulatedDriver([gpu], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max)
    _, (s,) = collector.collect(TS)
    assert [p["sm_utilization"] for p in s["processes"]] == [60.0, 0.0]
    _, (s,) = collector.collect(TS)  # no sample since the last reading: NOT_FOUND
    assert [p["sm_utilization"] for p in s["processes"]] == [0.0, 0.0]
    gpu.faults["nvmlDeviceGetProcessUtilization"] = NOT_SUPPORTED
    _, (s,) = collector.collect(TS)  # not known at all: null, not 0
    assert [p["sm_utilization"] for p in s["processes"]] == [None, None]


# -- MIG ----------------------------------------------------------------------------------------
def test_mig_instances_and_their_processes(install: Install, pid_max: Path) -> None:
    gpu = _gpu(
        "GPU-m",
        name="NVIDIA A100-SXM4-80GB",
        processes=[SimProcess(111, 2 * GIB, gi_id=1, ci_id=0), SimProcess(222, GIB, 2, 0)],
        mig_instances=[
            SimMigInstance("MIG-aaaa", gi_id=1, profile="3g.40gb", memory_total_bytes=40 * GIB),
            SimMigInstance("MIG-bbbb", gi_id=2, profile="1g.10gb", memory_used_bytes=GIB),
        ],
    )
    collector = _collector(install(SimulatedDriver([gpu], pcie_delay_s=0)), pid_max)
    (g,), (s,) = collector.collect(TS)
    assert g["mig_mode"] is True
    assert g["mig_instances"] == [
        {
            "uuid": "MIG-aaaa",
            "gi_id": 1,
            "ci_id": 0,
            "profile": "3g.40gb",
            "memory_total_bytes": 40 * GIB,
            "memory_used_bytes": 0,
        },
        {
            "uuid": "MIG-bbbb",
            "gi_id": 2,
            "ci_id": 0,
            "profile": "1g.10gb",
            "memory_total_bytes": 10 * GIB,
            "memory_used_bytes": GIB,
        },
    ]
    mig = collector.details["GPU-m"].mig_instances
    assert [(m["uuid"], m["pids"]) for m in mig] == [("MIG-aaaa", [111]), ("MIG-bbbb", [222])]
    assert s["utilization_gpu"] is None  # not supported on a MIG-enabled GPU: never 0
    batch = build_batch(node={"name": "n"}, gpus=[g], samples=[s], host_samples=[])
    assert IngestBatch.model_validate(batch).gpus[0].mig_instances is not None
    assert s["utilization_memory"] is None
    assert [p["sm_utilization"] for p in s["processes"]] == [None, None]
    # Each process names the instance it runs on (stored by the backend with the process).
    assert [(p["gpu_instance_id"], p["compute_instance_id"]) for p in s["processes"]] == [
        (1, 0), (2, 0),
    ]  # fmt: skip


# -- memory -------------------------------------------------------------------------------------
def test_memory_v2_leaves_reserved_memory_out_of_used(install: Install, pid_max: Path) -> None:
    gpu = _gpu(memory_used_bytes=10 * GIB, memory_reserved_bytes=512 * MIB)
    collector = _collector(install(SimulatedDriver([gpu], pcie_delay_s=0)), pid_max)
    agent = _agent(collector)
    _, (s,), _ = agent.collect_once(TS, 0.0)
    assert s["memory_used_bytes"] == 10 * GIB
    assert s["memory_total_bytes"] == 80 * GIB
    assert collector.details["GPU-1"].memory_reserved_bytes == 512 * MIB
    assert s["memory_reserved_bytes"] == 512 * MIB  # sent apart, and stored by the backend
    text = build_registry(agent).render().decode()
    assert _value(text, "DCGM_FI_DEV_FB_RESERVED") == 512.0
    assert _value(text, "DCGM_FI_DEV_FB_USED") == 10 * 1024.0
    assert _value(text, "DCGM_FI_DEV_FB_FREE") == 80 * 1024 - 10 * 1024 - 512.0


def _value(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


# -- PCIe ---------------------------------------------------------------------------------------
def test_pcie_throughput_is_read_off_the_collection_path(install: Install, pid_max: Path) -> None:
    slept: list[float] = []
    gpus = [_gpu(f"GPU-{i}", pcie_rx_kb=100 + i, pcie_tx_kb=10) for i in range(8)]
    driver = SimulatedDriver(gpus, sleep=slept.append)
    collector = _collector(install(driver), pid_max)
    _, samples = collector.collect(TS)
    assert driver.calls["nvmlDeviceGetPcieThroughput"] == 0
    assert samples[0]["pcie_rx_bytes_per_s"] is None  # nothing read yet
    collector.refresh_pcie()  # what the background thread does every pcie_refresh_seconds
    assert driver.calls["nvmlDeviceGetPcieThroughput"] == 16
    assert slept == [0.02] * 16  # each call blocks in the driver
    _, samples = collector.collect(TS)
    assert driver.calls["nvmlDeviceGetPcieThroughput"] == 16  # collect() never calls it
    assert [s["pcie_rx_bytes_per_s"] for s in samples] == [(100 + i) * 1024.0 for i in range(8)]
    assert samples[0]["pcie_tx_bytes_per_s"] == 10 * 1024.0


def test_first_collection_primes_pcie_then_the_thread_takes_over(
    install: Install, pid_max: Path
) -> None:
    driver = SimulatedDriver([_gpu(pcie_rx_kb=5)], sleep=lambda _s: None)
    collector = _collector(install(driver), pid_max, pcie_refresh_seconds=3600.0)
    try:
        _, (s,) = collector.collect(TS)
        assert s["pcie_rx_bytes_per_s"] == 5 * 1024.0
        for _ in range(5):
            collector.collect(TS)
        assert driver.calls["nvmlDeviceGetPcieThroughput"] == 2
    finally:
        collector.close()


# -- deprecated calls ---------------------------------------------------------------------------
def test_temperature_v_is_tried_first(install: Install, pid_max: Path) -> None:
    driver = SimulatedDriver([_gpu(temperature_c=71)], pcie_delay_s=0)
    _, (s,) = _collector(install(driver), pid_max).collect(TS)
    assert s["temperature_c"] == 71.0
    assert driver.calls["nvmlDeviceGetTemperatureV"] == 1
    assert driver.calls["nvmlDeviceGetTemperature"] == 0


def test_clock_event_reasons_are_tried_first(install: Install, pid_max: Path) -> None:
    driver = SimulatedDriver([_gpu(clock_event_reasons=0x40)], pcie_delay_s=0)
    _, (s,) = _collector(install(driver), pid_max).collect(TS)
    assert s["clock_event_reasons"] == 0x40
    assert driver.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1
    assert driver.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 0


def test_driver_without_deprecated_calls(install: Install, pid_max: Path) -> None:
    gpu = _gpu(temperature_c=71, clock_event_reasons=0x40)
    driver = SimulatedDriver([gpu], missing=DEPRECATED, pcie_delay_s=0)
    _, (s,) = _collector(install(driver), pid_max).collect(TS)
    assert (s["temperature_c"], s["clock_event_reasons"]) == (71.0, 0x40)


# -- the demo's simulator -----------------------------------------------------------------------
def test_simulated_nodes_run_their_own_copy_of_the_binding(pid_max: Path) -> None:
    import pynvml

    a = SimulatedNvml(["training"], node="a", clock=lambda: 1e9, pcie_delay_s=0)
    b = SimulatedNvml(["unallocated", "xid"], node="b", clock=lambda: 1e9, pcie_delay_s=0)
    assert a.binding is not b.binding
    # nvidia-ml-py's own code, not a look-alike.
    assert a.nvmlDeviceGetCount.__code__ == pynvml.nvmlDeviceGetCount.__code__
    gpus_a, _ = _collector(a, pid_max).collect(TS)
    gpus_b, _ = _collector(b, pid_max).collect(TS)
    assert (len(gpus_a), len(gpus_b)) == (1, 2)
    assert a.driver.calls["nvmlDeviceGetCount_v2"] == b.driver.calls["nvmlDeviceGetCount_v2"] == 1


# -- readings for /metrics only ------------------------------------------------------------------
def _dcgm(text: str, name: str) -> dict[str, float]:
    """Value of ``name`` by GPU UUID."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            uuid = line.split('UUID="', 1)[1].split('"', 1)[0]
            found[uuid] = float(line.rsplit(" ", 1)[1])
    return found


def test_metrics_readings_over_the_binding(install: Install, pid_max: Path) -> None:
    gpu = _gpu(
        memory_temperature_c=58,
        fan_speed_percent=41,
        encoder_utilization=12,
        decoder_utilization=34,
        pcie_replays=5,
        ecc_corrected=7,
        ecc_uncorrected=1,
        ecc_corrected_aggregate=70,
        ecc_uncorrected_aggregate=3,
        remapped_rows_correctable=2,
        remapped_rows_uncorrectable=1,
        remap_failure=True,
    )
    collector = _collector(install(SimulatedDriver([gpu], pcie_delay_s=0)), pid_max)
    agent = _agent(collector)
    agent.collect_once(TS, 0.0)
    assert collector.details["GPU-1"].pci_bus_id == "00000000:18:00.0"
    text = build_registry(agent).render().decode()
    expected = {
        "DCGM_FI_DEV_MEMORY_TEMP": 58,
        "DCGM_FI_DEV_FAN_SPEED": 41,
        "DCGM_FI_DEV_ENC_UTIL": 12,
        "DCGM_FI_DEV_DEC_UTIL": 34,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 5,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": 7,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 1,
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": 70,
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": 3,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 2,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 1,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE": 1,
    }
    assert {name: _dcgm(text, name).get("GPU-1") for name in expected} == expected
    assert 'pci_bus_id="00000000:18:00.0"' in text
    assert 'DCGM_FI_DRIVER_VERSION="550.54.15"' in text


def test_unsupported_readings_are_absent_and_not_asked_again(
    install: Install, pid_max: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A PCIe board before Ampere: no fan reading here, no memory sensor, NVLink, ECC, row
    # remapping or GPM; no video engines either.
    old = _gpu(
        "GPU-old",
        name="Tesla T4",
        memory_temperature_c=None,
        nvlink_rx_kib=None,
        nvlink_tx_kib=None,
        ecc_corrected=None,
        remapped_rows_correctable=None,
        encoder_utilization=None,
        decoder_utilization=None,
    )
    driver = SimulatedDriver([old, _gpu("GPU-new", fan_speed_percent=30)], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max, clock=lambda: 0.0)  # slow readings once
    agent = _agent(collector)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            agent.collect_once(TS, 0.0)
    text = build_registry(agent).render().decode()
    for name in (
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_FAN_SPEED",
        "DCGM_FI_DEV_ENC_UTIL",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "DCGM_FI_PROF_SM_ACTIVE",
    ):
        assert "GPU-old" not in _dcgm(text, name), name
    assert _dcgm(text, "DCGM_FI_DEV_PCIE_REPLAY_COUNTER") == {"GPU-old": 0, "GPU-new": 0}
    assert _dcgm(text, "DCGM_FI_DEV_FAN_SPEED") == {"GPU-new": 30}
    assert "GPU-new" in _dcgm(text, "DCGM_FI_DEV_ENC_UTIL")
    # Each unsupported call was made once, for GPU-old; GPU-new's fan three times.
    assert driver.calls["nvmlDeviceGetFanSpeed"] == 1 + 3
    assert driver.calls["nvmlDeviceGetEncoderUtilization"] == 1 + 3
    # Fields: GPU-old's first call found nothing it supports; GPU-new asks every time.
    assert driver.calls["nvmlDeviceGetFieldValues"] == (1 + 1) + (3 + 1)
    assert driver.calls["nvmlGpmSampleGet"] == 3  # GPU-new only: the first, then one each time
    # Not supported is normal for a GPU: no warnings beyond the wire's own ECC reading.
    warned = [r.getMessage() for r in caplog.records if "GPU-old" in r.getMessage()]
    assert [m for m in warned if "ecc_uncorrected" not in m] == []


def test_slow_readings_are_read_once_a_minute(install: Install, pid_max: Path) -> None:
    gpu = _gpu(ecc_corrected=1, pcie_replays=1)
    t = [100.0]
    driver = SimulatedDriver([gpu], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max, clock=lambda: t[0])
    readings = []
    for now in (100.0, 110.0, 159.0, 160.0, 170.0):
        t[0] = now
        gpu.ecc_corrected, gpu.pcie_replays = int(now), int(now) + 1
        collector.collect(TS)
        r = collector.details["GPU-1"].readings
        readings.append((r["ecc_sbe_volatile"], r["pcie_replays"]))
    # Between reads, the last values (a minute at most behind); the temperature every time.
    assert readings == [(100, 101)] * 3 + [(160, 161)] * 2
    assert driver.calls["nvmlDeviceGetFieldValues"] == 5 + 2


def test_nvlink_bandwidth_as_dcgm_reports_it(install: Install, pid_max: Path) -> None:
    gpu = _gpu(nvlink_rx_kib=1_000, nvlink_tx_kib=0)
    t = [1_000.0]
    driver = SimulatedDriver([gpu], pcie_delay_s=0, clock=lambda: t[0])
    collector = _collector(install(driver), pid_max)
    bandwidth = []
    for rx, tx in ((1_000, 0), (3_001_000, 1_000_000), (3_001_000, 1_000_000), (0, 0)):
        gpu.nvlink_rx_kib, gpu.nvlink_tx_kib = rx, tx
        collector.collect(TS)
        bandwidth.append(collector.details["GPU-1"].readings.get("nvlink_bandwidth"))
        t[0] += 10  # the driver's timestamps, 10 s apart
    # (4,000,000 KiB both ways / 10 s) / 1000; idle: 0; a counter reset: no value.
    assert bandwidth == [None, 400.0, 0.0, None]


def test_gpm_profiling_ratios_on_hopper(install: Install, pid_max: Path) -> None:
    h100 = _gpu("GPU-h", utilization_gpu=80, utilization_memory=50)
    a100 = _gpu("GPU-a", name="NVIDIA A100-SXM4-80GB", utilization_gpu=80)
    driver = SimulatedDriver([h100, a100], pcie_delay_s=0)
    collector = _collector(install(driver), pid_max)
    agent = _agent(collector)
    agent.collect_once(TS, 0.0)  # the first sample
    assert "sm_active" not in collector.details["GPU-h"].readings
    h100.utilization_gpu = 60
    agent.collect_once(TS, 1.0)
    text = build_registry(agent).render().decode()
    assert _dcgm(text, "DCGM_FI_PROF_GR_ENGINE_ACTIVE") == {"GPU-h": 0.6}
    assert _dcgm(text, "DCGM_FI_PROF_SM_ACTIVE") == {"GPU-h": pytest.approx(0.54)}
    assert _dcgm(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE") == {"GPU-h": pytest.approx(0.36)}
    assert _dcgm(text, "DCGM_FI_PROF_DRAM_ACTIVE") == {"GPU-h": 0.5}
    # Two samples alternate: each query is between the last collection's sample and a new one.
    assert driver.calls["nvmlGpmSampleAlloc"] == 2
    assert driver.calls["nvmlGpmSampleGet"] == 2
    assert driver.calls["nvmlGpmQueryDeviceSupport"] == 2  # once per GPU
    for _ in range(2):
        agent.collect_once(TS, 2.0)
    assert driver.calls["nvmlGpmMetricsGet"] == 3
    assert driver.calls["nvmlGpmQueryDeviceSupport"] == 2
    collector.close()
    assert driver.gpm_samples == {}  # freed


def test_no_gpm_on_an_old_driver_or_under_mig(install: Install, pid_max: Path) -> None:
    mig = _gpu("GPU-m", mig_instances=[SimMigInstance("MIG-a", gi_id=1)])
    driver = SimulatedDriver([_gpu("GPU-h"), mig], missing=R470_MISSING, pcie_delay_s=0)
    collector = _collector(install(driver), pid_max)
    for _ in range(3):
        _, samples = collector.collect(TS)
    assert [s["status"] for s in samples] == ["ok", "ok"]
    assert not any("sm_active" in d.readings for d in collector.details.values())
    assert driver.calls["nvmlGpmSampleGet"] == 0
    new_driver = SimulatedDriver([mig], pcie_delay_s=0)
    collector = _collector(install(new_driver), pid_max)
    for _ in range(3):
        collector.collect(TS)
    assert "sm_active" not in collector.details["GPU-m"].readings
    assert new_driver.calls["nvmlGpmQueryDeviceSupport"] == 0
