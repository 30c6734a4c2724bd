"""Split exports: a month delivered as several files imports whole; a re-export of one file
replaces only that file's rows; "duplicate" means the rows are really there. Both dialects."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service
from app.models import BillingLineItem
from tests.app.billing.test_service import DATA, _direct_sum

SAMPLE = DATA / "focus_1.2_examples" / "commitment_discount_flexibility__one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources.csv"  # fmt: skip


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return rows[0], [r for r in rows[1:] if r]  # the spec examples have blank lines


def _write(path: Path, header: list[str], body: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *body])
    return path


def _halves(tmp_path: Path) -> tuple[Path, Path]:
    header, body = _read(SAMPLE)
    assert len(body) >= 3
    half = len(body) // 2
    return (_write(tmp_path / "part-00001.csv", header, body[:half]),
            _write(tmp_path / "part-00002.csv", header, body[half:]))  # fmt: skip


def _stored(session: Session) -> Decimal:
    return sum(session.scalars(select(BillingLineItem.billed_cost)).all(), Decimal(0))


def _rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(BillingLineItem)) or 0


def test_the_files_of_a_split_month_add_up(session: Session, tmp_path: Path) -> None:
    """The second half used to "replace" the first: the database held half the money."""
    first, second = _halves(tmp_path)
    service.import_file(session, path=first)
    summary = service.import_file(session, path=second)
    assert summary.rows_replaced == 0
    assert _stored(session) == _direct_sum(SAMPLE)


def test_a_reexport_of_one_file_replaces_only_that_file(session: Session, tmp_path: Path) -> None:
    first, second = _halves(tmp_path)
    service.import_file(session, path=first)
    service.import_file(session, path=second)
    before = _rows(session)
    # The provider re-issues part 2 with one row fewer (same name, new content).
    header, body = _read(second)
    (tmp_path / "again").mkdir()
    reissued = _write(tmp_path / "again" / second.name, header, body[:-1])
    summary = service.import_file(session, path=reissued)
    assert summary.rows_replaced == len(body)
    assert _rows(session) == before - 1
    assert _stored(session) == _direct_sum(first) + _direct_sum(reissued)


def test_one_delivery_imports_as_a_unit_and_replaces_its_previous_run(
    session: Session, tmp_path: Path
) -> None:
    first, second = _halves(tmp_path)
    for path in (first, second):
        service.import_file(session, path=path, delivery="focus/2024-01", run="assembly-1")
    assert _stored(session) == _direct_sum(SAMPLE)
    # A new assembly of the same delivery (here: only its first file so far) replaces the old
    # run's rows of the same scopes, whatever the files are called.
    header, body = _read(second)
    renamed = _write(tmp_path / "assembly-2-part-1.csv", header, body[:1])
    summary = service.import_file(session, path=renamed, delivery="focus/2024-01",
                                  run="assembly-2")  # fmt: skip
    assert summary.rows_replaced == len(_read(first)[1]) + len(_read(second)[1])
    assert _stored(session) == _direct_sum(renamed)


def test_duplicate_means_the_rows_are_there(session: Session, tmp_path: Path) -> None:
    """Re-importing the whole file after its rows were replaced used to answer "duplicate"."""
    whole = tmp_path / "month.csv"
    whole.write_bytes(SAMPLE.read_bytes())
    service.import_file(session, path=whole)
    assert service.import_file(session, path=whole).status == "duplicate"
    header, body = _read(SAMPLE)
    other = _write(tmp_path / "other.csv", header, body)  # the same rows, other bytes
    service.import_file(session, path=other, replace_scope=True)  # takes the whole scope
    again = service.import_file(session, path=whole, replace_scope=True)
    assert again.status == "succeeded"
    assert _stored(session) == _direct_sum(SAMPLE)


def test_cli_imports_a_delivery_as_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import cli
    from app.db import reset_engine

    first, second = _halves(tmp_path)
    reset_engine()
    try:
        args = ["billing", "import", str(first), str(second), "--delivery", "focus/2024-01",
                "--json", "--data-dir", str(tmp_path / "ledger")]  # fmt: skip
        assert cli.main(args) == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["rows_replaced"] for r in results] == [0, 0]
        # The next run of the delivery replaces the whole earlier run.
        header, body = _read(second)
        newer = _write(tmp_path / "newer.csv", header, body[:1])
        args = ["billing", "import", str(newer), "--delivery", "focus/2024-01", "--json",
                "--data-dir", str(tmp_path / "ledger")]  # fmt: skip
        assert cli.main(args) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["rows_replaced"] == len(_read(first)[1]) + len(body)
    finally:
        reset_engine()


def test_api_upload_names_its_delivery(
    client: TestClient, session: Session, tmp_path: Path
) -> None:
    from app.auth import service as auth_service
    from app.auth.service import Role

    key = auth_service.create_api_key(session, name="finance", role=Role.FINANCE).secret
    headers = {"Authorization": f"Bearer {key}"}
    first, second = _halves(tmp_path)
    for path in (first, second):
        r = client.post("/api/v1/billing/imports", headers=headers,
                        files={"file": (path.name, path.read_bytes(), "text/csv")},
                        data={"delivery": "focus/2024-01", "run": "assembly-1"})  # fmt: skip
        assert r.status_code in (200, 201), r.text
    assert _stored(session) == _direct_sum(SAMPLE)
    r = client.post("/api/v1/billing/imports", headers=headers,
                    files={"file": ("x.csv", b"a,b\n", "text/csv")},
                    data={"delivery": "d" * 201})  # fmt: skip
    assert r.status_code == 422


def test_rows_that_can_never_match_a_node_are_announced(session: Session) -> None:
    """The legacy CUR sample has no resource ids: the summary says its rows cannot match."""
    legacy = DATA / "aws_cur_legacy_sample.csv"
    summary = service.import_file(session, path=legacy)
    [warning] = [w for w in summary.warnings if "can never be matched" in w]
    assert warning.startswith(f"{summary.rows_accepted:,} of {summary.rows_accepted:,} rows")
    whole = service.import_file(session, path=SAMPLE)
    assert not [w for w in whole.warnings if "can never be matched" in w]
