"""Detectors on constructed minute series (no database): what fires and the hard cases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.findings import detectors
from app.findings.detectors import GpuMinutes, HostMinutes, condition_intervals
from app.findings.rules import kind_params
from tests.app.findings.series import T0

TEAMS = ["ml"]


def _gpu(util: Sequence[float | None], *, power: Sequence[float] | float = 300.0,
         held: Sequence[bool] | bool = True, floor: float = 70.0) -> GpuMinutes:  # fmt: skip
    t = len(util)
    u = np.array([[np.nan if v is None else v for v in util]], dtype=float)
    p = np.full((1, t), power, dtype=float) if np.isscalar(power) else np.array([power], float)
    h = np.full((1, t), held, dtype=bool) if isinstance(held, bool) else np.array([held], bool)
    return GpuMinutes(
        start=T0, present=~np.isnan(u) | True, utilization=u, utilization_max=u, power=p,
        memory=np.full((1, t), 2e9), energy=p * 60, observed=np.full((1, t), 60.0), held=h,
        team=np.zeros((1, t), dtype=np.int32), node=np.zeros(1, dtype=np.int32),
        idle_floor=np.full((1, t), floor),
    )  # fmt: skip


def _host(t: int, *, iowait: Sequence[float] | float = 0.01, pressure: float | None = None,
          present: Sequence[bool] | None = None) -> HostMinutes:  # fmt: skip
    io = np.full((1, t), iowait, dtype=float) if np.isscalar(iowait) else np.array([iowait], float)
    seen = np.ones((1, t), dtype=bool) if present is None else np.array([present], dtype=bool)
    return HostMinutes(
        start=T0, present=seen, known=np.maximum.accumulate(seen, axis=1), iowait=io,
        pressure=np.full((1, t), np.nan if pressure is None else pressure),
        disk_read=np.full((1, t), 1e6), disk_ceiling=np.full((1, t), 1e9),
        interval=np.full((1, t), 10.0), team=np.zeros(1, dtype=np.int32),
    )  # fmt: skip


def _spans(verdict: detectors.Verdict) -> list[tuple[int, int, int]]:
    return [(s.start, s.opened, s.last) for s in condition_intervals(verdict)]


def _idle_allocated(util: Sequence[float | None], **kw: object) -> list[tuple[int, int, int]]:
    params = kind_params("idle_allocated", TEAMS, overrides={})
    return _spans(detectors.idle_allocated(_gpu(util, **kw), params))  # type: ignore[arg-type]


class TestIdleAllocated:
    def test_thirty_idle_minutes_of_a_held_gpu_open_it(self) -> None:
        assert _idle_allocated([90] * 10 + [0] * 40 + [90] * 10) == [(10, 40, 49)]

    def test_a_held_gpu_with_no_process_at_all_counts(self) -> None:
        # held = the agent's allocation (job/pod), whether or not a process runs
        assert _idle_allocated([0] * 31, held=True) == [(0, 30, 30)]

    def test_idle_gaps_between_epochs_and_checkpoints_do_not_open_it(self) -> None:
        epoch = [95] * 12 + [0] * 5  # 5 minutes at 0 % between epochs
        checkpoint = [95] * 20 + [0] * 8  # an 8-minute checkpoint pause
        assert _idle_allocated((epoch + checkpoint) * 6) == []

    def test_evaluation_phases_at_low_non_zero_utilization_do_not_open_it(self) -> None:
        assert _idle_allocated([95] * 10 + [8, 12, 10, 9] * 15 + [95] * 10) == []

    def test_it_stays_open_through_one_busy_minute_and_resolves_after_a_streak(self) -> None:
        spans = _idle_allocated([0] * 35 + [50] + [0] * 10 + [50] * 5)
        assert spans == [(0, 30, 45)]

    def test_it_resolves_when_the_holder_leaves(self) -> None:
        held = [True] * 40 + [False] * 10
        assert _idle_allocated([0] * 50, held=held) == [(0, 30, 39)]

    def test_a_muted_team_never_gets_it(self) -> None:
        params = kind_params(
            "idle_allocated", TEAMS, overrides={"ml": {"idle_allocated": {"mute": True}}}
        )
        assert _spans(detectors.idle_allocated(_gpu([0] * 60), params)) == []

    def test_a_team_override_changes_the_minimum_duration(self) -> None:
        params = kind_params(
            "idle_allocated", TEAMS, overrides={"ml": {"idle_allocated": {"minutes": 45}}}
        )
        assert _spans(detectors.idle_allocated(_gpu([0] * 50), params)) == [(0, 45, 49)]


def test_idle_unallocated_needs_an_hour_without_holder_or_process() -> None:
    params = kind_params("idle_unallocated", TEAMS, overrides={})
    short = _spans(detectors.idle_unallocated(_gpu([0] * 50, held=False), params))
    long = _spans(detectors.idle_unallocated(_gpu([0] * 70, held=False), params))
    held = _spans(detectors.idle_unallocated(_gpu([0] * 70, held=True), params))
    assert (short, long, held) == ([], [(0, 60, 69)], [])


class TestDataStarvation:
    params = kind_params("data_starvation", TEAMS, overrides={})

    def _spans(self, util: Sequence[float], **host: object) -> list[tuple[int, int, int]]:
        gpu = _gpu(util)
        return _spans(detectors.data_starvation(gpu, _host(len(util), **host), self.params))  # type: ignore[arg-type]

    def test_a_saw_tooth_that_never_reaches_zero_while_the_node_waits_on_io_fires(self) -> None:
        util = [25, 55, 30, 45, 20, 50] * 5
        assert self._spans(util, iowait=0.35) == [(0, 10, 29)]

    def test_high_variance_above_the_threshold_counts_as_starved(self) -> None:
        util = [100, 30] * 10
        # Minute 0 (100 %) has no spread yet (it needs 3 minutes): the run starts at minute 1.
        assert self._spans(util, iowait=0.3) == [(1, 11, 19)]

    def test_a_busy_gpu_on_a_busy_disk_does_not_fire(self) -> None:
        assert self._spans([92] * 30, iowait=0.4) == []

    def test_a_short_io_stall_does_not_fire(self) -> None:
        iowait = [0.01] * 10 + [0.4] * 6 + [0.01] * 10
        assert self._spans([40] * 26, iowait=iowait) == []

    def test_pressure_is_preferred_to_iowait_where_reported(self) -> None:
        assert self._spans([30] * 30, iowait=0.5, pressure=0.02) == []
        assert self._spans([30] * 30, iowait=0.0, pressure=0.3) == [(0, 10, 29)]


class TestEnergyWaste:
    params = kind_params("energy_waste", TEAMS, overrides={})

    def test_a_gpu_at_zero_drawing_far_above_its_floor_fires(self) -> None:
        spans = _spans(detectors.energy_waste(_gpu([0] * 20, power=250.0), self.params))
        assert spans == [(0, 15, 19)]

    def test_near_its_idle_floor_it_does_not(self) -> None:
        assert _spans(detectors.energy_waste(_gpu([0] * 30, power=80.0), self.params)) == []

    def test_power_staying_up_a_minute_after_a_job_does_not(self) -> None:
        power = ([400.0] * 10 + [250.0] + [70.0] * 9) * 3
        util = ([90.0] * 10 + [0.0] * 10) * 3
        gpu = _gpu(util, power=power)
        assert _spans(detectors.energy_waste(gpu, self.params)) == []

    def test_without_a_known_floor_it_cannot_tell(self) -> None:
        gpu = _gpu([0] * 30, power=300.0, floor=float("nan"))
        assert _spans(detectors.energy_waste(gpu, self.params)) == []


class TestStaleAgent:
    params = kind_params("stale_agent", TEAMS, overrides={})

    def test_three_silent_minutes_at_a_ten_second_interval_open_it(self) -> None:
        present = [True] * 5 + [False] * 6 + [True] * 3
        spans = _spans(detectors.stale_agent(_host(14, present=present), self.params))
        assert spans == [(5, 8, 10)]  # resolved when the node reports again (minute 11)

    def test_one_missing_minute_does_not(self) -> None:
        present = [True] * 5 + [False] + [True] * 5 + [False, False] + [True]
        assert _spans(detectors.stale_agent(_host(14, present=present), self.params)) == []

    def test_a_node_that_never_reported_is_not_stale(self) -> None:
        assert _spans(detectors.stale_agent(_host(10, present=[False] * 10), self.params)) == []
