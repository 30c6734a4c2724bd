"""GET /api/v1/reports/spend: finance and admin only; JSON, CSV and XLSX with the right names."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from app.auth.service import Role
from app.main import create_app
from tests.app.reports.sample import record_calls
from tests.factories.nodes import create_api_key, create_node_token

URL = "/api/v1/reports/spend"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the service with one that records its arguments and returns a sample report."""
    return record_calls(monkeypatch)


def _auth(session: Session, role: Role = Role.FINANCE) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(session, role=role)}"}


class TestAccess:
    @pytest.mark.parametrize("role", [Role.FINANCE, Role.ADMIN])
    def test_finance_and_admin_may(
        self, client: TestClient, session: Session, calls, role: Role
    ) -> None:
        assert client.get(URL, headers=_auth(session, role)).status_code == 200

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.SRE])
    def test_others_may_not(self, client: TestClient, session: Session, calls, role: Role) -> None:
        r = client.get(URL, headers=_auth(session, role))
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden"
        assert calls == []

    def test_no_or_wrong_credential(self, client: TestClient, session: Session, calls) -> None:
        assert client.get(URL).status_code == 401
        assert client.get(URL, headers={"Authorization": "Bearer nope"}).status_code == 401
        token = create_node_token(session)
        assert client.get(URL, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert calls == []


class TestFormats:
    def test_json_for_a_month_in_a_zone(self, client: TestClient, session: Session, calls) -> None:
        r = client.get(f"{URL}?period=2026-11&tz=America/New_York", headers=_auth(session))
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        (call,) = calls
        assert call["start"] == datetime(2026, 11, 1, 4, tzinfo=UTC)
        assert call["end"] == datetime(2026, 12, 1, 5, tzinfo=UTC)
        assert (call["tz"], call["label"], call["group_by"]) == (
            "America/New_York",
            "2026-11",
            ("team",),
        )
        assert call["now"].tzinfo is not None
        body = r.json()
        assert body["period"]["label"] == "2026-11"
        assert body["period"]["from"] == "2026-11-01T00:00:00-04:00"
        total = Decimal(body["totals"]["USD"]["cost"])
        assert sum(Decimal(x["cost"]) for x in body["lines"]) == total

    def test_csv_is_an_attachment(self, client: TestClient, session: Session, calls) -> None:
        r = client.get(f"{URL}?period=2026-11&group_by=team&format=csv", headers=_auth(session))
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert (
            r.headers["content-disposition"] == 'attachment; filename="gpu-spend-2026-11-team.csv"'
        )
        assert r.text.startswith("# period,2026-11\n")
        rows = list(csv.DictReader(x for x in r.text.splitlines() if not x.startswith("# ")))
        (total,) = [x for x in rows if x["team"] == "TOTAL"]
        lines = [x for x in rows if x["team"] != "TOTAL"]
        assert sum(Decimal(x["cost"]) for x in lines) == Decimal(total["cost"])

    def test_xlsx_by_team_and_project(self, client: TestClient, session: Session, calls) -> None:
        r = client.get(
            f"{URL}?period=2026-11&group_by=team,project&format=xlsx", headers=_auth(session)
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == XLSX
        assert r.headers["content-disposition"] == (
            'attachment; filename="gpu-spend-2026-11-team-project.xlsx"'
        )
        assert calls[0]["group_by"] == ("team", "project")
        wb = load_workbook(io.BytesIO(r.content))
        assert wb.sheetnames[0] == "Summary"

    def test_from_to_dates_include_the_last_day(
        self, client: TestClient, session: Session, calls
    ) -> None:
        r = client.get(
            f"{URL}?from=2026-11-01&to=2026-11-15&tz=Europe/Berlin", headers=_auth(session)
        )
        assert r.status_code == 200
        (call,) = calls
        assert call["start"] == datetime(2026, 10, 31, 23, tzinfo=UTC)
        assert call["end"] == datetime(2026, 11, 15, 23, tzinfo=UTC)
        assert call["label"] == "2026-11-01 to 2026-11-15"
        assert r.json()["period"]["label"] == "2026-11-01 to 2026-11-15"

    def test_default_is_the_last_full_month(
        self, client: TestClient, session: Session, calls
    ) -> None:
        assert client.get(URL, headers=_auth(session)).status_code == 200
        (call,) = calls
        assert re.fullmatch(r"\d{4}-\d{2}", call["label"])
        assert timedelta(days=28) <= call["end"] - call["start"] <= timedelta(days=31)
        assert call["end"] <= call["now"]
        assert call["end"].day == 1


class TestErrors:
    @pytest.mark.parametrize(
        ("query", "error"),
        [
            ("period=2026-11&from=2026-11-01", "bad_period"),
            ("period=2026-13", "bad_period"),
            ("period=2026-11&tz=Mars/Base", "bad_period"),
            ("from=2026-11-15&to=2026-11-01", "bad_period"),
            ("from=2026-11-01T00:00:00", "bad_period"),
            ("group_by=planet", "bad_group_by"),
            ("group_by=team,project,node", "bad_group_by"),
        ],
    )
    def test_bad_arguments_are_400(
        self, client: TestClient, session: Session, calls, query: str, error: str
    ) -> None:
        r = client.get(f"{URL}?{query}", headers=_auth(session))
        assert r.status_code == 400, r.text
        assert r.json()["error"] == error
        assert r.json()["message"]
        assert calls == []

    def test_unknown_format_is_422(self, client: TestClient, session: Session, calls) -> None:
        r = client.get(f"{URL}?format=pdf", headers=_auth(session))
        assert r.status_code == 422
        assert any(e["field"] == "query.format" for e in r.json()["detail"])


def test_documented_with_errors_and_media_types() -> None:
    op = create_app(embedded_jobs=False).openapi()["paths"][URL]["get"]
    assert {"400", "401", "403", "422"} <= set(op["responses"])
    assert {"text/csv; charset=utf-8", XLSX} <= set(op["responses"]["200"]["content"])
    names = {p["name"] for p in op["parameters"]}
    assert names == {"period", "from", "to", "tz", "group_by", "format"}
    assert "INCLUSIVE" in next(p for p in op["parameters"] if p["name"] == "to")["description"]


def test_the_real_service_on_an_empty_ledger(client: TestClient, session: Session) -> None:
    r = client.get(f"{URL}?period=2026-11&format=json", headers=_auth(session))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"]["label"] == "2026-11"
    assert body["lines"] == []
    r = client.get(f"{URL}?period=2026-11&format=xlsx", headers=_auth(session))
    assert r.status_code == 200, r.text
    load_workbook(io.BytesIO(r.content))
