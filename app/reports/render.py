"""The spend report as JSON, CSV and XLSX, rounded so that every table adds up to its total.

Amounts stay exact inside the report; ``app.reports.rounding`` rounds them to the currency's
minor unit so that lines add up to totals, shares to costs and days to their group's cost. JSON
also carries the exact text of every amount, for reconciliation against the bills.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter

from app.kit.csvsafe import safe_cell
from app.kit.money import minor_unit, round_money, round_parts
from app.reports.rounding import COLUMNS, QUANTITY_DIGITS, CurrencyTable, Row, tables
from app.reports.types import MONEY_FIELDS, SpendReport

TOTAL = "TOTAL"
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_RATIO = Decimal("0.0001")
_HOURS = Decimal("0.01")


def _text(value: Decimal) -> str:
    return format(value, "f")


def _ratio(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(_RATIO))


def _percent(value: Decimal | None) -> str:
    return "" if value is None else _text((value * 100).quantize(Decimal("0.01")))


def _local(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).isoformat()


def _group(report: SpendReport, key: tuple[str, ...]) -> dict[str, str]:
    padded = key + ("",) * (len(report.group_by) - len(key))
    return dict(zip(report.group_by, padded, strict=False))


def coverage_notes(report: SpendReport) -> list[str]:
    """One sentence per currency: how much of the bills' GPU spend the telemetry observes."""
    notes = []
    for c in report.coverage:
        share = c.observed_share
        if share is None:
            notes.append(f"{c.currency}: no GPU spend on the bills in this period")
            continue
        notes.append(
            f"{c.currency}: {share:.2%} of the bills' GPU spend is observed by telemetry "
            f"({_text(round_money(c.observed, c.currency))} of "
            f"{_text(round_money(c.bill_gpu_total, c.currency))})"
        )
    return notes


def header(report: SpendReport) -> list[tuple[str, str]]:
    """The key facts that head every export: period, currency, generation time, coverage."""
    rows = [
        ("period", report.label),
        ("from", _local(report.start, report.tz)),
        ("to", _local(report.end, report.tz)),
        ("tz", report.tz),
        ("group_by", ",".join(report.group_by)),
        ("currency", ",".join(report.currencies)),
        ("generated", report.generated_at.astimezone(ZoneInfo("UTC")).isoformat()),
    ]
    rows += [("coverage", note) for note in coverage_notes(report) or ["no bills in this period"]]
    if report.unpriced_nodes:
        hours = sum((n.gpu_hours for n in report.unpriced_nodes), Decimal(0))
        rows.append(("unpriced", f"{len(report.unpriced_nodes)} node(s), "
                                 f"{_text(hours.quantize(Decimal('0.01')))} GPU-h without a price"))  # fmt: skip
    rows += [(f"estimated {n.node}", f"list price x {n.basis}") for n in report.estimated_nodes]
    return rows


def file_name(report: SpendReport, fmt: str) -> str:
    """``gpu-spend-2026-11-team.csv``: period and grouping, safe in any file system."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", report.label).strip("-").lower() or "period"
    return f"gpu-spend-{slug}-{'-'.join(report.group_by)}.{fmt}"


# JSON -------------------------------------------------------------------------------------------


def _row_json(report: SpendReport, row: Row) -> dict[str, Any]:
    exact: dict[str, str | None] = {c: _text(getattr(row.exact, c)) for c in COLUMNS}
    exact["previous_cost"] = None if row.exact_previous is None else _text(row.exact_previous)
    return {
        **({"group": _group(report, row.key), "key": list(row.key)} if row.key else {}),
        "currency": row.currency,
        **{c: _text(row.values[c]) for c in COLUMNS},
        "efficiency": _ratio(row.efficiency),
        "previous_cost": None if row.previous_cost is None else _text(row.previous_cost),
        "change": _ratio(row.change),
        "exact": exact,
    }


def to_json(report: SpendReport) -> dict[str, Any]:
    """The report as a JSON-ready dict: rounded amounts as strings, exact ones under ``exact``."""
    views = tables(report)
    return {
        "period": {
            "label": report.label,
            "from": _local(report.start, report.tz),
            "to": _local(report.end, report.tz),
            "tz": report.tz,
            "previous_from": _local(report.previous_start, report.tz),
            "previous_to": _local(report.previous_end, report.tz),
        },
        "group_by": list(report.group_by),
        "currencies": report.currencies,
        "generated_at": report.generated_at.isoformat(),
        "lines": [_row_json(report, row) for t in views for row in t.lines],
        "totals": {t.currency: _row_json(report, t.total) for t in views},
        "daily": [
            {
                "day": d.day.isoformat(),
                "group": _group(report, d.key),
                "key": list(d.key),
                "currency": d.currency,
                "cost": _text(d.cost),
                "exact": _text(exact),
            }
            for t in views
            for d, exact in t.daily
        ],
        "coverage": [
            {
                "currency": c.currency,
                "bill_gpu_total": _text(round_money(c.bill_gpu_total, c.currency)),
                "observed": _text(round_money(c.observed, c.currency)),
                "unobserved": _text(round_money(c.unobserved, c.currency)),
                "observed_share": _ratio(c.observed_share),
            }
            for c in report.coverage
        ],
        "unpriced_nodes": [
            {"node": n.node, "reason": n.reason, "gpu_hours": _text(n.gpu_hours.quantize(_HOURS))}
            for n in report.unpriced_nodes
        ],
        "estimated_nodes": [
            {"node": n.node, "ratio": n.basis, "gpu_hours": _text(n.gpu_hours.quantize(_HOURS))}
            for n in report.estimated_nodes
        ],
        "top_idle_owners": [
            {
                "owner": o.owner,
                "team": o.team,
                "currency": o.currency,
                "idle_cost": _text(round_money(o.idle_cost, o.currency)),
                "gpu_hours": _text(o.gpu_hours.quantize(_HOURS)),
            }
            for o in report.top_idle_owners
        ],
    }


# CSV --------------------------------------------------------------------------------------------

CSV_COLUMNS = ("currency", *COLUMNS, "efficiency_pct", "previous_cost", "change_pct")


def _row_cells(row: Row) -> list[str]:
    return [
        row.currency,
        *(_text(row.values[c]) for c in COLUMNS),
        _percent(row.efficiency),
        "" if row.previous_cost is None else _text(row.previous_cost),
        _percent(row.change),
    ]


def to_csv(report: SpendReport) -> str:
    """``# key,value`` header lines, a row per line, then a TOTAL row per currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for key, value in header(report):
        writer.writerow([f"# {key}", safe_cell(value)])
    writer.writerow([*report.group_by, *CSV_COLUMNS])
    blank = [""] * (len(report.group_by) - 1)
    for t in tables(report):
        for row in t.lines:
            names = [safe_cell(v) for v in _group(report, row.key).values()]
            writer.writerow([*names, *_row_cells(row)])
        writer.writerow([TOTAL, *blank, *_row_cells(t.total)])
    return out.getvalue()


# XLSX -------------------------------------------------------------------------------------------

_TITLES = {"gpu_hours": "GPU-hours", "cost": "Cost", "billed": "Billed", "estimated": "Estimated",
           "onprem": "On-prem", "unpriced_gpu_hours": "Unpriced GPU-hours", "utilized": "Utilized",
           "idle": "Idle", "unused": "Unused", "unmeasured": "Unmeasured",
           "energy_kwh": "Energy (kWh)",
           "energy_cost": "Energy cost"}  # fmt: skip


def _money_format(currency: str) -> str:
    digits = minor_unit(currency)
    return "#,##0" + ("." + "0" * digits if digits else "")


def _quantity_format(digits: int) -> str:
    return "#,##0." + "0" * digits


_PERCENT = "0.00%"


class _Sheet:
    """A write-only worksheet (streamed: fast for long tables) with the report's header block
    above one table."""

    def __init__(
        self, wb: Workbook, title: str, report: SpendReport, columns: Sequence[str]
    ) -> None:
        self.ws = wb.create_sheet(title)
        for i, name in enumerate(columns, start=1):
            self.ws.column_dimensions[get_column_letter(i)].width = max(12, len(name) + 2)
        self.ws.column_dimensions["B"].width = max(self.ws.column_dimensions["B"].width or 0, 16)
        head = header(report)
        self.ws.freeze_panes = f"A{len(head) + 3}"  # below the header block, a blank, the names
        for key, value in head:
            self.ws.append([key, safe_cell(value)])
        self.ws.append([])
        self.ws.append(list(columns))

    def append(self, values: Sequence[Any], formats: Sequence[str | None]) -> None:
        row = []
        for value, fmt in zip(values, formats, strict=True):
            # Text is never a formula: a group, owner or node named "=..." stays text.
            cell = WriteOnlyCell(self.ws, value=safe_cell(value))
            if fmt is not None and value is not None:
                cell.number_format = fmt
            row.append(cell)
        self.ws.append(row)


def _summary(wb: Workbook, report: SpendReport, views: list[CurrencyTable]) -> None:
    groups = list(report.group_by)
    columns = [*groups, "Currency", *(_TITLES[c] for c in COLUMNS), "Efficiency",
               "Previous cost", "Change"]  # fmt: skip
    sheet = _Sheet(wb, "Summary", report, columns)
    for t in views:
        money = _money_format(t.currency)
        formats = [None] * (len(groups) + 1) + [
            money if c in MONEY_FIELDS else _quantity_format(QUANTITY_DIGITS[c]) for c in COLUMNS
        ] + [_PERCENT, money, _PERCENT]  # fmt: skip
        for row in [*t.lines, t.total]:
            names = (
                list(_group(report, row.key).values())
                if row.key
                else [TOTAL] + [""] * (len(groups) - 1)
            )
            sheet.append(
                [*names, row.currency, *(row.values[c] for c in COLUMNS),
                 _ratio(row.efficiency), row.previous_cost, _ratio(row.change)],
                formats,
            )  # fmt: skip


def _daily_sheet(wb: Workbook, report: SpendReport, views: list[CurrencyTable]) -> None:
    groups = list(report.group_by)
    sheet = _Sheet(wb, "Daily", report, ["Day", *groups, "Currency", "Cost"])
    for t in views:
        formats = ["yyyy-mm-dd", *([None] * (len(groups) + 1)), _money_format(t.currency)]
        for d, _exact in t.daily:
            sheet.append([d.day, *_group(report, d.key).values(), d.currency, d.cost], formats)
        day_total = sum((d.cost for d, _ in t.daily), Decimal(0))
        sheet.append([TOTAL, *([""] * len(groups)), t.currency, day_total], formats)


def to_xlsx(report: SpendReport) -> bytes:
    """A workbook with one sheet per view, numbers as typed cells in the currency's format."""
    views = tables(report)
    wb = Workbook(write_only=True)
    _summary(wb, report, views)
    _daily_sheet(wb, report, views)
    owners = _Sheet(wb, "Top idle owners", report,
                    ["Owner", "Team", "Currency", "Idle cost", "GPU-hours"])  # fmt: skip
    for o in report.top_idle_owners:
        owners.append(
            [o.owner, o.team, o.currency, round_money(o.idle_cost, o.currency),
             o.gpu_hours.quantize(_HOURS)],
            [None, None, None, _money_format(o.currency), _quantity_format(2)],
        )  # fmt: skip
    coverage = _Sheet(wb, "Coverage", report,
                      ["Currency", "Bill GPU total", "Observed", "Unobserved", "Observed share"])  # fmt: skip
    for c in report.coverage:
        observed, unobserved = round_parts([c.observed, c.unobserved], c.currency, c.bill_gpu_total)
        money = _money_format(c.currency)
        coverage.append(
            [c.currency, round_money(c.bill_gpu_total, c.currency), observed, unobserved,
             _ratio(c.observed_share)],
            [None, money, money, money, _PERCENT],
        )  # fmt: skip
    unpriced = _Sheet(wb, "Unpriced", report, ["Node", "Reason", "GPU-hours"])
    for n in report.unpriced_nodes:
        unpriced.append([n.node, n.reason, n.gpu_hours.quantize(_HOURS)],
                        [None, None, _quantity_format(2)])  # fmt: skip
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
