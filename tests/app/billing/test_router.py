"""Billing and costs API: roles, upload, rejection, status, price book."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.service import Role
from bench import billing_samples as samples
from tests.factories.nodes import create_api_key


def _auth(session: Session, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(session, role=role)}"}


def test_upload_imports_and_reports(client: TestClient, session: Session, tmp_path: Path) -> None:
    path = tmp_path / "cur2.csv"
    expected = samples.write_cur2(path, 50)
    finance = _auth(session, Role.FINANCE)
    r = client.post("/api/v1/billing/imports", headers=finance,
                    files={"file": ("cur2.csv", path.read_bytes(), "text/csv")})  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "succeeded"
    assert body["rows_accepted"] == 50
    assert body["totals"]["USD"]["BilledCost"] == f"{expected.normalize():f}"
    got = client.get(f"/api/v1/billing/imports/{body['id']}", headers=_auth(session, Role.VIEWER))
    assert got.json()["status"] == "succeeded"


def test_viewer_may_not_upload(client: TestClient, session: Session) -> None:
    r = client.post("/api/v1/billing/imports", headers=_auth(session, Role.VIEWER),
                    files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})  # fmt: skip
    assert r.status_code == 403


def test_bad_upload_is_rejected_with_rows(client: TestClient, session: Session) -> None:
    data = (b"BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost\n"
            b"2026-11-01,2026-11-01,2026-11-02,abc,1\n")  # fmt: skip
    r = client.post("/api/v1/billing/imports", headers=_auth(session, Role.FINANCE),
                    files={"file": ("bad.csv", data, "text/csv")})  # fmt: skip
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail["file"] == "bad.csv"
    assert detail["errors"][0] == {
        "row": 1,
        "column": "BilledCost",
        "message": "not a number: 'abc'",
    }


def test_price_book_edit(client: TestClient, session: Session) -> None:
    entry = {"provider": "aws", "instance_type": "p5.48xlarge", "region": "us-east-1",
             "gpu_model": "H100", "gpu_count": 8, "hourly_price": "55.04", "source": "our EDP"}  # fmt: skip
    r = client.put("/api/v1/pricebook", headers=_auth(session, Role.FINANCE), json=[entry])
    assert r.status_code == 200, r.text
    book = client.get("/api/v1/pricebook", headers=_auth(session, Role.VIEWER)).json()
    p5 = [e for e in book if e["instance_type"] == "p5.48xlarge"]
    assert [Decimal(e["hourly_price"]) for e in p5] == [Decimal("55.04")]


def test_costs_endpoint_empty_window(client: TestClient, session: Session) -> None:
    r = client.get("/api/v1/costs", headers=_auth(session, Role.VIEWER),
                   params={"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
                           "group_by": "team"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["total"] == "0.00"
