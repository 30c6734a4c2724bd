"""The NVML collector over a fake ``pynvml``: every field, and every way NVML can fail."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from agent.collectors.nvml import NvmlCollector, NvmlUnavailable
from tests.agent.fake_pynvml import FakeDevice, FakeMig, FakeNvml

TS = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _one(device: FakeDevice, **kw: bool) -> tuple[NvmlCollector, FakeNvml]:
    fake = FakeNvml([device], **kw)
    return NvmlCollector(fake), fake


def test_reads_every_field() -> None:
    dev = FakeDevice(
        "GPU-1",
        reasons=0x40,
        ecc=3,
        processes=[(4242, 5 * 1024**3)],
        process_util=[(4242, 1_000, 70), (4242, 2_000, 90)],
    )
    collector, _ = _one(dev)
    (gpu,), (s,) = collector.collect(TS)
    assert gpu == {
        "uuid": "GPU-1",
        "index": 0,
        "model": "NVIDIA A100-SXM4-80GB",
        "memory_total_bytes": 80 * 1024**3,
        "mig_mode": False,
        "status": "ok",
    }
    assert s["utilization_gpu"] == 87.0
    assert s["utilization_memory"] == 40.0
    assert s["memory_used_bytes"] == 20 * 1024**3
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
    assert s["processes"] == [
        {"pid": 4242, "used_memory_bytes": 5 * 1024**3, "sm_utilization": 90.0}
    ]


def test_process_utilization_only_counts_new_samples() -> None:
    dev = FakeDevice("GPU-1", processes=[(7, 1)], process_util=[(7, 1_000, 50)])
    collector, _ = _one(dev)
    collector.collect(TS)
    _, (s,) = collector.collect(TS)  # no sample newer than 1_000: NotFound, not an error
    assert s["processes"][0]["sm_utilization"] is None
    dev.process_util.append((7, 5_000, 30))
    _, (s,) = collector.collect(TS)
    assert s["processes"][0]["sm_utilization"] == 30.0


def test_unsupported_fields_are_none_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    dev = FakeDevice("GPU-1", unsupported={"energy", "pcie", "ecc", "clock_event_reasons"})
    collector, _ = _one(dev, old_bindings=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            _, (s,) = collector.collect(TS)
    assert s["energy_mj"] is None
    assert s["pcie_rx_bytes_per_s"] is None
    assert s["ecc_uncorrected"] is None
    assert s["clock_event_reasons"] is None
    assert s["utilization_gpu"] == 87.0
    energy_logs = [r for r in caplog.records if "energy unavailable" in r.getMessage()]
    assert len(energy_logs) == 1


def test_old_bindings_fall_back_to_throttle_reasons() -> None:
    collector, fake = _one(FakeDevice("GPU-1", reasons=0x4), old_bindings=True)
    _, (s,) = collector.collect(TS)
    assert s["clock_event_reasons"] == 0x4
    assert "clock_throttle_reasons" in fake.calls


def test_lost_gpu_is_reported_and_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    a, b = FakeDevice("GPU-a"), FakeDevice("GPU-b")
    fake = FakeNvml([a, b])
    collector = NvmlCollector(fake)
    collector.collect(TS)
    a.lost = True
    with caplog.at_level(logging.ERROR):
        gpus, samples = collector.collect(TS)
        collector.collect(TS)
    assert gpus[0] == {"uuid": "GPU-a", "index": 0, "status": "lost"}
    assert samples[0] == {"gpu_uuid": "GPU-a", "ts": TS.isoformat(), "status": "lost"}
    assert samples[1]["status"] == "ok"
    assert len([r for r in caplog.records if "fallen off the bus" in r.getMessage()]) == 1


def test_no_driver_is_a_clear_error_and_init_is_tried_once() -> None:
    collector, fake = _one(FakeDevice("GPU-1"), no_driver=True)
    for _ in range(2):
        with pytest.raises(NvmlUnavailable, match="driver installed"):
            collector.collect(TS)
    assert fake.inits == 1


def test_init_once() -> None:
    collector, fake = _one(FakeDevice("GPU-1"))
    for _ in range(3):
        collector.collect(TS)
    assert fake.inits == 1


def test_xid_events_are_polled_without_blocking() -> None:
    a, b = FakeDevice("GPU-a"), FakeDevice("GPU-b")
    fake = FakeNvml([a, b])
    collector = NvmlCollector(fake)
    collector.collect(TS)
    fake.events += [(b, 79), (b, 48)]
    _, samples = collector.collect(TS)
    assert [s["xid_errors"] for s in samples] == [0, 2]
    assert collector.last_xid == {"GPU-b": 48}
    assert collector.xid_total == {"GPU-b": 2}
    assert set(fake.waits) == {0}  # never a blocking wait
    _, samples = collector.collect(TS)
    assert [s["xid_errors"] for s in samples] == [0, 0]


def test_mig_instances() -> None:
    dev = FakeDevice(
        "GPU-m",
        mig=[
            FakeMig(1, 0, "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 20 * 1024**3, 1024**3),
            FakeMig(2, 0, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 5 * 1024**3, 0),
        ],
        unsupported={"utilization"},  # as on a real MIG-enabled parent
    )
    collector, _ = _one(dev)
    (gpu,), (s,) = collector.collect(TS)
    assert gpu["mig_mode"] is True
    assert gpu["mig_instances"] == [
        {
            "gi_id": 1,
            "ci_id": 0,
            "profile": "3g.20gb",
            "memory_total_bytes": 20 * 1024**3,
            "memory_used_bytes": 1024**3,
        },
        {
            "gi_id": 2,
            "ci_id": 0,
            "profile": "1g.5gb",
            "memory_total_bytes": 5 * 1024**3,
            "memory_used_bytes": 0,
        },
    ]
    assert s["utilization_gpu"] is None


def test_memory_not_available_is_none() -> None:
    collector, _ = _one(FakeDevice("GPU-1", processes=[(9, 2**64 - 1)]))
    _, (s,) = collector.collect(TS)
    assert s["processes"][0]["used_memory_bytes"] is None
