"""docker-compose.yml: the production shape is complete and its files exist (no Docker here to run it)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_of_the_design_is_there() -> None:
    assert {
        "postgres",
        "redis",
        "api",
        "worker",
        "beat",
        "agent-sim",
        "prometheus",
        "grafana",
    } <= set(COMPOSE["services"])


def test_backend_waits_for_migrations_and_healthy_stores() -> None:
    for name in ("api", "worker", "beat"):
        needs = COMPOSE["services"][name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"


def test_mounted_files_exist() -> None:
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_secrets_are_required_not_defaulted() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?Variable not set}" in text
    example = (ROOT / ".env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "GPULEDGER_AGENT_TOKEN"):
        assert f"{name}=" in example
