"""The agent and the backend agree on the wire format, from one set of example payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.orm import Session

from agent.cli import make_agent
from agent.collectors.simulator import SCENARIOS
from agent.config import AgentSettings
from agent.payload import SCHEMA_VERSION as AGENT_SCHEMA_VERSION
from app.ingest.schemas import SCHEMA_VERSION, IngestBatch
from tests.factories.nodes import create_node_token

PAYLOADS = sorted((Path(__file__).parents[1] / "fixtures" / "payloads").glob("*.json"))


def _unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Keys the backend would silently ignore: a typo on either side shows up here."""
    if not isinstance(data, dict):
        return []
    unknown = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(f"{path}{key}")
            continue
        for sub in _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                unknown += _unknown_keys(sub, item, f"{path}{key}[{i}].")
    return unknown


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _agent_batch(scenarios: list[str]) -> dict[str, Any]:
    clock = [datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()]
    settings = AgentSettings(
        node_name="contract-node",
        cluster="c1",
        simulate=len(scenarios),
        scenarios=scenarios,
        provider="aws",
        instance_id="i-0abc",
        labels={"team": "ml"},
    )
    agent = make_agent(settings, clock=lambda: clock[0])
    for _ in range(2):
        clock[0] += 10
        agent.record(*agent.collect_once(datetime.fromtimestamp(clock[0], UTC), clock[0]))
    batch = agent.make_batch()
    assert batch is not None
    # What goes on the wire is JSON: round-trip it as the pusher does.
    return json.loads(json.dumps(batch))


def test_schema_versions_match() -> None:
    assert AGENT_SCHEMA_VERSION == SCHEMA_VERSION


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.stem)
def test_example_payloads_validate(path: Path) -> None:
    data = json.loads(path.read_text())
    IngestBatch.model_validate(data)
    assert _unknown_keys(IngestBatch, data) == []


def test_there_are_example_payloads() -> None:
    assert len(PAYLOADS) >= 3


def test_agent_output_validates_for_every_scenario() -> None:
    data = _agent_batch(list(SCENARIOS))
    batch = IngestBatch.model_validate(data)
    assert len(batch.gpus) == len(SCENARIOS)
    assert len(batch.samples) == 2 * len(SCENARIOS)
    assert _unknown_keys(IngestBatch, data) == []


def test_agent_output_has_the_example_shape() -> None:
    """The committed simulated-node example is what the agent produces today (keys, not values)."""
    example = json.loads((PAYLOADS[0].parent / "simulated_node.json").read_text())
    live = _agent_batch(["training", "allocated_idle", "data_starved", "unallocated"])
    assert set(live) == set(example)
    assert set(live["node"]) <= set(example["node"]) | {"cluster", "labels"}
    assert set(live["samples"][0]) == set(example["samples"][0])


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.stem)
def test_example_payloads_are_accepted_by_ingest(
    path: Path, client: TestClient, session: Session
) -> None:
    data = json.loads(path.read_text())
    token = create_node_token(session, node=data["node"]["name"])
    r = client.post("/api/v1/ingest", json=data, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == len(data["samples"])
