"""Billing files as providers really write them: sparse JSONL, nested Parquet, big bad gzip."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import service
from app.models import BillingLineItem
from bench import billing_samples as samples

GCE_INSTANCE = "4815162342"


def _stored(session: Session) -> list[BillingLineItem]:
    return list(session.scalars(select(BillingLineItem).order_by(BillingLineItem.row_number)))


def test_gcp_jsonl_keeps_keys_missing_from_the_first_line(session: Session, tmp_path: Path) -> None:
    # BigQuery leaves out null fields: line 1 has no credits and no resource.global_name.
    path = tmp_path / "gcp.jsonl"
    billed = samples.write_gcp(path, 4, instance=GCE_INSTANCE)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    del lines[0]["credits"], lines[0]["resource"]["global_name"]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    credits = sum((Decimal(str(c["amount"])) for line in lines for c in line.get("credits", [])),
                  Decimal(0))  # fmt: skip
    assert credits == Decimal("-0.4")

    summary = service.import_file(session, path=path)

    assert summary.status == "succeeded"
    assert Decimal(summary.totals["USD"]["BilledCost"]) == billed
    assert Decimal(summary.totals["USD"]["EffectiveCost"]) == billed + credits
    rows = _stored(session)
    assert rows[0].x_resource_key == "gpu-vm-1"  # resource.name, its only resource field
    assert {r.x_resource_key for r in rows[1:]} == {GCE_INSTANCE}
    assert all(r.resource_id and r.resource_id.endswith(GCE_INSTANCE) for r in rows[1:])


def _as_strings(path: Path) -> pa.Table:
    with path.open(newline="") as f:
        header = next(csv.reader(f))
    types = dict.fromkeys(header, pa.string())
    return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))


def _tags_as(table: pa.Table, column: str, type: pa.DataType) -> tuple[pa.Table, list[dict]]:
    tags = [json.loads(t) for t in table.column(column).to_pylist()]
    if pa.types.is_map(type):
        values = pa.array([list(t.items()) for t in tags], type)
    else:
        values = pa.array(tags, type)
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, values), tags


@pytest.mark.parametrize(
    ("writer", "column", "type"),
    [
        (samples.write_cur2, "resource_tags", pa.map_(pa.string(), pa.string())),
        (samples.write_focus, "Tags", pa.map_(pa.string(), pa.string())),
        (samples.write_focus, "Tags", pa.struct([("team", pa.string())])),
    ],
    ids=["cur2-map", "focus-map", "focus-struct"],
)
def test_parquet_nested_tags_are_stored_as_json_objects(
    session: Session, tmp_path: Path, writer, column: str, type: pa.DataType
) -> None:
    csv_path = tmp_path / "bill.csv"
    billed = writer(csv_path, 150)
    table, tags = _tags_as(_as_strings(csv_path), column, type)
    pq.write_table(table, tmp_path / "bill.parquet")

    summary = service.import_file(session, path=tmp_path / "bill.parquet")

    assert summary.status == "succeeded"
    assert Decimal(summary.totals["USD"]["BilledCost"]) == billed
    rows = _stored(session)
    assert sum((r.billed_cost for r in rows), Decimal(0)) == billed
    # CUR writes user-defined tags as "user_<key>"; the ledger keeps the key itself.
    expected = [{k.removeprefix("user_"): v for k, v in t.items()} for t in tags]
    assert [json.loads(r.tags or "null") for r in rows] == expected
    assert expected[0] in ({"team": "ml"}, {"team": "vision"}, {"team": "search"})


def _bad_gzip_focus(path: Path, bad_line: int) -> None:
    """A gzip FOCUS CSV of about 29 MB uncompressed (several 4 MiB blocks), one row malformed."""
    plain = path.with_suffix("")
    rng = random.Random(5)
    instances = [f"i-{rng.getrandbits(68):017x}" for _ in range(60_000)]
    samples.write_focus(plain, 60_000, instances=instances)
    lines = plain.read_text().splitlines(keepends=True)
    lines[bad_line] = "1,2,3\n"
    with gzip.open(path, "wt") as f:
        f.writelines(lines)
    plain.unlink()


def test_cli_rejects_a_bad_gzip_csv_without_aborting_at_exit(tmp_path: Path) -> None:
    # The pyarrow read-ahead thread used to read through a Python file: left running when the
    # file was rejected, it aborted the interpreter at exit (SIGABRT, 134) or hung it.
    bad = tmp_path / "bad.csv.gz"
    _bad_gzip_focus(bad, 100)
    assert bad.stat().st_size > 1 << 20
    gpuledger = Path(sys.executable).parent / "gpuledger"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEDGER_")}
    for run in range(20):
        command = [str(gpuledger), "billing", "import", str(bad),
                   "--data-dir", str(tmp_path / f"data{run}")]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {run} hung at exit")
        assert (run, done.returncode) == (run, 1), done.stderr[-2000:]
        assert "REJECTED" in done.stdout
