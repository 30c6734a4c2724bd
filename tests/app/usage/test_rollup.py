"""Pure rollup arithmetic: durations, energy from counters (resets, gaps), owners, hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.usage.rollup import GpuPoint, HostPoint, combine_gpu, gpu_buckets, host_buckets

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _points(utils: list[float], *, step: int = 10, energy: list[int] | None = None, **kw):
    return [
        GpuPoint(
            T0 + timedelta(seconds=step * i),
            utilization=u,
            power_watts=kw.get("power", 100.0),
            energy_mj=None if energy is None else energy[i],
            owners=kw.get("owners", ()),
        )
        for i, u in enumerate(utils)
    ]


def test_minute_means_and_state_seconds() -> None:
    [b] = gpu_buckets(_points([0, 0, 10, 50, 90, 100]))
    assert b.samples == 6
    assert b.observed_seconds == pytest.approx(60)
    assert b.utilization_mean == pytest.approx(250 / 6)
    assert b.utilization_max == 100
    assert b.idle_seconds == pytest.approx(20)
    assert b.low_util_seconds == pytest.approx(10)
    assert b.busy_seconds == pytest.approx(30)


def test_energy_from_counter_deltas() -> None:
    energy = [0, 2_000_000, 4_000_000, 6_000_000, 8_000_000, 10_000_000]  # 200 W
    [b] = gpu_buckets(_points([50] * 6, energy=energy))
    # The first sample has no predecessor: power (100 W) x 10 s; then 5 deltas of 2 kJ.
    assert b.energy_joules == pytest.approx(1000 + 5 * 2000)


def test_energy_counter_reset_falls_back_to_power() -> None:
    energy = [0, 2_000_000, 4_000_000, 500, 2_000_500, 4_000_500]  # reboot after the 3rd
    [b] = gpu_buckets(_points([50] * 6, energy=energy))
    assert b.energy_joules == pytest.approx(1000 + 2000 + 2000 + 100 * 10 + 2000 + 2000)


def test_gap_is_not_coverage_and_counter_delta_across_it_is_not_used() -> None:
    pts = _points([50, 50], energy=[0, 1_000_000_000], step=600)  # 10 min apart
    buckets = gpu_buckets(pts)
    assert [b.observed_seconds for b in buckets] == [10, 10]
    assert [b.energy_joules for b in buckets] == [1000, 1000]


def test_owners_split_shared_samples() -> None:
    a = ("alice", "ml", None, None, None)
    b = ("bob", "ml", None, None, None)
    pts = _points([50] * 3, owners=(a,)) + [
        GpuPoint(T0 + timedelta(seconds=30 + 10 * i), 50.0, owners=(a, b)) for i in range(3)
    ]
    [bucket] = gpu_buckets(pts)
    assert bucket.owners == {a: pytest.approx(45), b: pytest.approx(15)}


def test_hour_from_minutes_weights_by_time() -> None:
    pts = _points([100] * 6) + [
        GpuPoint(T0 + timedelta(minutes=1, seconds=10 * i), 0.0, power_watts=50.0) for i in range(6)
    ]
    minutes = gpu_buckets(pts)
    hour = combine_gpu(minutes, T0)
    assert hour.samples == 12
    assert hour.utilization_mean == pytest.approx(50)
    assert hour.power_mean_watts == pytest.approx(75)
    assert hour.idle_seconds == pytest.approx(60)
    assert hour.busy_seconds == pytest.approx(60)


def test_host_disk_bytes_and_iowait() -> None:
    pts = [
        HostPoint(T0 + timedelta(seconds=10 * i), iowait=0.1 * i, disk_read_bytes_per_s=1e6)
        for i in range(6)
    ]
    [b] = host_buckets(pts)
    assert b.disk_read_bytes == pytest.approx(60e6)
    assert b.iowait_max == pytest.approx(0.5)
    assert b.iowait_mean == pytest.approx(0.25)
