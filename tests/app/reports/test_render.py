"""CSV, XLSX and JSON exports: rounded to the minor unit, and every table adds up exactly."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from app.kit.money import round_money, round_parts
from app.reports import render, rounding
from app.reports.types import MONEY_FIELDS, NO_TELEMETRY, Amounts, SpendReport
from tests.app.reports.sample import GENERATED, make_report

MONEY = [*MONEY_FIELDS, "previous_cost"]
QUANTITIES = ["gpu_hours", "unpriced_gpu_hours", "energy_kwh"]
SEEDS = range(12)


def _parse_csv(text: str) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    lines = text.splitlines()
    header = [tuple(r) for r in csv.reader(x for x in lines if x.startswith("# "))]
    rows = list(csv.DictReader(x for x in lines if not x.startswith("# ")))
    return [(k.removeprefix("# "), v) for k, v in header], rows


def _digits(text: str) -> int:
    return len(text.partition(".")[2])


class TestRoundingTables:
    def test_naive_rounding_would_not_add_up(self) -> None:
        # The sample data is chosen so that the test below means something.
        misses = 0
        for seed in SEEDS:
            report = make_report(seed=seed)
            lines = sum(
                (round_money(line.amounts.cost, "USD") for line in report.lines), Decimal(0)
            )
            misses += lines != round_money(report.totals["USD"].cost, "USD")
        assert misses > 0

    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
    def test_columns_add_up_and_stay_within_a_unit(self, seed: int, currency: str) -> None:
        report = make_report(seed=seed, currencies=(currency,))
        (table,) = rounding.tables(report)
        unit = Decimal(1).scaleb(-{"USD": 2, "JPY": 0, "KWD": 3}[currency])
        for column in rounding.COLUMNS:
            assert (
                sum((r.values[column] for r in table.lines), Decimal(0))
                == table.total.values[column]
            )
            if column in MONEY_FIELDS:
                for r in table.lines:
                    assert abs(r.values[column] - getattr(r.exact, column)) < unit
        days: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
        for d, _exact in table.daily:
            days[d.key] += d.cost
        # The bill-only line has no days: the bills' rows carry no usage to spread.
        assert days == {r.key: r.values["cost"] for r in table.lines if r.key[0] != NO_TELEMETRY}

    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
    def test_shares_add_up_to_the_cost_on_every_row(self, seed: int, currency: str) -> None:
        report = make_report(seed=seed, currencies=(currency,), groups=40)
        (table,) = rounding.tables(report)
        unit = Decimal(1).scaleb(-{"USD": 2, "JPY": 0, "KWD": 3}[currency])
        for r in [*table.lines, table.total]:
            v = r.values
            assert v["billed"] + v["estimated"] + v["onprem"] == v["cost"], r.key
            shares = v["utilized"] + v["idle"] + v["unused"] + v["unmeasured"]
            if r.key and r.key[0] == NO_TELEMETRY:
                assert shares == 0
            elif r.key:
                assert shares == v["cost"], r.key
            for column in MONEY_FIELDS:
                assert abs(v[column] - getattr(r.exact, column)) < unit, (r.key, column)
        nt = next(r for r in table.lines if r.key[0] == NO_TELEMETRY)
        shares = sum(
            (table.total.values[c] for c in ("utilized", "idle", "unused", "unmeasured")),
            Decimal(0),
        )
        assert shares + nt.values["cost"] == table.total.values["cost"]

    def test_column_rounding_alone_would_break_rows(self) -> None:
        # Some row of the sample loses a unit when each column is rounded on its own.
        broken = 0
        for seed in SEEDS:
            report = make_report(seed=seed, groups=40)
            columns = {c: round_parts([getattr(x.amounts, c) for x in report.lines], "USD")
                       for c in ("cost", "billed", "estimated", "onprem")}  # fmt: skip
            broken += any(
                b + e + o != c
                for c, b, e, o in zip(
                    *(columns[k] for k in ("cost", "billed", "estimated", "onprem")), strict=True
                )
            )
        assert broken > 0


class TestCsv:
    @pytest.mark.parametrize("seed", SEEDS)
    def test_rows_add_up_to_the_total_row(self, seed: int) -> None:
        report = make_report(seed=seed, currencies=("USD", "JPY"), group_by=("team", "project"))
        _header, rows = _parse_csv(render.to_csv(report))
        for cur in ("USD", "JPY"):
            lines = [r for r in rows if r["currency"] == cur and r["team"] != "TOTAL"]
            (total,) = [r for r in rows if r["currency"] == cur and r["team"] == "TOTAL"]
            assert len(lines) == 5
            for column in [*MONEY_FIELDS, *QUANTITIES, "previous_cost"]:
                assert sum(Decimal(r[column] or 0) for r in lines) == Decimal(total[column]), column

    def test_header_block_and_columns(self) -> None:
        text = render.to_csv(make_report(currencies=("EUR", "USD")))
        header, rows = _parse_csv(text)
        assert text.startswith("# period,2026-11\n")
        keys = dict(header)
        assert keys["from"] == "2026-11-01T00:00:00-04:00"
        assert keys["to"] == "2026-12-01T00:00:00-05:00"
        assert keys["tz"] == "America/New_York"
        assert keys["currency"] == "EUR,USD"
        assert keys["generated"] == GENERATED.isoformat()
        assert keys["unpriced"] == "1 node(s), 48.00 GPU-h without a price"
        coverage = [v for k, v in header if k == "coverage"]
        assert (
            coverage[0]
            == "EUR: 97.50% of the bills' GPU spend is observed by telemetry (975.00 of 1000.00)"
        )
        assert list(rows[0]) == [
            "team", "currency", "gpu_hours", "cost", "billed", "estimated", "onprem",
            "unpriced_gpu_hours", "utilized", "idle", "unused", "unmeasured", "energy_kwh",
            "energy_cost",
            "efficiency_pct", "previous_cost", "change_pct",
        ]  # fmt: skip
        assert [r["team"] for r in rows].count("TOTAL") == 2
        assert NO_TELEMETRY in [r["team"] for r in rows]

    @pytest.mark.parametrize("seed", SEEDS)
    def test_unmeasured_column_rows_add_up(self, seed: int) -> None:
        """Cost without a utilization reading is its own column: per row the four shares add
        up to the cost, the rows add up to the TOTAL row, and efficiency leaves it out."""
        report = make_report(seed=seed, groups=12)
        _header, rows = _parse_csv(render.to_csv(report))
        lines = [r for r in rows if r["team"] != "TOTAL"]
        (total,) = [r for r in rows if r["team"] == "TOTAL"]
        assert sum(Decimal(r["unmeasured"]) for r in lines) == Decimal(total["unmeasured"])
        for r in lines:
            shares = [Decimal(r[c]) for c in ("utilized", "idle", "unused", "unmeasured")]
            if r["team"] != NO_TELEMETRY:
                assert sum(shares) == Decimal(r["cost"]), r["team"]
        exact = {line.key[0]: line.amounts for line in report.lines}
        for r in lines:
            a = exact[r["team"]]
            if a.cost == a.unmeasured:
                assert r["efficiency_pct"] == ""  # nothing measured: no efficiency
            else:
                expected = a.utilized / (a.cost - a.unmeasured) * 100
                assert Decimal(r["efficiency_pct"]) == expected.quantize(Decimal("0.01"))

    def test_a_group_with_no_reading_has_no_efficiency(self) -> None:
        reports = [make_report(seed=seed, groups=12) for seed in SEEDS]
        lines = [x for r in reports for x in r.lines if x.amounts.cost > 0]
        unmeasured = [x for x in lines if x.amounts.unmeasured == x.amounts.cost]
        assert unmeasured  # the sample has such groups
        assert all(x.amounts.efficiency is None for x in unmeasured)

    def test_minor_units(self) -> None:
        for cur, digits in (("USD", 2), ("JPY", 0), ("KWD", 3)):
            _header, rows = _parse_csv(render.to_csv(make_report(currencies=(cur,))))
            for r in rows:
                for column in MONEY_FIELDS:
                    assert _digits(r[column]) == digits, (cur, column, r[column])
                assert _digits(r["gpu_hours"]) == 2
                assert _digits(r["energy_kwh"]) == 3
        _header, rows = _parse_csv(render.to_csv(make_report(currencies=("JPY",))))
        assert all("." not in r["cost"] for r in rows)

    def test_efficiency_and_change_are_percent(self) -> None:
        report = make_report()
        _header, rows = _parse_csv(render.to_csv(report))
        line = next(x for x in report.lines if x.amounts.efficiency is not None)
        row = next(r for r in rows if r["team"] == line.key[0])
        assert line.amounts.efficiency is not None
        assert Decimal(row["efficiency_pct"]) == (line.amounts.efficiency * 100).quantize(
            Decimal("0.01")
        )
        no_previous = next(r for r in rows if r["team"] == "team-0")
        assert (no_previous["previous_cost"], no_previous["change_pct"]) == ("", "")

    def test_empty_report(self) -> None:
        report = make_report(groups=0)
        header, rows = _parse_csv(render.to_csv(report))
        assert rows == []
        assert dict(header)["currency"] == ""


def _table(ws: Worksheet) -> tuple[list[str], list[dict[str, object]]]:
    """The table under the header block: its column names and rows."""
    all_rows = list(ws.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(all_rows) if not any(r))  # the blank row
    names = [str(c) for c in all_rows[start + 1]]
    return names, [dict(zip(names, r, strict=False)) for r in all_rows[start + 2 :]]


def _dec(value: object) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


class TestXlsx:
    def _book(self, report: SpendReport) -> Workbook:
        return load_workbook(io.BytesIO(render.to_xlsx(report)))

    def test_sheets_and_header_blocks(self) -> None:
        wb = self._book(make_report())
        assert wb.sheetnames == ["Summary", "Daily", "Top idle owners", "Coverage", "Unpriced"]
        for ws in wb.worksheets:
            block = {r[0]: r[1] for r in ws.iter_rows(max_col=2, values_only=True) if r[0]}
            assert block["period"] == "2026-11"
            assert block["currency"] == "USD"
            assert block["generated"] == GENERATED.isoformat()
            assert str(block["coverage"]).startswith("USD: 97.50%")

    @pytest.mark.parametrize("seed", SEEDS)
    def test_summary_and_daily_add_up(self, seed: int) -> None:
        report = make_report(seed=seed, currencies=("USD", "JPY"))
        wb = self._book(report)
        _names, rows = _table(wb["Summary"])
        costs: dict[tuple[str, str], Decimal] = {}
        for cur in ("USD", "JPY"):
            lines = [r for r in rows if r["Currency"] == cur and r["team"] != "TOTAL"]
            (total,) = [r for r in rows if r["Currency"] == cur and r["team"] == "TOTAL"]
            for column in ("Cost", "Billed", "Estimated", "On-prem", "Utilized", "Idle", "Unused",
                           "Unmeasured", "Energy cost", "GPU-hours", "Energy (kWh)"):  # fmt: skip
                assert sum(_dec(r[column]) for r in lines) == _dec(total[column]), column
            costs |= {(str(r["team"]), cur): _dec(r["Cost"]) for r in lines}
        _names, days = _table(wb["Daily"])
        by_group: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for d in days:
            if d["Day"] != "TOTAL":
                assert isinstance(d["Day"], datetime)
                by_group[(str(d["team"]), str(d["Currency"]))] += _dec(d["Cost"])
        assert by_group == {k: v for k, v in costs.items() if k[0] != NO_TELEMETRY}

    def test_numbers_are_typed_with_the_minor_unit_format(self) -> None:
        wb = self._book(make_report(currencies=("JPY", "USD")))
        ws = wb["Summary"]
        names, _rows = _table(ws)
        header_row = next(c.row for c in ws["A"] if c.value == "team")
        seen = set()
        for row in ws.iter_rows(min_row=header_row + 1):
            cells = dict(zip(names, row, strict=False))
            cur = cells["Currency"].value
            for column in ("Cost", "Billed", "Idle", "Unmeasured", "GPU-hours", "Efficiency"):
                cell = cells[column]
                assert cell.data_type == "n", (column, cell.value)
                assert not isinstance(cell.value, str)
            assert cells["Cost"].number_format == ("#,##0" if cur == "JPY" else "#,##0.00")
            assert cells["Unmeasured"].number_format == cells["Cost"].number_format
            assert cells["GPU-hours"].number_format == "#,##0.00"
            # No efficiency where nothing was measured: an empty cell, not 0 %.
            efficiency = cells["Efficiency"]
            assert efficiency.number_format == ("General" if efficiency.value is None else "0.00%")
            seen.add(cur)
            if cur == "JPY":
                assert float(str(cells["Cost"].value)).is_integer()
        assert seen == {"JPY", "USD"}

    def test_other_views(self) -> None:
        wb = self._book(make_report())
        _n, owners = _table(wb["Top idle owners"])
        assert owners[0]["Owner"] == "job 1234"
        assert _dec(owners[0]["Idle cost"]) == Decimal("812.35")
        _n, coverage = _table(wb["Coverage"])
        row = coverage[0]
        assert (
            _dec(row["Observed"]) + _dec(row["Unobserved"])
            == _dec(row["Bill GPU total"])
            == Decimal("1000.00")
        )
        assert row["Observed share"] == pytest.approx(0.975)
        _n, unpriced = _table(wb["Unpriced"])
        assert unpriced == [
            {"Node": "gpu-node-9", "Reason": "no instance type reported", "GPU-hours": 48}
        ]

    def test_empty_report_still_opens(self) -> None:
        wb = self._book(make_report(groups=0))
        _names, rows = _table(wb["Summary"])
        assert rows == []


class TestJson:
    def test_amounts_are_rounded_text_with_the_exact_beside(self) -> None:
        report = make_report(currencies=("USD", "JPY"))
        body = json.loads(json.dumps(render.to_json(report)))
        assert body["period"] == {
            "label": "2026-11", "from": "2026-11-01T00:00:00-04:00",
            "to": "2026-12-01T00:00:00-05:00", "tz": "America/New_York",
            "previous_from": "2026-10-01T23:00:00-04:00", "previous_to": "2026-11-01T00:00:00-04:00",
        }  # fmt: skip
        assert body["currencies"] == ["JPY", "USD"]
        assert body["group_by"] == ["team"]
        assert body["generated_at"] == GENERATED.isoformat()
        exact = {(line.currency, line.key): line for line in report.lines}
        for line in body["lines"]:
            source = exact[(line["currency"], tuple(line["key"]))]
            assert line["group"] == {"team": line["key"][0]}
            assert Decimal(line["exact"]["cost"]) == source.amounts.cost
            assert _digits(line["cost"]) == (0 if line["currency"] == "JPY" else 2)
            efficiency = source.amounts.efficiency
            assert line["efficiency"] == (
                None if efficiency is None else round(float(efficiency), 4)
            )
        for cur in ("USD", "JPY"):
            lines = [x for x in body["lines"] if x["currency"] == cur]
            for column in [*MONEY_FIELDS, *QUANTITIES]:
                assert sum(Decimal(x[column]) for x in lines) == Decimal(
                    body["totals"][cur][column]
                )
            daily: dict[str, Decimal] = defaultdict(Decimal)
            for d in body["daily"]:
                if d["currency"] == cur:
                    daily[d["key"][0]] += Decimal(d["cost"])
            assert daily == {
                x["key"][0]: Decimal(x["cost"]) for x in lines if x["key"][0] != NO_TELEMETRY
            }

    def test_change_previous_and_notes(self) -> None:
        report = make_report()
        body = render.to_json(report)
        first = next(x for x in body["lines"] if x["key"] == ["team-0"])
        assert (first["previous_cost"], first["change"], first["exact"]["previous_cost"]) == (
            None,
            None,
            None,
        )
        other = next(x for x in body["lines"] if x["key"] == ["team-1"])
        source = next(line for line in report.lines if line.key == ("team-1",))
        assert source.change is not None
        assert other["change"] == round(float(source.change), 4)
        assert body["coverage"] == [{
            "currency": "USD", "bill_gpu_total": "1000.00", "observed": "975.00",
            "unobserved": "25.00", "observed_share": 0.975,
        }]  # fmt: skip
        assert body["unpriced_nodes"] == [
            {"node": "gpu-node-9", "reason": "no instance type reported", "gpu_hours": "48.00"}
        ]
        assert body["top_idle_owners"][0] == {
            "owner": "job 1234", "team": "team-1", "currency": "USD", "idle_cost": "812.35",
            "gpu_hours": "96.50",
        }  # fmt: skip
        assert body["daily"][0]["day"] == "2026-11-01"

    def test_a_total_without_lines_or_previous(self) -> None:
        report = SpendReport(
            start=datetime(2026, 11, 1, tzinfo=GENERATED.tzinfo), end=GENERATED, tz="UTC",
            label="x", group_by=("node",), generated_at=GENERATED,
            previous_start=GENERATED, previous_end=GENERATED, lines=[],
            totals={"USD": Amounts(cost=Decimal("1.005"))},
        )  # fmt: skip
        body = render.to_json(report)
        assert body["totals"]["USD"]["cost"] == "1.00"
        assert body["totals"]["USD"]["previous_cost"] is None
        assert body["totals"]["USD"]["efficiency"] == 0.0


def test_file_names() -> None:
    assert render.file_name(make_report(), "csv") == "gpu-spend-2026-11-team.csv"
    report = make_report(label="2026-12 to date", group_by=("team", "project"))
    assert render.file_name(report, "xlsx") == "gpu-spend-2026-12-to-date-team-project.xlsx"


def test_days_are_dates() -> None:
    (table,) = rounding.tables(make_report())
    assert all(isinstance(d.day, date) for d, _ in table.daily)


def test_names_that_look_like_formulas_stay_text() -> None:
    """A team, owner or node called "=HYPERLINK(...)" must not run in a spreadsheet."""
    import csv
    import dataclasses
    import io

    import openpyxl

    from app.reports.render import to_csv, to_xlsx
    from tests.app.reports.sample import make_report

    report = make_report(groups=3)
    evil = '=HYPERLINK("http://x","click")'
    lines = [dataclasses.replace(line, key=(evil,)) if i == 0 else line
             for i, line in enumerate(report.lines)]  # fmt: skip
    report = dataclasses.replace(report, lines=lines)
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert ["'" + evil] in [r[:1] for r in rows]
    assert [evil] not in [r[:1] for r in rows]
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(report)))
    values = [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert "'" + evil in values
    assert evil not in values
