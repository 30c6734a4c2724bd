"""``gpuledger report``: CSV and JSON to stdout, XLSX to a file, and clear refusals."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from app import cli
from app.db import reset_engine
from tests.app.reports.sample import record_calls


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    reset_engine()
    yield tmp_path / "ledger"
    reset_engine()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the service with one that records its arguments and returns a sample report."""
    return record_calls(monkeypatch)


def _run(data_dir: Path, *args: str) -> int:
    return cli.main(["report", "--data-dir", str(data_dir), *args])


def test_help_explains_the_period(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "the last full calendar month" in out
    for option in ("--period", "--from", "--to", "--tz", "--group-by", "--format", "-o"):
        assert option in out


def test_csv_to_stdout(data_dir: Path, calls, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _run(data_dir, "--period", "2026-11", "--group-by", "team,project", "--tz", "Europe/Berlin")
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("# period,2026-11\n")
    assert "team,project,currency,gpu_hours,cost" in out
    (call,) = calls
    assert (call["label"], call["group_by"], call["tz"]) == (
        "2026-11",
        ("team", "project"),
        "Europe/Berlin",
    )


def test_json_to_stdout_and_dates(
    data_dir: Path, calls, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(data_dir, "--from", "2026-11-01", "--to", "2026-11-15", "--format", "json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["period"]["label"] == "2026-11-01 to 2026-11-15"
    assert calls[0]["end"].isoformat() == "2026-11-16T00:00:00+00:00"


def test_xlsx_from_the_file_name(data_dir: Path, calls, tmp_path: Path, capsys) -> None:
    out = tmp_path / "november.xlsx"
    assert _run(data_dir, "--period", "2026-11", "-o", str(out)) == 0
    assert load_workbook(out).sheetnames[0] == "Summary"
    assert "november.xlsx: 2026-11, XLSX" in capsys.readouterr().err


def test_xlsx_is_refused_on_a_terminal(
    data_dir: Path, calls, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert _run(data_dir, "--format", "xlsx") == 2
    assert "give -o FILE" in capsys.readouterr().err
    assert calls == []


def test_xlsx_to_a_pipe(data_dir: Path, calls, monkeypatch: pytest.MonkeyPatch) -> None:
    class Pipe(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    pipe = Pipe(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert _run(data_dir, "--format", "xlsx", "--period", "mtd") == 0
    pipe.flush()
    raw = pipe.buffer
    assert isinstance(raw, io.BytesIO)
    assert load_workbook(io.BytesIO(raw.getvalue())).sheetnames[0] == "Summary"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "unknown period"),
        (["--period", "2026-11", "--from", "2026-11-01"], "not both"),
        (["--tz", "Mars/Base"], "unknown time zone"),
        (["--group-by", "planet"], "group_by"),
    ],
)
def test_bad_arguments(data_dir: Path, calls, capsys, args: list[str], message: str) -> None:
    assert _run(data_dir, *args) == 2
    assert message in capsys.readouterr().err
    assert calls == []


def test_the_real_service_on_a_fresh_database(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(data_dir, "--period", "2026-11", "--format", "json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["lines"] == []
