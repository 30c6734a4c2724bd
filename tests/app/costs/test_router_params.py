"""The costs API refuses ambiguous or empty windows with a clear 4xx, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories.nodes import create_api_key


def _get(client: TestClient, key: str, query: str):
    return client.get(f"/api/v1/costs?{query}", headers={"Authorization": f"Bearer {key}"})


def test_time_without_offset_is_400_saying_so(client: TestClient, session: Session) -> None:
    key = create_api_key(session)
    r = _get(client, key, "from=2026-11-01T00:00:00&to=2026-11-02T00:00:00Z")
    assert r.status_code == 400
    assert "no UTC offset" in r.json()["message"]


def test_plain_dates_are_days_in_the_zone(client: TestClient, session: Session) -> None:
    """from=2026-12-01 was refused ("should have timezone info"); it is that day's start in tz."""
    key = create_api_key(session)
    r = _get(client, key, "from=2026-12-01&to=2026-12-01&tz=Europe/Berlin")
    assert r.status_code == 200, r.text
    assert r.json()["from"] == "2026-11-30T23:00:00Z"
    assert r.json()["to"] == "2026-12-01T23:00:00Z"


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


def test_money_rounds_to_the_minor_unit_and_rows_add_up() -> None:
    from decimal import Decimal

    from app.kit.money import money_str, round_parts

    assert money_str(Decimal("15.69173136138797002568"), "USD") == "15.69"
    assert money_str(Decimal("1234.5"), "JPY") == "1234"
    parts = [Decimal("1") / 3] * 3
    rounded = round_parts(parts, "USD")
    assert rounded == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert sum(rounded) == Decimal("1.00")
    assert round_parts([Decimal("0.004"), Decimal("0.004"), Decimal("0.004")], "USD") == [
        Decimal("0.01"),
        Decimal("0.00"),
        Decimal("0.00"),
    ]
