"""The costs API refuses ambiguous or empty windows with a clear 4xx, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories.nodes import create_api_key


def _get(client: TestClient, key: str, query: str):
    return client.get(f"/api/v1/costs?{query}", headers={"Authorization": f"Bearer {key}"})


def test_time_without_offset_is_422_naming_the_parameter(
    client: TestClient, session: Session
) -> None:
    key = create_api_key(session)
    r = _get(client, key, "from=2026-11-01T00:00:00&to=2026-11-02T00:00:00Z")
    assert r.status_code == 422
    assert any(e["field"] == "query.from" for e in r.json()["detail"])


def test_reversed_window_is_400(client: TestClient, session: Session) -> None:
    key = create_api_key(session)
    r = _get(client, key, "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z")
    assert r.status_code == 400
    assert r.json()["error"] == "bad_window"


def test_unknown_grouping_is_422(client: TestClient, session: Session) -> None:
    key = create_api_key(session)
    r = _get(client, key, "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&group_by=planet")
    assert r.status_code == 422


def test_costs_need_a_key(client: TestClient) -> None:
    assert (
        client.get("/api/v1/costs?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z").status_code
        == 401
    )


def test_money_is_plain_exact_text() -> None:
    from decimal import Decimal

    from app.costs.router import money

    assert money(Decimal("462.1016000000000000000000000")) == "462.1016"
    assert money(Decimal("0E-55")) == "0"
    assert money(Decimal("1.23E+3")) == "1230"
    assert Decimal(money(Decimal("8.298599539823009955439999999"))) == Decimal(
        "8.298599539823009955439999999"
    )
