"""The simulator drives the real collector; scenarios look like what their names say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.collectors.nvml import NvmlCollector
from agent.collectors.simulator import SCENARIOS, THROTTLE_REASONS, SimulatedNvml


def _run(scenarios: list[str], seconds: int = 300, seed: int = 0) -> list[list[dict]]:
    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    collector = NvmlCollector(SimulatedNvml(scenarios, seed=seed, clock=lambda: t[0]))
    out = []
    for _ in range(seconds // 10):
        t[0] += 10
        out.append(collector.collect(datetime.fromtimestamp(t[0], UTC))[1])
    return out


def test_every_scenario_runs_through_the_collector() -> None:
    rows = _run(list(SCENARIOS))
    assert all(s["status"] == "ok" for row in rows for s in row)
    assert {"throttling", "xid"} <= set(SCENARIOS)


def test_seeded_runs_repeat() -> None:
    assert _run(["training", "xid"], seed=3) == _run(["training", "xid"], seed=3)


@pytest.mark.parametrize(
    ("scenario", "low", "high", "has_process"),
    [
        ("training", 85, 100, True),
        ("allocated_idle", 0, 0, True),
        ("reserved", 0, 0, False),
        ("unallocated", 0, 0, False),
        ("data_starved", 15, 55, True),
        ("energy_waste", 0, 0, True),
        ("throttling", 80, 95, True),
    ],
)
def test_scenario_shapes(scenario: str, low: float, high: float, has_process: bool) -> None:
    samples = [row[0] for row in _run([scenario])]
    assert all(low <= s["utilization_gpu"] <= high for s in samples)
    assert all(bool(s["processes"]) == has_process for s in samples)


def test_energy_comes_from_a_rising_counter() -> None:
    energy = [row[0]["energy_mj"] for row in _run(["energy_waste"])]
    assert energy == sorted(energy)
    watts = (energy[-1] - energy[1]) / 1000 / (10 * (len(energy) - 2))
    assert watts == pytest.approx(700 * 0.55, rel=0.01)


def test_throttling_reports_thermal_and_power_reasons() -> None:
    s = _run(["throttling"])[-1][0]
    assert s["clock_event_reasons"] == THROTTLE_REASONS
    assert s["temperature_c"] >= 85
    assert s["sm_clock_mhz"] < 1980


def test_xid_scenario_raises_xid_events() -> None:
    rows = _run(["xid", "training"], seconds=600)
    assert sum(r[0]["xid_errors"] for r in rows) >= 5
    assert sum(r[1]["xid_errors"] for r in rows) == 0


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulatedNvml(["nope"])


def test_a_simulated_node_reports_who_holds_each_gpu() -> None:
    """Every GPU but the unallocated one is held by the node's job, "reserved" with no process."""
    from agent.cli import make_agent
    from agent.config import AgentSettings

    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    scenarios = ["training", "reserved", "unallocated"]
    settings = AgentSettings(node_name="sim-1", simulate=3, scenarios=scenarios,
                             labels={"team": "ml"})  # fmt: skip
    agent = make_agent(settings, clock=lambda: t[0])
    t[0] += 10
    _, samples, _ = agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0])
    holders = [s.get("allocation") for s in samples]
    assert holders[0] == holders[1] == {"user": "mlops", "job_id": "job-sim-1", "namespace": "ml"}
    assert holders[2] is None
    assert samples[1]["processes"] == []
