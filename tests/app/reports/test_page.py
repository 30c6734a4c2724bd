"""GET /reports/spend: the printable report page for finance, with pickers, chart and downloads."""

from __future__ import annotations

import html
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.service import Role
from tests.app.reports.sample import record_calls
from tests.factories.nodes import create_api_key

PAGE = "/reports/spend"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the service with one that records its arguments and returns a sample report."""
    return record_calls(monkeypatch, currencies=("USD", "EUR"))


def _sign_in(client: TestClient, session: Session, role: Role = Role.FINANCE) -> None:
    key = create_api_key(session, role=role)
    r = client.post("/login", data={"api_key": key, "next": PAGE}, follow_redirects=False)
    assert r.status_code == 303


def test_signed_out_goes_to_sign_in(client: TestClient, calls) -> None:
    r = client.get(PAGE, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={PAGE}"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SRE])
def test_other_roles_get_a_clear_403(
    client: TestClient, session: Session, calls, role: Role
) -> None:
    _sign_in(client, session, role)
    r = client.get(PAGE)
    assert r.status_code == 403
    assert 'id="report-forbidden"' in r.text
    assert "needs the finance or admin role" in r.text
    assert 'id="spend-report-table"' not in r.text
    assert calls == []


@pytest.mark.parametrize("role", [Role.FINANCE, Role.ADMIN])
def test_the_report(client: TestClient, session: Session, calls, role: Role) -> None:
    _sign_in(client, session, role)
    r = client.get(f"{PAGE}?period=2026-11&tz=America/New_York&group_by=team,project")
    assert r.status_code == 200, r.text
    (call,) = calls
    assert (call["label"], call["group_by"]) == ("2026-11", ("team", "project"))
    page = r.text
    for element in ("spend-report-table", "spend-chart", "spend-chart-USD", "download-csv",
                    "download-xlsx", "download-json", "report-pickers", "report-coverage"):  # fmt: skip
        assert f'id="{element}"' in page, element
    assert '<script src="/static/plotly.min.js"></script>' in page
    assert "@media print" in page
    assert "<th>Team</th><th>Project</th>" in page
    assert page.count('<tr class="total">') == 2  # EUR and USD
    assert "97.50% of the bills" in page
    assert "gpu-node-9" in page
    assert "no instance type reported" in page
    assert "job 1234" in page
    assert "812.35" in page
    query = "period=2026-11&amp;tz=America%2FNew_York&amp;group_by=team%2Cproject"
    assert f'href="/api/v1/reports/spend?{query}&amp;format=csv"' in page
    assert f'href="/api/v1/reports/spend?{query}&amp;format=xlsx"' in page
    assert '<option value="2026-11" selected>' in page
    assert '<option value="team,project" selected>' in page


def test_downloads_work_with_the_sign_in_cookie(
    client: TestClient, session: Session, calls
) -> None:
    _sign_in(client, session)
    page = client.get(f"{PAGE}?period=2026-11").text
    href = html.unescape(page.split('id="download-csv" href="')[1].split('"')[0])
    r = client.get(href)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="gpu-spend-2026-11-team.csv"'


def test_custom_dates_and_presets(client: TestClient, session: Session, calls) -> None:
    _sign_in(client, session)
    r = client.get(f"{PAGE}?period=custom&from=2026-11-01&to=2026-11-15&tz=UTC")
    assert r.status_code == 200
    assert calls[-1]["label"] == "2026-11-01 to 2026-11-15"
    assert '<option value="custom" selected>' in r.text
    assert "from=2026-11-01&amp;to=2026-11-15" in r.text
    # A preset wins over dates left in the form.
    r = client.get(f"{PAGE}?period=mtd&from=2026-11-01&to=2026-11-15")
    assert r.status_code == 200
    assert calls[-1]["label"].endswith("to date")
    assert "from=2026-11-01" not in r.text
    # Nothing chosen: the last full month.
    r = client.get(PAGE)
    assert r.status_code == 200
    assert '<option value="last-month" selected>' in r.text


def test_bad_choices_show_the_reason(client: TestClient, session: Session, calls) -> None:
    _sign_in(client, session)
    r = client.get(f"{PAGE}?period=2026-11&tz=Mars/Base")
    assert r.status_code == 400
    assert 'id="report-error"' in r.text
    assert "unknown time zone" in r.text
    r = client.get(f"{PAGE}?group_by=planet")
    assert r.status_code == 400
    assert "group_by" in r.text
    assert calls == []


def test_the_real_service_on_an_empty_ledger(client: TestClient, session: Session) -> None:
    _sign_in(client, session)
    r = client.get(f"{PAGE}?period=2026-11")
    assert r.status_code == 200, r.text
    assert "No GPU spend in this period." in r.text


def test_unmeasured_cost_has_its_column_and_no_efficiency(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team whose GPUs report no utilization (MIG): its cost is unmeasured, efficiency n/a."""
    import dataclasses
    from decimal import Decimal

    from app.reports import service as reports_service
    from app.reports.types import Amounts, SpendLine
    from tests.app.reports.sample import make_report

    mig = Amounts(gpu_hours=Decimal(8), cost=Decimal("12.3456"), estimated=Decimal("12.3456"),
                  unmeasured=Decimal("12.3456"))  # fmt: skip
    report = dataclasses.replace(make_report(groups=0), lines=[SpendLine(("mig",), "USD", mig)],
                                 totals={"USD": mig}, daily=[])  # fmt: skip
    monkeypatch.setattr(reports_service, "spend_report", lambda _session, **_kw: report)
    _sign_in(client, session)
    r = client.get(f"{PAGE}?period=2026-11")
    assert r.status_code == 200, r.text
    assert '<th class="num">Unmeasured</th>' in r.text
    row = r.text.split("<td>mig</td>")[1].split("</tr>")[0]
    cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
    # GPU-h, cost, billed, estimated, on-prem, unpriced, utilized, idle, unused, unmeasured, ...
    assert cells[1] == cells[3] == cells[9] == "12.35"
    assert cells[6] == cells[7] == cells[8] == "0.00"
    assert cells[12] == "n/a"
