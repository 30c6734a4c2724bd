"""The labelled fleet end to end: ingest, rollups, pricing and one evaluation (bench.detectors)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bench.detectors import run_truth
from bench.fleet_truth import NodePlan, build
from bench.truth_score import MAIN_KINDS, summarize


def test_labelled_fleet_end_to_end(session: Session, plans: list[NodePlan]) -> None:
    fleet = build(plans, minutes=300)
    assert {lb.kind for lb in fleet.labels} == {*MAIN_KINDS, "stale_agent"}
    scores = run_truth(session, fleet)
    assert set(scores) >= {*MAIN_KINDS, "stale_agent"}
    for kind in (*MAIN_KINDS, "stale_agent"):
        assert scores[kind].matched_labels > 0, (kind, summarize(fleet, scores)[kind])
