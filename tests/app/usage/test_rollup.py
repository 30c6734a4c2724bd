"""Rollup arithmetic: durations, energy from counters (resets, gaps, bounds), owners, hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.usage import service
from app.usage.rollup import GpuPoint, HostPoint, combine_gpu, gpu_buckets, host_buckets
from tests.factories.nodes import make_batch

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _points(utils: list[float], *, step: int = 10, energy: list[int] | None = None, **kw):
    return [
        GpuPoint(
            T0 + timedelta(seconds=step * i),
            utilization=u,
            power_watts=kw.get("power", 100.0),
            energy_mj=None if energy is None else energy[i],
            owners=kw.get("owners", ()),
            power_limit_watts=kw.get("power_limit"),
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


def test_counter_jump_beyond_the_power_limit_falls_back_to_power() -> None:
    # 400 W limit: 10 s may add at most 400 * 10 * 1.1 = 4.4 kJ; the 4th delta is a glitch.
    energy = [0, 4_000_000, 8_400_000, 90_000_000, 94_000_000, 98_000_000]
    [b] = gpu_buckets(_points([50] * 6, energy=energy, power_limit=400.0))
    # 4 kJ and 4.4 kJ (within the tolerance) count; the 81.6 MJ jump is power (100 W) x 10 s.
    assert b.energy_joules == pytest.approx(1000 + 4000 + 4400 + 1000 + 4000 + 4000)


def test_counter_bound_without_a_power_limit_is_a_fixed_ceiling() -> None:
    # No limit known: at most 1,500 W x 1.1, so 10 kJ in 10 s (1 kW) counts, 20 kJ (2 kW) not.
    energy = [0, 10_000_000, 30_000_000]
    [b] = gpu_buckets(_points([50] * 3, energy=energy))
    assert b.energy_joules == pytest.approx(1000 + 10_000 + 1000)


def test_interleaved_histories_with_restarted_counters_stay_within_the_limit() -> None:
    """A demo restarted on the same data stored a second history 5 s off, its counter from 0."""
    first = _points([90] * 6, energy=[10**9 + 4_000_000 * i for i in range(6)], power=400.0)
    second = [
        GpuPoint(
            p.ts + timedelta(seconds=5),
            utilization=90.0,
            power_watts=400.0,
            energy_mj=4_000_000 * i,
            power_limit_watts=700.0,
        )
        for i, p in enumerate(first)
    ]
    points = sorted(first + second, key=lambda p: p.ts)
    [b] = gpu_buckets(points)
    # Every delta crosses the histories (down, or up by ~1 GJ): each sample is 400 W x 5 s,
    # the first 400 W x 10 s. Never more than the 700 W limit over the observed time.
    assert b.observed_seconds == pytest.approx(10 + 11 * 5)
    assert b.energy_joules == pytest.approx(400 * (10 + 11 * 5))
    assert (b.energy_joules or 0.0) <= 700 * b.observed_seconds


def test_stored_power_limit_bounds_the_energy(session, ingest) -> None:
    """The rollup reads each sample's stored power limit (here 400 W, below the 1,500 W ceiling)."""
    batch = make_batch(gpus=1, samples_per_gpu=6, start=T0)
    for k, sample in enumerate(batch["samples"]):
        sample["power_limit_watts"] = 400.0
        sample["energy_mj"] = k * 10_000_000  # 1 kW: more than the GPU can draw
    ingest(batch)
    service.rollup_pending(session)
    [hour] = service.gpu_hours(session, start=T0, end=T0 + timedelta(hours=1))
    assert hour.energy_joules == pytest.approx(6 * 300 * 10)  # power (300 W) x 10 s each


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
