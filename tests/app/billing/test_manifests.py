"""AWS delivery manifests: a CUR assembly or a Data Exports execution imports whole, as one run
that replaces the previous run of its report and month; a delivery is all or nothing."""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import cli
from app.billing import service
from app.billing.manifests import is_manifest, locate, read_manifest
from app.billing.rows import BillingFileError
from app.db import reset_engine
from app.models import BillingImport, BillingLineItem
from tests.app.billing.test_service import DATA

CUR = DATA / "aws_cur_legacy_sample.csv"
COST = "lineItem/UnblendedCost"
PERIOD = "20231101-20231201"


def _rows() -> tuple[list[str], list[list[str]]]:
    with CUR.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _sum(header: list[str], body: list[list[str]]) -> Decimal:
    i = header.index(COST)
    return sum((Decimal(r[i]) for r in body if r[i]), Decimal(0))


def _gz(path: Path, header: list[str], body: list[list[str]]) -> Path:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *body])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.getvalue().encode()))
    return path


def _cur_delivery(root: Path, assembly: str, parts: list[list[list[str]]]) -> Path:
    """A synced copy of ``s3://bucket/cur/gpu-report/`` with one assembly of November 2023."""
    header, _ = _rows()
    folder = root / "cur" / "gpu-report" / PERIOD
    keys = []
    for n, body in enumerate(parts, 1):
        key = f"cur/gpu-report/{PERIOD}/{assembly}/gpu-report-{n}.csv.gz"
        _gz(root / key, header, body)
        keys.append(key)
    manifest = folder / "gpu-report-Manifest.json"
    manifest.write_text(json.dumps({
        "assemblyId": assembly, "account": "123456789012", "reportName": "gpu-report",
        "billingPeriod": {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"},
        "bucket": "bucket", "reportKeys": keys, "compression": "GZIP", "contentType": "text/csv",
    }))  # fmt: skip
    return manifest


def _stored(session: Session) -> Decimal:
    session.expire_all()
    return sum(session.scalars(select(BillingLineItem.billed_cost)).all(), Decimal(0))


def _import(session: Session, manifest: Path) -> list[service.ImportSummary]:
    m = read_manifest(manifest)
    return service.import_delivery(session, m.files, delivery=m.delivery, run=m.run)


def test_a_cur_assembly_imports_whole_and_the_next_one_replaces_it(
    session: Session, tmp_path: Path
) -> None:
    header, body = _rows()
    half = len(body) // 2
    manifest = _cur_delivery(tmp_path, "a1b2-old", [body[:half], body[half:]])
    m = read_manifest(manifest)
    assert (m.delivery, m.run, len(m.files)) == ("aws:gpu-report/202311", "a1b2-old", 2)
    summaries = _import(session, manifest)
    assert [s.rows_replaced for s in summaries] == [0, 0]  # the two files never replace each other
    assert _stored(session) == _sum(header, body)

    # AWS restates the month: a new assembly (fewer rows) replaces the whole earlier one.
    newer = _cur_delivery(tmp_path, "c3d4-new", [body[:100], body[100:300]])
    summaries = _import(session, newer)
    assert sum(s.rows_replaced for s in summaries) == len(body)
    assert _stored(session) == _sum(header, body[:300])


def test_a_data_exports_manifest_finds_its_files_beside_the_metadata(tmp_path: Path) -> None:
    header, body = _rows()
    data = tmp_path / "exports" / "gpu-cur2" / "data" / "BILLING_PERIOD=2023-11"
    _gz(data / "gpu-cur2-00001.csv.gz", header, body[:10])
    _gz(data / "gpu-cur2-00002.csv.gz", header, body[10:20])
    meta = tmp_path / "exports" / "gpu-cur2" / "metadata" / "BILLING_PERIOD=2023-11"
    meta.mkdir(parents=True)
    manifest = meta / "gpu-cur2-Manifest.json"
    manifest.write_text(json.dumps({
        "executionId": "e-77", "billingPeriod": {"start": "2023-11-01T00:00:00.000Z"},
        "exportArn": "arn:aws:bcm-data-exports:us-east-1:123456789012:export/gpu-cur2-0a1b",
        "dataFiles": [f"s3://bucket/exports/gpu-cur2/data/BILLING_PERIOD=2023-11/gpu-cur2-0000{n}.csv.gz"
                      for n in (1, 2)],
    }))  # fmt: skip
    assert is_manifest(manifest)
    m = read_manifest(manifest)
    assert m.files == [data / "gpu-cur2-00001.csv.gz", data / "gpu-cur2-00002.csv.gz"]
    assert (m.delivery, m.run) == ("aws:gpu-cur2-0a1b/202311", "e-77")


def test_locate_takes_the_file_of_this_run_not_an_older_one_with_the_same_name(
    tmp_path: Path,
) -> None:
    old = tmp_path / "r" / PERIOD / "old-assembly" / "r-1.csv.gz"
    new = tmp_path / "r" / PERIOD / "new-assembly" / "r-1.csv.gz"
    for path in (old, new):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = locate(f"prefix/r/{PERIOD}/new-assembly/r-1.csv.gz", tmp_path / "r" / PERIOD)
    assert found == new


def test_a_manifest_with_a_missing_file_imports_nothing(session: Session, tmp_path: Path) -> None:
    _, body = _rows()
    manifest = _cur_delivery(tmp_path, "a1", [body[:10], body[10:20]])
    missing = next(tmp_path.rglob("gpu-report-2.csv.gz"))
    missing.unlink()
    with pytest.raises(BillingFileError) as e:
        read_manifest(manifest)
    assert e.value.file_name == manifest.name
    assert "gpu-report-2.csv.gz" in e.value.errors[0].message


def test_a_delivery_is_all_or_nothing(session: Session, tmp_path: Path) -> None:
    """The second file is bad: the first one, already read, is not kept either."""
    header, body = _rows()
    good = _gz(tmp_path / "part-1.csv.gz", header, body[:50])
    bad_rows = [list(r) for r in body[50:60]]
    bad_rows[3][header.index(COST)] = "twelve"
    bad = _gz(tmp_path / "part-2.csv.gz", header, bad_rows)
    with pytest.raises(BillingFileError) as e:
        service.import_delivery(session, [good, bad], delivery="cur/2023-11", run="r1")
    assert (e.value.file_name, e.value.errors[0].row) == ("part-2.csv.gz", 4)
    assert session.scalar(select(func.count()).select_from(BillingLineItem)) == 0
    assert session.scalar(select(func.count()).select_from(BillingImport)) == 0


def test_cli_imports_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header, body = _rows()
    manifest = _cur_delivery(tmp_path / "bucket", "a1", [body[:40], body[40:90]])
    reset_engine()
    try:
        args = ["billing", "import", str(manifest), "--json",
                "--data-dir", str(tmp_path / "ledger")]  # fmt: skip
        assert cli.main(args) == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["file_name"] for r in results] == ["gpu-report-1.csv.gz", "gpu-report-2.csv.gz"]
        assert [r["rows_accepted"] for r in results] == [40, 50]
        billed = sum(Decimal(r["totals"]["USD"]["BilledCost"]) for r in results)
        assert billed == _sum(header, body[:90])

        # A manifest whose files are not all there is refused, naming what is missing.
        next((tmp_path / "bucket").rglob("gpu-report-2.csv.gz")).unlink()
        assert cli.main([*args[:3], "--data-dir", str(tmp_path / "ledger")]) == 1
        out = capsys.readouterr().out
        assert "REJECTED" in out
        assert "gpu-report-2.csv.gz" in out
    finally:
        reset_engine()


def test_cli_delivery_rejects_every_file_when_one_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, body = _rows()
    good = _gz(tmp_path / "part-1.csv.gz", header, body[:5])
    bad_rows = [list(r) for r in body[5:8]]
    bad_rows[0][header.index(COST)] = ""
    bad = _gz(tmp_path / "part-2.csv.gz", header, bad_rows)
    reset_engine()
    try:
        args = ["billing", "import", str(good), str(bad), "--delivery", "cur/2023-11", "--json",
                "--data-dir", str(tmp_path / "ledger")]  # fmt: skip
        assert cli.main(args) == 1
        results = {r["file_name"]: r for r in json.loads(capsys.readouterr().out)}
        assert results["part-2.csv.gz"]["errors"][0]["row"] == 1
        assert results["part-1.csv.gz"]["status"] == "rejected"
        assert "imported whole" in results["part-1.csv.gz"]["errors"][0]["message"]
        # Nothing stayed: the good file imports afresh on its own.
        assert cli.main(["billing", "import", str(good), "--json",
                         "--data-dir", str(tmp_path / "ledger")]) == 0  # fmt: skip
        assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    finally:
        reset_engine()
