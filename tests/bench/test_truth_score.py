"""Scoring findings against labels (bench.truth_score) on hand-made inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bench.fleet_truth import Label, NodePlan, build
from bench.truth_score import FoundEpisode, false_case, score, summarize

T = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def _label(kind: str, gpu: str | None, a: int, b: int, cost: str | None = "2") -> Label:
    return Label(kind, "n1", gpu, _at(a), _at(b), "stuck", None if cost is None else Decimal(cost))


def _found(
    kind: str, gpu: str | None, a: int, opened: int, b: int, cost: str = "0"
) -> FoundEpisode:
    return FoundEpisode(kind, "n1", gpu, _at(a), _at(opened), _at(b), Decimal(cost))


class TestScore:
    def test_precision_recall_and_time_to_detect(self) -> None:
        labels = [
            _label("idle_allocated", "A", 0, 60),
            _label("idle_allocated", "B", 0, 60),  # missed
            _label("idle_allocated", "C", 100, 200),
            _label("stale_agent", None, 0, 30, cost=None),
        ]
        found = [
            _found("idle_allocated", "A", 0, 30, 60, "1.9"),
            _found("idle_allocated", "A", 120, 150, 180, "1"),  # after the label: false
            _found("idle_allocated", "A", -30, 0, 0, "1"),  # ends as the label starts: false
            _found("idle_allocated", "C", 110, 140, 150, "1"),  # two findings, one label
            _found("idle_allocated", "C", 160, 190, 200, "1"),
            _found("data_starvation", "A", 0, 10, 60),  # the wrong kind: false
            _found("stale_agent", None, 5, 20, 25),
        ]
        s = score(found, labels)
        ia = s["idle_allocated"]
        assert (ia.findings, ia.matched_findings) == (5, 3)
        assert ia.precision == pytest.approx(3 / 5)
        assert ia.recall == pytest.approx(2 / 3)
        # A: opened 30 min after the start; C: the earlier of its findings, 40 min.
        assert sorted(ia.detect_minutes) == [30, 40]
        assert ia.median_detect_min == 35
        assert [lb.gpu_uuid for lb in ia.missed] == ["B"]
        assert [(f.gpu_uuid, f.start) for f in ia.false] == [("A", _at(120)), ("A", _at(-30))]
        # All findings (5.9) against all labels (6); matched findings (3.9) against matched (4).
        assert ia.dollar_error == pytest.approx(0.1 / 6)
        assert ia.matched_dollar_error == pytest.approx(0.1 / 4)
        assert ia.dollar_error_by_case == {"stuck": pytest.approx(-0.1 / 4)}
        ds = s["data_starvation"]
        assert (ds.precision, ds.recall, ds.labels) == (0.0, None, 0)
        st = s["stale_agent"]
        assert (st.precision, st.recall, st.median_detect_min) == (1.0, 1.0, 20)
        assert st.dollar_error is None  # no label of the kind carries a cost
        assert s["energy_waste"].precision is None  # nothing found, nothing labelled

    def test_a_finding_spanning_two_episodes(self) -> None:
        stuck = _label("idle_allocated", "A", 0, 60)
        reserved = Label("idle_allocated", "n1", "A", _at(70), _at(130), "reserved", Decimal(6))
        s = score([_found("idle_allocated", "A", 0, 30, 130, "8.8")], [stuck, reserved])
        ia = s["idle_allocated"]
        assert (ia.precision, ia.recall, ia.merged) == (1.0, 1.0, 1)
        assert ia.detect_minutes == [30, 0]  # the second: the finding was open already
        # Its cost is split over the two cases by their expected cost (2 : 6).
        assert ia.dollar_error_by_case == {"reserved": pytest.approx(0.1),
                                           "stuck": pytest.approx(0.1)}  # fmt: skip

    def test_energy_is_compared_in_kwh(self) -> None:
        labels = [Label("energy_waste", "n1", "A", _at(0), _at(60), "hot_stuck", Decimal(2), 2.0)]
        found = FoundEpisode("energy_waste", "n1", "A", _at(0), _at(15), _at(60), Decimal(2), 2.2)
        s = score([found], labels)["energy_waste"]
        assert s.kwh_error == pytest.approx(0.1)
        assert s.dollar_error == 0

    def test_stale_agent_matches_by_node(self) -> None:
        labels = [Label("stale_agent", "n1", None, _at(0), _at(30), "agent_silent")]
        other = FoundEpisode("stale_agent", "n2", None, _at(0), _at(5), _at(30))
        assert score([other], labels)["stale_agent"].matched_findings == 0
        same = FoundEpisode("stale_agent", "n1", None, _at(0), _at(5), _at(30))
        assert score([same], labels)["stale_agent"].matched_findings == 1


def test_false_case_names_what_the_fleet_was_doing(plans: list[NodePlan]) -> None:
    fleet = build(plans, minutes=300)
    start = fleet.start
    stall = FoundEpisode("idle_allocated", "e2e-b", "GPU-e2e-b-0", start + timedelta(minutes=195),
                         start + timedelta(minutes=200), start + timedelta(minutes=205))  # fmt: skip
    # e2e-b's clock is 45 s fast: the finding's times are shifted back before looking.
    assert false_case(fleet, stall) == "stalled"
    restart = FoundEpisode("stale_agent", "e2e-c", None, start + timedelta(minutes=60),
                           start + timedelta(minutes=61), start + timedelta(minutes=62))  # fmt: skip
    assert false_case(fleet, restart) == "agent_restart"
    summary = summarize(fleet, score([stall], fleet.labels))
    assert summary["idle_allocated"]["false"] == {"stalled": 1}
    assert summary["idle_allocated"]["missed"] == {"stuck": 8, "hot_stuck": 8, "reserved": 4}
