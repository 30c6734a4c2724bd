"""The NVML collector over the real binding and a simulated driver: every field, XID events,
unsupported fields, a lost GPU, a missing driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from agent.collectors.nvml import NvmlCollector, NvmlUnavailable
from agent.collectors.nvml_driver import (
    GIB,
    GPU_IS_LOST,
    MIB,
    NOT_SUPPORTED,
    SimGpu,
    SimProcess,
    SimulatedDriver,
    installed,
)

TS = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def pid_max(tmp_path: Path) -> Path:
    path = tmp_path / "pid_max"
    path.write_text("4194304\n")
    return path


@pytest.fixture
def one(pid_max: Path) -> Iterator[Any]:
    """``one(gpu, ...)`` → (collector, driver) over the process's pynvml."""
    with ExitStack() as stack:

        def make(*gpus: SimGpu, **kw: Any) -> tuple[NvmlCollector, SimulatedDriver]:
            driver = SimulatedDriver(list(gpus), pcie_delay_s=0, **kw)
            nvml = stack.enter_context(installed(driver))
            collector = NvmlCollector(nvml, pid_max_path=pid_max, pcie_refresh_seconds=None)
            return collector, driver

        yield make


def test_reads_every_field(one: Any) -> None:
    gpu = SimGpu(
        "GPU-1",
        name="NVIDIA A100-SXM4-80GB",
        memory_used_bytes=20 * GIB,
        utilization_gpu=87,
        utilization_memory=40,
        power_mw=312_456,
        power_limit_mw=400_000,
        energy_mj=9_876_543,
        temperature_c=61,
        sm_clock_mhz=1410,
        mem_clock_mhz=1593,
        pcie_rx_kb=1200,
        pcie_tx_kb=300,
        clock_event_reasons=0x40,
        ecc_uncorrected=3,
        processes=[SimProcess(4242, 5 * GIB)],
        process_samples=[(4242, 1_000, 70), (4242, 2_000, 90)],
    )
    collector, _ = one(gpu)
    collector.refresh_pcie()  # no handles yet: nothing read
    collector.collect(TS)
    collector.refresh_pcie()
    (g,), (s,) = collector.collect(TS)
    assert g == {
        "uuid": "GPU-1",
        "index": 0,
        "model": "NVIDIA A100-SXM4-80GB",
        "memory_total_bytes": 80 * GIB,
        "mig_mode": False,
        "status": "ok",
    }
    assert s["utilization_gpu"] == 87.0
    assert s["utilization_memory"] == 40.0
    assert s["memory_used_bytes"] == 20 * GIB
    assert s["power_watts"] == pytest.approx(312.456)
    assert s["power_limit_watts"] == 400.0
    assert s["energy_mj"] == 9_876_543
    assert s["temperature_c"] == 61.0
    assert (s["sm_clock_mhz"], s["mem_clock_mhz"]) == (1410, 1593)
    assert s["pcie_rx_bytes_per_s"] == 1200 * 1024
    assert s["pcie_tx_bytes_per_s"] == 300 * 1024
    assert s["clock_event_reasons"] == 0x40
    assert s["ecc_uncorrected"] == 3
    assert s["xid_errors"] == 0
    assert collector.details["GPU-1"].memory_reserved_bytes == 512 * MIB
    assert collector.driver_version == "550.54.15"


def test_process_utilization_only_counts_new_samples(one: Any) -> None:
    gpu = SimGpu("GPU-1", processes=[SimProcess(7, 1)], process_samples=[(7, 1_000, 50)])
    collector, _ = one(gpu)
    _, (s,) = collector.collect(TS)
    assert s["processes"] == [{"pid": 7, "used_memory_bytes": 1, "sm_utilization": 50.0}]
    gpu.process_samples.append((7, 5_000, 30))
    _, (s,) = collector.collect(TS)
    assert s["processes"][0]["sm_utilization"] == 30.0


def test_unsupported_fields_are_none_and_logged_once(
    one: Any, caplog: pytest.LogCaptureFixture
) -> None:
    unsupported = (
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetPcieThroughput",
    )
    gpu = SimGpu("GPU-1", utilization_gpu=87, faults=dict.fromkeys(unsupported, NOT_SUPPORTED))
    collector, _ = one(gpu)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            collector.refresh_pcie()
            _, (s,) = collector.collect(TS)
    assert s["energy_mj"] is None
    assert s["ecc_uncorrected"] is None
    assert s["clock_event_reasons"] is None  # NotSupported is not "missing": no fallback
    assert s["pcie_rx_bytes_per_s"] is None
    assert s["utilization_gpu"] == 87.0
    energy_logs = [r for r in caplog.records if "energy unavailable" in r.getMessage()]
    assert len(energy_logs) == 1


def test_older_binding_without_a_function(one: Any) -> None:
    """An older nvidia-ml-py without nvmlDeviceGetTemperatureV: the older function is used."""
    collector, driver = one(SimGpu("GPU-1", temperature_c=55))
    module = collector._nvml
    assert isinstance(module, ModuleType)
    names = {n: getattr(module, n) for n in dir(module) if n != "nvmlDeviceGetTemperatureV"}
    collector._nvml = SimpleNamespace(**names)
    _, (s,) = collector.collect(TS)
    assert s["temperature_c"] == 55.0
    assert driver.calls["nvmlDeviceGetTemperatureV"] == 0


def test_lost_gpu_is_reported_and_others_go_on(one: Any, caplog: pytest.LogCaptureFixture) -> None:
    a, b = SimGpu("GPU-a"), SimGpu("GPU-b")
    collector, _ = one(a, b)
    collector.collect(TS)
    a.faults["*"] = GPU_IS_LOST
    with caplog.at_level(logging.ERROR):
        gpus, samples = collector.collect(TS)
        collector.collect(TS)
    assert gpus[0] == {"uuid": "GPU-a", "index": 0, "status": "lost"}
    assert samples[0] == {"gpu_uuid": "GPU-a", "ts": TS.isoformat(), "status": "lost"}
    assert samples[1]["status"] == "ok"
    assert len([r for r in caplog.records if "fallen off the bus" in r.getMessage()]) == 1


def test_no_library_is_a_clear_error(pid_max: Path) -> None:
    import pynvml

    class NoLibrary:
        NVMLError = pynvml.NVMLError

        def nvmlInit(self) -> None:  # noqa: N802  (pynvml's name)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    collector = NvmlCollector(NoLibrary(), clock=lambda: 0.0, pid_max_path=pid_max)
    with pytest.raises(NvmlUnavailable, match="driver installed"):
        collector.collect(TS)


def test_init_once(one: Any) -> None:
    collector, driver = one(SimGpu("GPU-1"))
    for _ in range(3):
        collector.collect(TS)
    assert driver.init_attempts == 1


def test_xid_events_are_polled_without_blocking(one: Any) -> None:
    collector, driver = one(SimGpu("GPU-a"), SimGpu("GPU-b"))
    collector.collect(TS)
    driver.raise_event(1, 79)
    driver.raise_event(1, 48)
    _, samples = collector.collect(TS)
    assert [s["xid_errors"] for s in samples] == [0, 2]
    assert collector.last_xid == {"GPU-b": 48}
    assert collector.xid_total == {"GPU-b": 2}
    assert set(driver.event_waits) == {0}  # never a blocking wait
    _, samples = collector.collect(TS)
    assert [s["xid_errors"] for s in samples] == [0, 0]


def test_gpu_without_xid_events_is_not_registered(one: Any) -> None:
    collector, driver = one(SimGpu("GPU-a", supported_events=0))
    _, (s,) = collector.collect(TS)
    assert s["xid_errors"] == 0  # the event set exists; this GPU never registers
    assert driver.calls["nvmlDeviceRegisterEvents"] == 0


def test_memory_not_available_is_none(one: Any) -> None:
    collector, _ = one(SimGpu("GPU-1", processes=[SimProcess(9, None)]))
    _, (s,) = collector.collect(TS)
    assert s["processes"][0]["used_memory_bytes"] is None
