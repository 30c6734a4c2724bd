"""``gpuledger billing import``: a person sees progress, a summary, and why a file was refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from app import cli
from app.db import reset_engine

SHARED = Path(__file__).parents[2] / "fixtures" / "billing" / "public"
CUR = SHARED / "aws_cur_legacy_sample.csv"
BAD = (
    SHARED
    / "focus_1.2_examples"
    / "commitment_discount_scenarios__commitment_discount_purchase_scenario_2.csv"
)

pytestmark = pytest.mark.skipif(
    not CUR.exists(), reason="shared billing samples are not checked out beside the project"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    reset_engine()
    yield tmp_path / "ledger"
    reset_engine()


def test_import_prints_progress_and_summary(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh data directory: the embedded database is created on the way.
    assert cli.main(["billing", "import", str(CUR), "--data-dir", str(data_dir)]) == 0
    out, err = capsys.readouterr()
    assert "100.0%" in err
    assert "1,281 rows" in err
    assert "succeeded, format aws-cur" in out
    assert "rows accepted 1,281" in out
    assert "USD: BilledCost 1.6823086974" in out


def test_json_summary(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["billing", "import", str(CUR), "--json", "--data-dir", str(data_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_accepted"] == 1281
    assert Decimal(summary["totals"]["USD"]["BilledCost"]) == Decimal("1.6823086974")


def test_rejected_file_names_row_and_column(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["billing", "import", str(BAD), "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out
    assert "nothing was imported" in out
    assert "row 3, column ChargePeriodEnd" in out


def test_summary_prints_every_cost_column_the_file_has(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FOCUS file: BilledCost, EffectiveCost, ListCost and ContractedCost, each summed."""
    focus = tmp_path / "focus.csv"
    focus.write_text(
        "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,ListCost,"
        "ContractedCost,BillingCurrency\n"
        "2026-11-01,2026-11-01T00:00:00Z,2026-11-01T01:00:00Z,1.50,1.20,2.00,1.80,USD\n"
        "2026-11-01,2026-11-01T01:00:00Z,2026-11-01T02:00:00Z,1.50,1.20,2.00,1.70,USD\n"
    )
    assert cli.main(["billing", "import", str(focus), "--data-dir", str(data_dir)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  USD: "))
    assert line == "  USD: BilledCost 3  EffectiveCost 2.4  ListCost 4  ContractedCost 3.5"
