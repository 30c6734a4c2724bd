"""The labelled fleet (bench.fleet_truth): deterministic, labels true to its samples, hard cases
present, independent of the detectors."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from app.ingest.schemas import IngestBatch
from bench import fleet_truth
from bench.fleet_truth import (
    INSTANCES,
    KINDS,
    Fleet,
    Gang,
    NodePlan,
    Step,
    build,
    generate,
    gpu_hour_price,
)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    # Every job has an incident: with this seed a day of 64 GPUs holds every kind and case
    # (test_every_kind_is_labelled and test_every_hard_case_is_in_the_data say so).
    return generate(64, 24, seed=4, incident_rate=1.0)


def _index(
    fleet: Fleet,
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """GPU samples by (uuid, true minute) and host samples by (node, true minute)."""
    offsets = {p.name: timedelta(seconds=p.offset_seconds) for p in fleet.nodes}
    gpus: dict[tuple[str, int], dict[str, Any]] = {}
    hosts: dict[tuple[str, int], dict[str, Any]] = {}
    for node, batch in fleet.batches():
        for s in batch["samples"]:
            gpus[s["gpu_uuid"], fleet.minute(datetime.fromisoformat(s["ts"]) - offsets[node])] = s
        for h in batch["host_samples"]:
            hosts[node, fleet.minute(datetime.fromisoformat(h["ts"]) - offsets[node])] = h
    return gpus, hosts


@pytest.fixture(scope="module")
def samples(
    fleet: Fleet,
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    return _index(fleet)


def _minutes(fleet: Fleet, start: datetime, end: datetime) -> range:
    return range(fleet.minute(start), fleet.minute(end))


class TestGenerate:
    def test_same_seed_same_fleet(self) -> None:
        a, b = generate(24, 6, seed=3), generate(24, 6, seed=3)
        assert a.labels == b.labels
        assert a.negatives == b.negatives
        assert json.dumps(list(islice(a.batches(), 5))) == json.dumps(list(islice(b.batches(), 5)))
        assert generate(24, 6, seed=4).labels != a.labels

    def test_size_and_wire_format(self, fleet: Fleet) -> None:
        assert len(fleet.nodes) == 8
        assert len(fleet.gpus) == 64
        assert fleet.end - fleet.start == timedelta(hours=24)
        first = next(fleet.batches())[1]
        IngestBatch.model_validate(first)  # raises on a wire-format error
        assert first["node"]["instance_type"] in INSTANCES
        assert (first["node"]["provider"], first["node"]["region"]) == ("aws", "us-east-1")

    def test_every_kind_is_labelled(self, fleet: Fleet) -> None:
        assert {lb.kind for lb in fleet.labels} == set(KINDS)
        assert {lb.case for lb in fleet.labels} >= {"stuck", "probed", "hot_stuck", "reserved",
                                                    "unused_in_job", "parked", "hot_parked",
                                                    "starved", "agent_silent"}  # fmt: skip

    def test_labels_are_in_the_fleet_window(self, fleet: Fleet) -> None:
        for lb in fleet.labels:
            assert fleet.start <= lb.start < lb.end <= fleet.end


class TestLabelsMatchSamples:
    def test_idle_allocated_is_held_at_zero(self, fleet: Fleet, samples: Any) -> None:
        gpus, _ = samples
        for lb in (lb for lb in fleet.labels if lb.kind == "idle_allocated"):
            seen = [gpus[lb.gpu_uuid, k] for k in _minutes(fleet, lb.start, lb.end)
                    if (lb.gpu_uuid, k) in gpus]  # fmt: skip
            assert seen, lb
            assert all(s["allocation"] for s in seen), lb
            zero = sum(s["utilization_gpu"] == 0 for s in seen)
            if lb.case == "probed":  # a minute at 8-20 % every 12-21 minutes
                assert 0.8 * len(seen) <= zero < len(seen), lb
                assert max(s["utilization_gpu"] for s in seen) <= 20, lb
            else:
                assert zero == len(seen), lb
            if lb.case in ("reserved", "unused_in_job"):
                assert all(s["processes"] == [] for s in seen), lb

    def test_idle_unallocated_has_no_holder_and_no_process(
        self, fleet: Fleet, samples: Any
    ) -> None:
        gpus, _ = samples
        for lb in (lb for lb in fleet.labels if lb.kind == "idle_unallocated"):
            for k in _minutes(fleet, lb.start, lb.end):
                s = gpus.get((lb.gpu_uuid, k))
                if s is not None:
                    assert s["allocation"] is None, lb
                    assert s["processes"] == [], lb
                    assert s["utilization_gpu"] == 0

    def test_starvation_saw_tooths_while_the_node_waits(self, fleet: Fleet, samples: Any) -> None:
        gpus, hosts = samples
        for lb in (lb for lb in fleet.labels if lb.kind == "data_starvation"):
            seen = [(gpus[lb.gpu_uuid, k], hosts[lb.node, k])
                    for k in _minutes(fleet, lb.start, lb.end) if (lb.gpu_uuid, k) in gpus]  # fmt: skip
            utils = [s["utilization_gpu"] for s, _ in seen]
            assert min(utils) >= 17, lb  # never zero
            assert sum(u <= 60 for u in utils) >= 0.75 * len(utils), lb  # mostly below 60 %
            assert max(utils) <= 80, lb  # bursts at most
            assert max(utils) - min(utils) >= 20, lb  # saw-toothed
            assert all(h["iowait_ratio"] >= 0.2 for _, h in seen), lb
            assert all(s["processes"] and s["allocation"] for s, _ in seen), lb

    def test_energy_waste_draws_power_at_zero_utilization(self, fleet: Fleet, samples: Any) -> None:
        gpus, _ = samples
        plans = {p.name: p for p in fleet.nodes}
        for lb in (lb for lb in fleet.labels if lb.kind == "energy_waste"):
            _, _, tdp, idle = INSTANCES[plans[lb.node].instance_type]
            for k in _minutes(fleet, lb.start, lb.end):
                s = gpus.get((lb.gpu_uuid, k))
                if s is not None:
                    assert s["utilization_gpu"] == 0
                    assert s["power_watts"] > 0.35 * tdp
                    assert s["power_watts"] > 2.5 * idle
            assert lb.excess_kwh is not None
            assert lb.excess_kwh > 0

    def test_stale_agent_sends_nothing(self, fleet: Fleet, samples: Any) -> None:
        gpus, hosts = samples
        uuids = {p.name: [g.uuid for g in fleet.gpus if g.node == p.name] for p in fleet.nodes}
        for lb in (lb for lb in fleet.labels if lb.kind == "stale_agent"):
            for k in _minutes(fleet, lb.start, lb.end):
                assert (lb.node, k) not in hosts
                assert not any((u, k) in gpus for u in uuids[lb.node])
            assert (lb.node, fleet.minute(lb.start) - 1) in hosts  # it reported just before

    def test_expected_cost_is_reported_time_at_list_price(self, fleet: Fleet, samples: Any) -> None:
        gpus, _ = samples
        plans = {p.name: p for p in fleet.nodes}
        idle = ("idle_allocated", "idle_unallocated", "energy_waste")
        for lb in (lb for lb in fleet.labels if lb.kind in idle):
            seen = sum((lb.gpu_uuid, k) in gpus for k in _minutes(fleet, lb.start, lb.end))
            price = gpu_hour_price(plans[lb.node].instance_type)
            assert lb.expected_cost == price / 60 * seen
        assert gpu_hour_price("p4d.24xlarge") == Decimal("21.957642") / 8


class TestHardCases:
    def test_every_hard_case_is_in_the_data(self, fleet: Fleet) -> None:
        cases = {e.case for e in fleet.negatives}
        assert cases >= {"epoch_gap", "checkpoint", "eval", "light", "stalled", "io_stall",
                         "io_busy", "image_pull", "turnaround", "cooldown", "agent_restart",
                         "clock_offset"}  # fmt: skip

    def test_short_pauses_are_shorter_than_any_labelled_idle(self, fleet: Fleet) -> None:
        longest = {c: max(e.end - e.start for e in fleet.negatives if e.case == c)
                   for c in ("epoch_gap", "checkpoint", "stalled", "image_pull", "turnaround",
                             "io_stall")}  # fmt: skip
        assert longest["epoch_gap"] <= timedelta(minutes=5)
        assert longest["checkpoint"] <= timedelta(minutes=8)
        assert longest["io_stall"] <= timedelta(minutes=7)
        cooldown = max(e.end - e.start for e in fleet.negatives if e.case == "cooldown")
        assert cooldown < min(lb.end - lb.start for lb in fleet.labels if lb.kind == "energy_waste")
        shortest = min(lb.end - lb.start for lb in fleet.labels if lb.kind == "idle_allocated")
        assert longest["stalled"] < shortest
        assert longest["image_pull"] < shortest
        parked = min(lb.end - lb.start for lb in fleet.labels if lb.kind == "idle_unallocated")
        assert longest["turnaround"] < parked

    def test_phases_look_like_their_case(self, fleet: Fleet, samples: Any) -> None:
        gpus, hosts = samples
        for e in fleet.negatives:
            seen = [(gpus[e.gpu_uuid, k], hosts[e.node, k]) for k in _minutes(fleet, e.start, e.end)
                    if (e.gpu_uuid, k) in gpus]  # fmt: skip
            if e.case == "eval":
                assert all(10 <= s["utilization_gpu"] <= 30 and h["iowait_ratio"] < 0.1
                           for s, h in seen)  # fmt: skip
            elif e.case in ("epoch_gap", "checkpoint", "stalled"):
                assert all(s["utilization_gpu"] == 0 and s["processes"] for s, _ in seen)
            elif e.case == "light":
                assert all(s["memory_used_bytes"] <= 4 * 1024**3 and s["utilization_gpu"] >= 40
                           for s, _ in seen)  # fmt: skip
            elif e.case == "cooldown":  # the process is gone, the power is not
                assert all(s["utilization_gpu"] == 0 and not s["processes"] and s["allocation"]
                           and s["power_watts"] > 100 for s, _ in seen)  # fmt: skip
            elif e.case == "io_busy":
                assert all(s["utilization_gpu"] >= 85 and h["iowait_ratio"] >= 0.2
                           for s, h in seen)  # fmt: skip

    def test_drifting_clocks_shift_timestamps_not_labels(self) -> None:
        plan = NodePlan("drift", "p4d.24xlarge", [Gang(8, [Step("parked", 120)])],
                        offset_seconds=-75)  # fmt: skip
        fleet = build([plan], minutes=180)
        first = next(fleet.batches())[1]["samples"][0]
        assert datetime.fromisoformat(first["ts"]) == fleet.start - timedelta(seconds=75)
        assert {lb.start for lb in fleet.labels} == {fleet.start}


def test_labels_do_not_use_detector_code_or_thresholds() -> None:
    tree = ast.parse(Path(fleet_truth.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert imported, "the parse found no imports"
    assert not any(
        m and m.startswith(("app.findings", "app.config", "app.usage")) for m in imported
    )
