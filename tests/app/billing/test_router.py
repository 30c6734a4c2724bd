"""Billing and costs API: roles, upload, rejection, status, price book."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.service import Role
from app.billing.catalog import shipped_pricebook
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
    """The user's entry replaces the shipped one of its region; the other regions stay."""
    shipped = {e.region: e.hourly_price for e in shipped_pricebook()
               if e.instance_type == "p5.48xlarge"}  # fmt: skip
    assert shipped["us-east-1"] != Decimal("50.00")
    entry = {"provider": "aws", "instance_type": "p5.48xlarge", "region": "us-east-1",
             "gpu_model": "H100", "gpu_count": 8, "hourly_price": "50.00", "source": "our EDP"}  # fmt: skip
    r = client.put("/api/v1/pricebook", headers=_auth(session, Role.FINANCE), json=[entry])
    assert r.status_code == 200, r.text
    book = client.get("/api/v1/pricebook", headers=_auth(session, Role.VIEWER)).json()
    p5 = {e["region"]: e for e in book if e["instance_type"] == "p5.48xlarge"}
    assert p5.keys() == shipped.keys()
    ours = p5.pop("us-east-1")
    assert (Decimal(ours["hourly_price"]), ours["source"]) == (Decimal("50.00"), "our EDP")
    assert {region: Decimal(e["hourly_price"]) for region, e in p5.items()} == {
        region: price for region, price in shipped.items() if region != "us-east-1"
    }


def test_costs_endpoint_empty_window(client: TestClient, session: Session) -> None:
    r = client.get("/api/v1/costs", headers=_auth(session, Role.VIEWER),
                   params={"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
                           "group_by": "team"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["total"] == "0.00"
