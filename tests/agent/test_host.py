"""Host readings from two fixture /proc trees taken 10 s apart."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.collectors.host import HostCollector, read_diskstats, read_net_dev

FIXTURES = Path(__file__).parents[1] / "fixtures" / "proc"
TS = datetime(2026, 11, 1, tzinfo=UTC)


def _two_readings(tmp_path: Path) -> tuple[HostCollector, dict, dict]:
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "host-t0", proc)
    collector = HostCollector(proc)
    first = collector.collect(TS, 100.0)
    shutil.rmtree(proc)
    shutil.copytree(FIXTURES / "host-t1", proc)
    second = collector.collect(TS, 110.0)
    return collector, first, second


def test_first_reading_only_primes_the_counters(tmp_path: Path) -> None:
    _, first, _ = _two_readings(tmp_path)
    assert set(first) == {"ts", "memory_used_bytes", "memory_total_bytes"}


def test_rates_and_ratios_over_the_interval(tmp_path: Path) -> None:
    _, _, s = _two_readings(tmp_path)
    assert s["cpu_busy_ratio"] == pytest.approx(0.09)
    assert s["iowait_ratio"] == pytest.approx(0.21)
    assert s["io_pressure_some_ratio"] == pytest.approx(0.2)
    assert s["io_pressure_full_ratio"] == pytest.approx(0.1)
    # nvme0n1 + sda; partitions, loop and dm are not counted twice, and sdb was reset.
    assert s["disk_read_bytes_per_s"] == pytest.approx(20000 * 512 / 10 + 10 * 512 / 10)
    assert s["disk_write_bytes_per_s"] == pytest.approx(10000 * 512 / 10)
    # eth0 plus eth1's 32-bit wrap; lo and veth left out.
    assert s["net_rx_bytes_per_s"] == pytest.approx(1_000_000 + 1000)
    assert s["net_tx_bytes_per_s"] == pytest.approx(200_000)
    assert s["memory_used_bytes"] == 4_000_000 * 1024
    assert s["memory_total_bytes"] == 16_000_000 * 1024


def test_per_device_rates(tmp_path: Path) -> None:
    collector, _, _ = _two_readings(tmp_path)
    assert set(collector.disk_rates) == {"nvme0n1", "sda"}
    assert collector.disk_rates["nvme0n1"] == pytest.approx((1_024_000, 512_000))
    assert set(collector.net_rates) == {"eth0", "eth1"}


def test_partitions_count_when_their_disk_is_not_listed(tmp_path: Path) -> None:
    (tmp_path / "diskstats").write_text(" 8 1 sda1 1 0 8 0 1 0 16 0 0 0 0\n")
    assert read_diskstats(tmp_path) == {"sda1": (8 * 512, 16 * 512)}


def test_missing_files_give_none(tmp_path: Path) -> None:
    assert read_diskstats(tmp_path) is None
    assert read_net_dev(tmp_path) is None
    s = HostCollector(tmp_path).collect(TS, 1.0)
    assert s == {"ts": TS.isoformat()}
