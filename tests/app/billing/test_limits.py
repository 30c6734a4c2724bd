"""Input that does not fit: a malformed CSV line, over-long cells, file names and options.

Each is refused with what was wrong and where (a 4xx through the API), and nothing is written.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.service import Role
from app.billing import service
from app.models import BillingImport, BillingLineItem
from tests.app.billing.test_hostile import GOOD, HEADER, _rejected, _write
from tests.factories.nodes import create_api_key

FOCUS_HEADER = HEADER + ",ResourceId,ServiceName"


def _auth(session: Session, role: Role = Role.FINANCE) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(session, role=role)}"}


@pytest.mark.parametrize("gzipped", [False, True], ids=["csv", "csv.gz"])
def test_a_malformed_line_is_named(session: Session, tmp_path: Path, gzipped: bool) -> None:
    """pyarrow's "Expected 7 columns, got 8" used to reach the user as ``row: null``."""
    path = _write(tmp_path, [GOOD, GOOD, GOOD, GOOD.replace("a,", "b,") + ",extra", GOOD])
    if gzipped:
        packed = tmp_path / "hostile.csv.gz"
        packed.write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        path = packed
    e = _rejected(session, path)
    assert e.errors[0].row == 4
    assert "Expected 7 columns, got 8" in e.errors[0].message


@pytest.mark.parametrize(
    ("column", "value", "limit"),
    [
        ("ResourceId", "i-" + "0" * 600, 500),  # the resource key is kept up to 500 characters
        ("ServiceName", "S" * 201, 200),
        ("BillingAccountId", "1" * 201, 200),
    ],
)
def test_an_over_long_cell_is_refused(
    session: Session, tmp_path: Path, column: str, value: str, limit: int
) -> None:
    """PostgreSQL answered these with a truncation error (an API 500)."""
    good = GOOD + ",i-0abc,Amazon EC2"
    cells = dict(zip(FOCUS_HEADER.split(","), good.split(","), strict=True))
    cells[column] = value
    bad = ",".join(cells.values())
    e = _rejected(session, _write(tmp_path, [good, bad], FOCUS_HEADER))
    assert (e.errors[0].row, e.errors[0].column) == (2, column)
    assert f"longer than {limit} characters" in e.errors[0].message


def test_a_long_file_name_is_kept(client: TestClient, session: Session) -> None:
    """A 300-character upload name used to fail on disk (an API 500)."""
    name = "x" * 296 + ".csv"
    data = ("\n".join([HEADER, GOOD]) + "\n").encode()
    r = client.post("/api/v1/billing/imports", headers=_auth(session),
                    files={"file": (name, data, "text/csv")})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["file_name"] == name
    assert r.json()["rows_accepted"] == 1


def test_an_over_long_file_name_is_a_client_error(client: TestClient, session: Session) -> None:
    data = ("\n".join([HEADER, GOOD]) + "\n").encode()
    r = client.post("/api/v1/billing/imports", headers=_auth(session),
                    files={"file": ("x" * 600 + ".csv", data, "text/csv")})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "file name" in r.text
    assert session.scalar(select(func.count()).select_from(BillingImport)) == 0


def test_an_unknown_dataset_is_a_client_error(client: TestClient, session: Session) -> None:
    """A 1,000-character dataset answered 500 (the column holds 20)."""
    data = ("\n".join([HEADER, GOOD]) + "\n").encode()
    r = client.post("/api/v1/billing/imports", headers=_auth(session),
                    data={"dataset": "d" * 1000},
                    files={"file": ("bill.csv", data, "text/csv")})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "dataset" in r.text
    assert session.scalar(select(func.count()).select_from(BillingLineItem)) == 0


def test_the_service_refuses_an_unknown_dataset(session: Session, tmp_path: Path) -> None:
    e = _rejected(session, _write(tmp_path, [GOOD]), dataset="d" * 1000)
    assert "dataset" in e.errors[0].message


def test_dataset_names_are_accepted(session: Session, tmp_path: Path) -> None:
    summary = service.import_file(session, path=_write(tmp_path, [GOOD]), dataset="amortized")
    assert summary.status == "succeeded"
