"""Billing import on both dialects: reconciliation, idempotence, correction, bad files."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service
from app.billing.formats import Format
from app.billing.rows import BillingFileError
from app.models import BillingImport, BillingLineItem, Node
from bench import billing_samples as samples

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "billing" / "public"
# The spec's purchase scenarios 2 and 3 carry "2023-02-01T30:00:00Z" (hour 30): rejected, see below.
BAD_SPEC_EXAMPLES = {
    "commitment_discount_scenarios__commitment_discount_purchase_scenario_2.csv",
    "commitment_discount_scenarios__commitment_discount_purchase_scenario_3.csv",
}
COST_COLUMN = {"aws_cur_legacy_sample.csv": "lineItem/UnblendedCost",
               "azure_ea_export_sample.csv": "CostInBillingCurrency"}  # fmt: skip
SAMPLES = sorted(
    p for p in [*DATA.glob("*.csv"), *DATA.glob("focus_1.2_examples/*.csv")]
    if not p.name.startswith("conversion_rules") and p.name not in BAD_SPEC_EXAMPLES
)  # fmt: skip


def test_public_samples_are_all_here() -> None:
    # 4 provider exports + 11 FOCUS spec examples, less the 2 with an impossible hour.
    assert len(SAMPLES) == 13


def _direct_sum(path: Path) -> Decimal:
    column = COST_COLUMN.get(path.name, "Cost" if path.name.startswith("EA_") else "BilledCost")
    with path.open(newline="", encoding="utf-8-sig") as f:
        return sum((Decimal(r[column]) for r in csv.DictReader(f) if r[column]), Decimal(0))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(BillingLineItem)) or 0


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name[:60])
def test_sample_reconciles_to_the_cent(session: Session, path: Path) -> None:
    summary = service.import_file(session, path=path)
    assert summary.status == "succeeded"
    (currency,) = summary.totals
    direct = _direct_sum(path)
    assert _cents(Decimal(summary.totals[currency]["BilledCost"])) == _cents(direct)
    stored = session.scalars(select(BillingLineItem.billed_cost)).all()
    # Exact to 18 decimals (Azure writes up to 26); to the cent is what finance checks.
    assert abs(sum(stored, Decimal(0)) - direct) < Decimal("1e-15")
    assert _cents(sum(stored, Decimal(0))) == _cents(direct)
    assert summary.rows_accepted == len(stored)


@pytest.mark.parametrize("name", sorted(BAD_SPEC_EXAMPLES))
def test_spec_example_with_hour_30_is_rejected(session: Session, name: str) -> None:
    with pytest.raises(BillingFileError) as e:
        service.import_file(session, path=DATA / "focus_1.2_examples" / name)
    assert e.value.errors[0].column == "ChargePeriodEnd"
    assert "T30:00:00Z" in e.value.errors[0].message
    assert _count(session) == 0


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("cur2.csv", lambda p: samples.write_cur2(p, 300)),
        ("cur2.csv.gz", lambda p: samples.write_cur2(p, 300)),
        ("focus.csv", lambda p: samples.write_focus(p, 200)),
        ("gcp.csv", lambda p: samples.write_gcp(p, 4)),
        ("gcp.jsonl", lambda p: samples.write_gcp(p, 4)),
        ("azure_actual.csv", lambda p: samples.write_azure(p, 3)),
    ],
)
def test_generated_gpu_files_import_and_match_nodes(
    session: Session, tmp_path: Path, name: str, writer: object
) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    session.add_all([
        Node(name="aws-1", instance_id="i-00000000000000001", labels={}, created_at=now),
        Node(name="gcp-1", instance_id="4815162342", labels={}, created_at=now),
        Node(name="az-1", instance_id=samples.AZURE_VM, labels={}, created_at=now),
    ])  # fmt: skip
    session.flush()
    path = tmp_path / name
    expected = writer(path)  # type: ignore[operator]
    summary = service.import_file(session, path=path)
    assert Decimal(summary.totals["USD"]["BilledCost"]) == expected
    assert summary.rows_matched > 0
    gpu = session.scalars(select(BillingLineItem).where(BillingLineItem.x_gpu_model.is_not(None)))
    assert gpu.first() is not None


def test_parquet_cur2(session: Session, tmp_path: Path) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    csv_path = tmp_path / "cur2.csv"
    expected = samples.write_cur2(csv_path, 200)
    pq.write_table(pa_csv.read_csv(csv_path), tmp_path / "cur2.parquet")
    summary = service.import_file(session, path=tmp_path / "cur2.parquet")
    assert summary.format == "aws-cur2"
    assert Decimal(summary.totals["USD"]["BilledCost"]) == expected


def test_same_file_twice_changes_nothing(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "cur2.csv"
    samples.write_cur2(path, 100)
    first = service.import_file(session, path=path)
    before = (_count(session), session.scalar(select(func.count()).select_from(BillingImport)))
    second = service.import_file(session, path=path)
    assert second.status == "duplicate"
    assert second.duplicate_of == first.import_id
    assert (
        _count(session),
        session.scalar(select(func.count()).select_from(BillingImport)),
    ) == before


def test_matched_on_import_and_rematched_after_a_node_registers(
    session: Session, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    samples.write_cur2(tmp_path / "cur2.csv", 50)
    first = service.import_file(session, path=tmp_path / "cur2.csv")
    assert first.rows_matched == 0
    session.add(Node(name="aws-1", instance_id="I-00000000000000001", labels={},
                     created_at=datetime.now(UTC)))  # fmt: skip
    session.flush()
    matched = service.rematch_nodes(session)
    stored = session.scalar(select(func.count()).where(BillingLineItem.node_id.is_not(None)))
    assert matched == stored
    assert matched > 0


def test_corrected_export_replaces_the_period(session: Session, tmp_path: Path) -> None:
    """A re-export of the same file (same name, new content) replaces that file's rows."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    samples.write_cur2(tmp_path / "v1" / "cur.csv", 100, seed=1)
    corrected = samples.write_cur2(tmp_path / "v2" / "cur.csv", 80, seed=7)
    samples.write_cur2(tmp_path / "other.csv", 10, account="999999999999")
    service.import_file(session, path=tmp_path / "other.csv")
    service.import_file(session, path=tmp_path / "v1" / "cur.csv")
    summary = service.import_file(session, path=tmp_path / "v2" / "cur.csv")
    assert summary.rows_replaced == 100
    assert _count(session) == 90
    billed = session.scalars(
        select(BillingLineItem.billed_cost).where(
            BillingLineItem.billing_account_id == "123456789012"
        )
    ).all()
    assert sum(billed, Decimal(0)) == corrected


def test_explicit_replace_takes_the_whole_scope(session: Session, tmp_path: Path) -> None:
    samples.write_cur2(tmp_path / "v1.csv", 100, seed=1)
    corrected = samples.write_cur2(tmp_path / "v2.csv", 80, seed=7)
    service.import_file(session, path=tmp_path / "v1.csv")
    summary = service.import_file(session, path=tmp_path / "v2.csv", replace_scope=True)
    assert summary.rows_replaced == 100
    assert sum(session.scalars(select(BillingLineItem.billed_cost)).all(), Decimal(0)) == corrected


def _focus(tmp_path: Path, rows: list[str], header: str | None = None) -> Path:
    header = header or ("BillingAccountId,BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,"
                        "BilledCost,EffectiveCost,BillingCurrency")  # fmt: skip
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = "a,2026-11-01T00:00:00Z,2026-11-01T00:00:00Z,2026-11-01T01:00:00Z,1.50,1.20,USD"


@pytest.mark.parametrize(
    ("rows", "header", "row", "column", "text"),
    [
        ([GOOD], "foo,bar,baz", None, None, "unknown billing format"),
        ([GOOD], "BilledCost,ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart", None,
         "EffectiveCost", "mandatory column is missing"),
        ([GOOD, GOOD.replace("1.50", "1.5x")], None, 2, "BilledCost", "not a number"),
        ([GOOD, GOOD.replace("2026-11-01T01:00:00Z", "yesterday")], None, 2, "ChargePeriodEnd",
         "unparseable date"),
        ([GOOD, GOOD.replace("USD", "EUR")], None, 2, "BillingCurrency", "mixed currencies"),
    ],
    ids=["unknown-format", "missing-column", "non-numeric-cost", "bad-date", "mixed-currency"],
)  # fmt: skip
def test_bad_file_is_rejected_whole(
    session: Session,
    tmp_path: Path,
    rows: list[str],
    header: str | None,
    row: int | None,
    column: str | None,
    text: str,
) -> None:
    samples.write_cur2(tmp_path / "ok.csv", 10)
    service.import_file(session, path=tmp_path / "ok.csv")
    before = _count(session), session.scalar(select(func.count()).select_from(BillingImport))
    path = _focus(tmp_path, rows * 30 if row is None else rows, header)
    with pytest.raises(BillingFileError) as e:
        service.import_file(session, path=path)
    first = e.value.errors[0]
    assert (first.row, first.column) == (row, column)
    assert text in first.message
    assert "bad.csv" in str(e.value)
    session.expire_all()
    assert (
        _count(session),
        session.scalar(select(func.count()).select_from(BillingImport)),
    ) == before


def test_errors_are_counted_beyond_the_first_few(session: Session, tmp_path: Path) -> None:
    path = _focus(tmp_path, [GOOD.replace("1.50", "n/a")] * 50)
    with pytest.raises(BillingFileError) as e:
        service.import_file(session, path=path)
    assert e.value.error_count == 50
    assert len(e.value.errors) == 20
    assert [x.row for x in e.value.errors[:3]] == [1, 2, 3]


def test_rate_allows_mixed_currencies(session: Session, tmp_path: Path) -> None:
    path = _focus(tmp_path, [GOOD, GOOD.replace("USD", "EUR")])
    summary = service.import_file(session, path=path, rates={"EUR": Decimal("1.08")})
    assert set(summary.totals) == {"EUR", "USD"}
    rates = session.scalars(
        select(BillingLineItem.x_exchange_rate).order_by(BillingLineItem.row_number)
    )
    assert list(rates) == [Decimal(1), Decimal("1.08")]


def test_format_override(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    samples.write_focus(path, 5)
    with pytest.raises(BillingFileError):
        service.import_file(session, path=path, format=Format.CUR2)
