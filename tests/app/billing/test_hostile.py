"""Hostile billing input: each bad file is rejected whole, naming file, row and column."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import cli
from app.auth.service import Role
from app.billing import pricebook, service
from app.billing.catalog import PriceEntry, parse_entry
from app.billing.errors import PriceEntryError
from app.billing.importer import parse_error_row
from app.billing.rows import BillingFileError
from app.db import reset_engine
from app.kit.csvsafe import safe_cell
from app.kit.money import ISO_4217_CODES
from app.models import BillingImport, BillingLineItem, PriceBookEntry
from tests.factories.nodes import create_api_key

HEADER = ("BillingAccountId,BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,BilledCost,"
          "EffectiveCost,BillingCurrency")  # fmt: skip
GOOD = "a,2026-11-01T00:00:00Z,2026-11-01T00:00:00Z,2026-11-01T01:00:00Z,1.50,1.20,USD"


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _counts(session: Session) -> tuple[int, int]:
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(BillingLineItem)) or 0,
        session.scalar(select(func.count()).select_from(BillingImport)) or 0,
    )


def _rejected(session: Session, path: Path, **options: str) -> BillingFileError:
    """Import ``path``, expect it rejected, and check that the database did not change."""
    before = _counts(session)
    with pytest.raises(BillingFileError) as e:
        service.import_file(session, path=path, **options)  # type: ignore[arg-type]
    assert path.name in str(e.value)
    assert _counts(session) == before
    return e.value


@pytest.mark.parametrize(
    ("rows", "row", "column", "text"),
    [
        ([GOOD, GOOD.replace("USD", "EURO")], 2, "BillingCurrency", "ISO 4217"),
        ([GOOD, GOOD.replace("USD", "usd")], 2, "BillingCurrency", "ISO 4217"),
        ([GOOD, GOOD.replace("USD", "XYZ")], 2, "BillingCurrency", "ISO 4217"),
        ([GOOD, GOOD.replace(",USD", ",")], 2, "BillingCurrency", "empty currency"),
        ([GOOD, GOOD.replace("1.50", "1e30")], 2, "BilledCost", "out of range"),
        ([GOOD, GOOD.replace("1.20", "-1e20")], 2, "EffectiveCost", "out of range"),
        ([GOOD, GOOD.replace("1.50", "100000000000000000000")], 2, "BilledCost", "out of range"),
        ([GOOD, GOOD.replace("1.50", "Infinity")], 2, "BilledCost", "not a number"),
        ([GOOD, GOOD.replace("a,", "a\x00b,", 1)], 2, "BillingAccountId", "NUL"),
        ([], None, None, "no data rows"),
    ],
    ids=["currency-euro", "currency-lower", "currency-unknown", "currency-empty", "cost-1e30",
         "cost-minus-1e20", "cost-1e20-digits", "cost-infinity", "nul-byte", "header-only"],
)  # fmt: skip
def test_hostile_value_is_rejected_whole(
    session: Session,
    tmp_path: Path,
    rows: list[str],
    row: int | None,
    column: str | None,
    text: str,
) -> None:
    e = _rejected(session, _write(tmp_path, rows))
    first = e.errors[0]
    assert (first.row, first.column) == (row, column)
    assert text in first.message


def test_largest_money_value_is_accepted(session: Session, tmp_path: Path) -> None:
    big = "99999999999999999999.999999999999999999"
    service.import_file(session, path=_write(tmp_path, [GOOD.replace("1.50", big)]))
    assert session.scalars(select(BillingLineItem.billed_cost)).all() == [Decimal(big)]


def test_empty_currency_takes_the_given_currency(session: Session, tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD, GOOD.replace(",USD", ",")])
    summary = service.import_file(session, path=path, currency="USD")
    assert summary.status == "succeeded"
    assert summary.totals["USD"]["BilledCost"] == "3"


def test_given_currency_must_be_iso(session: Session, tmp_path: Path) -> None:
    e = _rejected(session, _write(tmp_path, [GOOD.replace(",USD", ",")]), currency="EURO")
    assert (e.errors[0].row, e.errors[0].column) == (1, "BillingCurrency")
    assert "ISO 4217" in e.errors[0].message


def test_malformed_csv_row_is_found(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD, GOOD, GOOD.replace("a,", "b,") + ",extra", GOOD])
    with pytest.raises(pa.ArrowInvalid) as e:
        pa_csv.read_csv(path)
    assert "Expected 7 columns, got 8" in str(e.value)
    assert parse_error_row(path, e.value) == 3
    assert parse_error_row(path, ValueError("something else")) is None


def test_latin1_file_is_rejected_with_the_byte(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n" + GOOD.replace("a,", "caf\xe9,", 1) + "\n").encode("latin-1"))
    e = _rejected(session, path)
    offset = len(HEADER) + 1 + len("caf")
    assert (e.errors[0].row, e.errors[0].message) == (
        1, f"not UTF-8 at byte {offset}; export the file as UTF-8")  # fmt: skip


def test_latin1_header_is_rejected(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + ",Caf\xe9\n" + GOOD + ",x\n").encode("latin-1"))
    e = _rejected(session, path)
    assert e.errors[0].row is None
    assert "not UTF-8 at byte" in e.errors[0].message


def test_iso_codes_are_current() -> None:
    assert {"USD", "EUR", "JPY", "KWD", "CHF", "XAU"} <= ISO_4217_CODES
    assert not {"EURO", "usd", "DEM", "XYZ"} & ISO_4217_CODES
    assert all(len(c) == 3 and c.isupper() for c in ISO_4217_CODES)


# -- price book -------------------------------------------------------------------------------
ENTRY = {"provider": "aws", "instance_type": "p5.48xlarge", "region": "us-east-1",
         "gpu_model": "H100", "gpu_count": "8", "hourly_price": "55.04"}  # fmt: skip
BAD_ENTRIES = [
    ({"hourly_price": "-1"}, "hourly_price"),
    ({"gpu_count": "-8"}, "gpu_count"),
    ({"gpu_count": "0"}, "gpu_count"),
    ({"gpu_count": "100000000000"}, "gpu_count"),
    ({"hourly_price": "1e30"}, "hourly_price"),
    ({"hourly_price": "NaN"}, "hourly_price"),
    ({"hardware_cost": "-5"}, "hardware_cost"),
    ({"amortization_months": "-3"}, "amortization_months"),
    ({"pue": "0.5"}, "pue"),
    ({"currency": "EURO"}, "currency"),
    ({"provider": ""}, "provider"),
    ({"instance_type": "x" * 101}, "instance_type"),
    ({"region": "r" * 101}, "region"),
    ({"gpu_model": "g" * 101}, "gpu_model"),
    ({"source": "s" * 501}, "source"),
]
BAD_IDS = ["negative-price", "negative-gpus", "zero-gpus", "huge-gpus", "huge-price", "nan-price",
           "negative-hardware", "negative-months", "pue-below-1", "currency", "no-provider",
           "long-type", "long-region", "long-model", "long-source"]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), BAD_ENTRIES, ids=BAD_IDS)
def test_bad_price_entry_is_refused(change: dict[str, str], field: str) -> None:
    with pytest.raises(PriceEntryError) as e:
        parse_entry({**ENTRY, **change})
    assert e.value.field == field
    assert field in str(e.value)


def test_price_book_file_names_the_line(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    rows = [ENTRY, {**ENTRY, "instance_type": "p4d.24xlarge", "hourly_price": "-2"}]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ENTRY))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(PriceEntryError) as e:
        pricebook.import_pricebook(session, path)
    assert "prices.csv line 3" in str(e.value)
    assert "hourly_price" in str(e.value)
    assert session.scalar(select(func.count()).select_from(PriceBookEntry)) == 0


@pytest.mark.parametrize(("change", "field"), BAD_ENTRIES, ids=BAD_IDS)
def test_bad_price_entry_is_refused_by_the_service(
    session: Session, change: dict[str, str], field: str
) -> None:
    entry = parse_entry(ENTRY)
    other = parse_entry({**ENTRY, "instance_type": "p4d.24xlarge"})
    values = {**entry.__dict__, **{k: _typed(k, v) for k, v in change.items()}}
    with pytest.raises(PriceEntryError):
        pricebook.upsert_entries(session, [other, PriceEntry(**values)])
    assert session.scalar(select(func.count()).select_from(PriceBookEntry)) == 0


def _typed(name: str, text: str) -> object:
    if name in ("gpu_count", "amortization_months"):
        return int(text)
    if name in ("hourly_price", "hardware_cost", "energy_price_kwh", "pue"):
        return Decimal(text)
    return text


@pytest.mark.parametrize(("change", "field"), BAD_ENTRIES, ids=BAD_IDS)
def test_bad_price_entry_is_a_client_error(
    client: TestClient, session: Session, change: dict[str, str], field: str
) -> None:
    key = create_api_key(session, role=Role.ADMIN)
    r = client.put("/api/v1/pricebook", headers={"Authorization": f"Bearer {key}"},
                   json=[{**ENTRY, **change}])  # fmt: skip
    assert r.status_code in (400, 422), r.text
    assert field in r.text
    assert session.scalar(select(func.count()).select_from(PriceBookEntry)) == 0


# -- formula injection ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("team-a", "team-a"),
        ("", ""),
        (-3, -3),
        (Decimal("-1.5"), Decimal("-1.5")),
        (2.5, 2.5),
        (None, None),
    ],
)  # fmt: skip
def test_safe_cell(value: object, expected: object) -> None:
    assert safe_cell(value) == expected


def test_pricebook_list_escapes_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reset_engine()  # the CLI opens its own embedded database in --data-dir
    data_dir = tmp_path / "ledger"
    prices = tmp_path / "prices.csv"
    with prices.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*ENTRY, "source"])
        writer.writeheader()
        writer.writerow({**ENTRY, "instance_type": "=cmd|' /C calc'!A0", "source": "@evil"})
    try:
        assert cli.main(["pricebook", "import", str(prices), "--data-dir", str(data_dir)]) == 0
        assert cli.main(["pricebook", "list", "--data-dir", str(data_dir)]) == 0
    finally:
        reset_engine()
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    (evil,) = [r for r in rows if r["source"].endswith("@evil")]
    assert evil["instance_type"] == "'=cmd|' /C calc'!A0"
    assert evil["source"] == "'@evil"
    assert all(not r[c].startswith(("=", "+", "@")) for r in rows for c in r)


def test_pricebook_import_cli_explains_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed a 33-line traceback; now one line names the file, line and field."""
    from app import cli
    from app.db import reset_engine

    path = tmp_path / "prices.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ENTRY))
        writer.writeheader()
        writer.writerow({**ENTRY, "hourly_price": "-2"})
    reset_engine()
    try:
        code = cli.main(["pricebook", "import", str(path), "--data-dir", str(tmp_path / "d")])
    finally:
        reset_engine()
    err = capsys.readouterr().err
    assert code == 1
    assert "prices.csv line 2" in err
    assert "hourly_price" in err
    assert "Traceback" not in err
