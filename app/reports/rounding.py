"""The spend report rounded for people: every column, every row and every day adds up.

Each column is rounded to the currency's minor unit with the largest-remainder method
(``app.kit.money.round_parts``), so the lines of a currency add up to its rounded total. Rounding
columns one by one would leave lines whose billed + estimated + on-prem (or utilized + idle +
unused + unmeasured) is a cent off their cost, so those shares are rounded per line instead, to
the line's rounded cost, and ``_balance`` then moves single units between lines within a share
until the share's sum is the total's rounding (controlled rounding, Cox 1987). Every amount stays
within one unit of its exact value; the total row shows the sums of the lines. A group's rounded
days add up to its rounded cost.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from app.kit.money import quantum, round_money, round_parts
from app.reports.types import MONEY_FIELDS, Amounts, DailyCost, SpendReport

COLUMNS = ("gpu_hours", "cost", "billed", "estimated", "onprem", "unpriced_gpu_hours",
           "utilized", "idle", "unused", "unmeasured", "energy_kwh", "energy_cost")  # fmt: skip
SPLITS = (("billed", "estimated", "onprem"), ("utilized", "idle", "unused", "unmeasured"))  # = cost
QUANTITY_DIGITS = {"gpu_hours": 2, "unpriced_gpu_hours": 2, "energy_kwh": 3}
_WHOLE_UNITS = "JPY"  # ISO 4217 gives the yen no minor unit: round_parts rounds to integers


@dataclass(frozen=True)
class Row:
    """One line of a table (or its total, ``key == ()``), rounded, with its exact amounts."""

    key: tuple[str, ...]
    currency: str
    values: dict[str, Decimal]  # COLUMNS, rounded
    exact: Amounts
    previous_cost: Decimal | None  # rounded
    exact_previous: Decimal | None

    @property
    def efficiency(self) -> Decimal | None:
        return self.exact.efficiency

    @property
    def change(self) -> Decimal | None:
        if not self.exact_previous:
            return None
        return (self.exact.cost - self.exact_previous) / self.exact_previous


@dataclass(frozen=True)
class CurrencyTable:
    currency: str
    lines: list[Row]
    total: Row
    daily: list[tuple[DailyCost, Decimal]]  # (rounded day, exact cost), by line then by day


def _round_quantities(parts: Sequence[Decimal], digits: int, total: Decimal) -> list[Decimal]:
    scaled = round_parts([p.scaleb(digits) for p in parts], _WHOLE_UNITS, total.scaleb(digits))
    return [p.scaleb(-digits) for p in scaled]


def _floor(x: Decimal, q: Decimal) -> Decimal:
    return (x / q).to_integral_value(rounding=ROUND_FLOOR) * q


def _move_unit(
    exact: list[list[Decimal]], rounded: list[list[Decimal]], q: Decimal,
    sources: list[int], sinks: set[int],
) -> bool:  # fmt: skip
    """Move one unit from a source row to a sink row along a shortest path row -> column ->
    row ...: each row on it gives a unit in one column and the next row takes it in the same
    column, so column sums never change and every cell stays at the floor or ceiling of its exact
    value. False when no such path exists."""
    width = len(rounded[0]) if rounded else 0
    came_from: dict[int, tuple[int, int]] = {}  # row -> (the row it took from, column)
    queue, seen_rows, seen_columns = deque(sources), set(sources), set()
    while queue:
        i = queue.popleft()
        for j in range(width):
            if j in seen_columns or rounded[i][j] <= _floor(exact[i][j], q):
                continue  # the cell cannot give: it is already at its floor
            seen_columns.add(j)
            for k in range(len(rounded)):
                if (
                    k in seen_rows
                    or rounded[k][j] != _floor(exact[k][j], q)
                    or exact[k][j] == rounded[k][j]
                ):
                    continue  # the cell cannot take: at its ceiling, or exact
                seen_rows.add(k)
                came_from[k] = (i, j)
                queue.append(k)
                if k in sinks:
                    while k in came_from:
                        i, j = came_from[k]
                        rounded[k][j] += q
                        rounded[i][j] -= q
                        k = i
                    return True
    return False


def _balance(
    exact: list[list[Decimal]], rounded: list[list[Decimal]], q: Decimal,
    low: list[Decimal], high: list[Decimal],
) -> None:  # fmt: skip
    """Move units within columns of ``rounded`` until each row's sum is within [low, high],
    as far as cells that stay within a unit of their exact values allow."""
    rows = range(len(rounded))
    while True:  # rows above their high bound give to rows below it
        sums = [sum(row, Decimal(0)) for row in rounded]
        sources = [i for i in rows if sums[i] > high[i]]
        if not sources or not _move_unit(
            exact, rounded, q, sources, {i for i in rows if sums[i] < high[i]}
        ):
            break
    while True:  # rows below their low bound take from rows above it
        sums = [sum(row, Decimal(0)) for row in rounded]
        sinks = {i for i in rows if sums[i] < low[i]}
        if not sinks or not _move_unit(
            exact, rounded, q, [i for i in rows if sums[i] > low[i]], sinks
        ):
            break


def _transpose(grid: list[list[Decimal]]) -> list[list[Decimal]]:
    return [list(col) for col in zip(*grid, strict=True)]


def _round_split(
    split: tuple[str, ...], lines: list[Amounts], total: Amounts, costs: list[Decimal], cur: str
) -> tuple[list[list[Decimal]], list[Decimal]]:
    """The shares of ``split`` per line, adding up to each line's rounded cost, and their sums.

    A hidden residual share (cost minus the shares: zero where they add up, the whole cost of a
    line without shares such as the bill-only one) keeps every line consistent. Each line is
    rounded on its own first; units then move between lines within a share until the shares'
    sums are the largest-remainder rounding of the total's shares.
    """

    def parts(a: Amounts) -> list[Decimal]:
        shares = [getattr(a, c) for c in split]
        return [*shares, a.cost - sum(shares, Decimal(0))]

    targets = round_parts(parts(total), cur, total.cost)
    if not lines:
        return [], targets[:-1]
    q = quantum(cur)
    exact = _transpose([parts(a) for a in lines])
    by_share = _transpose(
        [round_parts(p, cur, c) for p, c in zip(_transpose(exact), costs, strict=True)]
    )
    _balance(exact, by_share, q, targets, targets)
    # Where the total's rounding cannot be met, each share's sum stays within a unit of exact.
    sums = [sum(share, Decimal(0)) for share in exact]
    _balance(exact, by_share, q, [_floor(x, q) for x in sums], [-_floor(-x, q) for x in sums])
    sums = [sum(share, Decimal(0)) for share in by_share]
    return [row[:-1] for row in _transpose(by_share)], sums[:-1]


def _round_lines(
    lines: list[Amounts], total: Amounts, cur: str
) -> tuple[list[dict[str, Decimal]], dict[str, Decimal]]:
    values: list[dict[str, Decimal]] = [{} for _ in lines]
    total_values: dict[str, Decimal] = {}
    for column in COLUMNS:
        parts = [getattr(a, column) for a in lines]
        exact = getattr(total, column)
        if column in MONEY_FIELDS:
            total_values[column] = round_money(exact, cur)
            rounded = round_parts(parts, cur, exact)
        else:
            digits = QUANTITY_DIGITS[column]
            total_values[column] = _round_quantities([exact], digits, exact)[0]
            rounded = _round_quantities(parts, digits, exact)
        for v, r in zip(values, rounded, strict=True):
            v[column] = r
    costs = [v["cost"] for v in values]
    for split in SPLITS:
        grid, total_shares = _round_split(split, lines, total, costs, cur)
        total_values |= dict(zip(split, total_shares, strict=True))
        for v, row in zip(values, grid, strict=True):
            v |= dict(zip(split, row, strict=True))
    return values, total_values


def tables(report: SpendReport) -> list[CurrencyTable]:
    """The report's lines per currency, rounded so that columns, rows and days add up."""
    out = []
    for cur in report.currencies:
        lines = [line for line in report.lines if line.currency == cur]
        values, total_values = _round_lines(
            [line.amounts for line in lines], report.totals[cur], cur
        )
        with_previous = [i for i, line in enumerate(lines) if line.previous_cost is not None]
        previous_exact = [lines[i].previous_cost or Decimal(0) for i in with_previous]
        previous_sum = sum(previous_exact, Decimal(0))
        previous: list[Decimal | None] = [None] * len(lines)
        for i, r in zip(with_previous, round_parts(previous_exact, cur, previous_sum), strict=True):
            previous[i] = r
        rows = [
            Row(line.key, cur, v, line.amounts, p, line.previous_cost)
            for line, v, p in zip(lines, values, previous, strict=True)
        ]
        total = Row(
            (), cur, total_values, report.totals[cur],
            round_money(previous_sum, cur) if with_previous else None,
            previous_sum if with_previous else None,
        )  # fmt: skip
        out.append(CurrencyTable(cur, rows, total, _daily(report, cur, rows)))
    return out


def _daily(report: SpendReport, cur: str, rows: list[Row]) -> list[tuple[DailyCost, Decimal]]:
    by_key: dict[tuple[str, ...], list[DailyCost]] = defaultdict(list)
    for d in report.daily:
        if d.currency == cur:
            by_key[d.key].append(d)
    out: list[tuple[DailyCost, Decimal]] = []
    shown = {row.key: row.values["cost"] for row in rows}
    for key in [row.key for row in rows] + sorted(k for k in by_key if k not in shown):
        days = sorted(by_key.get(key, []), key=lambda d: d.day)
        # The days add up to the cost shown for the group (its largest-remainder rounding).
        rounded = round_parts([d.cost for d in days], cur, shown.get(key))
        out.extend(
            (DailyCost(d.day, key, cur, r), d.cost) for d, r in zip(days, rounded, strict=True)
        )
    return out
