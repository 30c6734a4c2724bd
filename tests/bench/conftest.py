"""A small scripted fleet shared by the scoring and end-to-end tests."""

from __future__ import annotations

import pytest

from bench.fleet_truth import Gang, NodePlan, Step


@pytest.fixture
def plans() -> list[NodePlan]:
    """A node with an obvious episode of each GPU kind, one with free GPUs, one going silent."""
    a = NodePlan("e2e-a", "p4d.24xlarge", [Gang(8, [
        Step("busy", 40, 1), Step("stuck", 60, 1), Step("busy", 30, 1), Step("starved", 45, 1),
        Step("busy", 30, 1), Step("hot_stuck", 60, 1), Step("busy", 35, 1)])])  # fmt: skip
    b = NodePlan("e2e-b", "p5.48xlarge", [
        Gang(4, [Step("parked", 120), Step("image_pull", 10, 2), Step("busy", 60, 2),
                 Step("stalled", 15, 2), Step("busy", 95, 2)]),
        Gang(4, [Step("busy", 30, 3), Step("reserved", 90, 4), Step("turnaround", 20),
                 Step("hot_parked", 120), Step("busy", 40, 5)]),
    ], offset_seconds=45)  # fmt: skip
    c = NodePlan("e2e-c", "p4d.24xlarge", [Gang(8, [Step("busy", 300, 6)])],
                 silences=[(60, 61, "agent_restart"), (150, 185, "agent_silent")])  # fmt: skip
    return [a, b, c]
