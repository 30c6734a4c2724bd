"""What a normalized bill row is: its columns, errors that name a row, and chunks of rows.

``LineItems`` holds one chunk of normalized rows as typed columns (``LINE_SCHEMA``, FOCUS names
and ``x_`` columns) and hands out figures for the service and bulk rows for the repository (CSV
for COPY, tuples for SQLite), never frames. ``map_values`` is how every per-value rule runs:
once per distinct value of a chunk, not once per row.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

MAX_REPORTED_ERRORS = 20

# Normalized columns, in ``billing_line_items`` order after the import's own prefix columns.
MONEY = pa.decimal128(38, 18)
_WIDE = pa.decimal256(60, 18)  # sums of two MONEY values before the cast back
TIME = pa.timestamp("us", "UTC")
STRING = pa.string()
LINE_SCHEMA = pa.schema([
    ("row_number", pa.int64()), ("billing_account_id", pa.string()),
    ("sub_account_id", pa.string()), ("billing_period_start", TIME),
    ("billing_period_end", TIME), ("charge_period_start", TIME), ("charge_period_end", TIME),
    ("charge_category", pa.string()), ("charge_description", pa.string()),
    ("billed_cost", MONEY), ("effective_cost", MONEY), ("list_cost", MONEY),
    ("contracted_cost", MONEY), ("billing_currency", pa.string()), ("pricing_quantity", MONEY),
    ("pricing_unit", pa.string()),
    ("provider_name", pa.string()), ("service_name", pa.string()), ("region_id", pa.string()),
    ("resource_id", pa.string()), ("sku_id", pa.string()), ("tags", pa.string()),
    ("x_resource_key", pa.string()), ("x_instance_type", pa.string()),
    ("x_gpu_model", pa.string()), ("x_gpu_count", pa.int32()), ("x_cost_component", pa.string()),
])  # fmt: skip
FIELDS: tuple[str, ...] = tuple(LINE_SCHEMA.names)
COST_TOTALS = {"billed_cost": "BilledCost", "effective_cost": "EffectiveCost",
               "list_cost": "ListCost", "contracted_cost": "ContractedCost"}  # fmt: skip


@dataclass(frozen=True)
class RowError:
    row: int | None  # 1-based data row (the header is not counted); None for the whole file
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


class BillingFileError(Exception):
    """The file is rejected whole; ``errors`` holds the first few, ``error_count`` all."""

    def __init__(self, file_name: str, errors: list[RowError], error_count: int) -> None:
        self.file_name = file_name
        self.errors = errors
        self.error_count = error_count
        first = "; ".join(_describe(e) for e in errors[:3])
        more = f" (and {error_count - 3} more)" if error_count > 3 else ""
        super().__init__(f"{file_name}: {error_count} error(s): {first}{more}")


def _describe(e: RowError) -> str:
    where = f"row {e.row}" if e.row is not None else "file"
    return f"{where}, column {e.column}: {e.message}" if e.column else f"{where}: {e.message}"


@dataclass
class _Errors:
    items: list[RowError] = field(default_factory=list)
    count: int = 0

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(RowError(row, column, message))


_SEP, _NULL = "\x1f", "\x00"  # joins several columns into one key for map_values


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def map_values(fn: Callable[..., Any], type: pa.DataType, *arrays: pa.Array) -> pa.Array:
    """``fn`` over the distinct value tuples of ``arrays`` only (bills repeat a few values a lot)."""
    if len(arrays) == 1:
        encoded = pc.dictionary_encode(_plain(arrays[0]))
        keys: list[tuple[Any, ...]] = [(v,) for v in encoded.dictionary.to_pylist()]
    else:
        joined = pc.binary_join_element_wise(
            *(pc.cast(_plain(a), pa.string()) for a in arrays), _SEP,
            null_handling="replace", null_replacement=_NULL,
        )  # fmt: skip
        encoded = pc.dictionary_encode(joined)
        keys = [tuple(None if p == _NULL else p for p in v.split(_SEP))
                for v in encoded.dictionary.to_pylist()]  # fmt: skip
    values = [fn(*k) for k in keys]
    values.append(fn(*([None] * len(arrays))))  # where the value is null
    indices = pc.fill_null(encoded.indices, len(keys))
    return pc.take(pa.array(values, type), indices)


def money_sum(a: pa.Array, b: pa.Array, *, negate_b: bool = False) -> pa.Array:
    """a + b (or a - b) for MONEY arrays, computed wide so the precision cannot overflow."""
    op = pc.subtract if negate_b else pc.add
    return pc.cast(op(pc.cast(a, _WIDE), pc.cast(b, _WIDE)), MONEY)


# -- normalized chunks: figures for the service, bulk rows for the repository -------------------
class LineItems:
    """A chunk's normalized rows, held as typed columns; callers get Python values, never frames."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._batch = batch
        self._rates: pa.Array | None = None
        self._nodes: pa.Array | None = None

    @property
    def num_rows(self) -> int:
        return int(self._batch.num_rows)

    def currencies(self) -> list[tuple[str, int]]:
        """Distinct currencies in order of appearance, each with its first row number."""
        column = self._batch.column("billing_currency")
        rows = self._batch.column("row_number")
        return [(c, rows[pc.index(column, c).as_py()].as_py())
                for c in pc.unique(column).to_pylist()]  # fmt: skip

    def set_rates(self, rates: dict[str, Decimal]) -> None:
        """The exchange rate of each row's currency into the import's reporting currency."""
        order = list(rates)
        index = pc.index_in(self._batch.column("billing_currency"), value_set=pa.array(order))
        self._rates = pc.take(pa.array([rates[c] for c in order], MONEY), index)

    def set_nodes(self, known: dict[str, int]) -> int:
        """Each row's node (by lower-cased resource key) for the COPY; returns the matched count.

        Matching here, not by an UPDATE after the COPY, spares an index on the resource key and
        a second version of every matched row.
        """
        self._nodes = map_values(lambda k: known.get(k.lower()) if k else None, pa.int32(),
                                 self._batch.column("x_resource_key"))  # fmt: skip
        return int(len(self._nodes) - self._nodes.null_count)

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Sums per currency of the four FOCUS costs; list and contracted cost only where some
        row has one (most non-FOCUS exports have neither)."""
        table = pa.Table.from_batches([self._batch]).group_by("billing_currency")
        sums = table.aggregate([(c, op) for c in COST_TOTALS for op in ("sum", "count")])
        always = ("billed_cost", "effective_cost")
        return {r["billing_currency"]: {name: r[f"{c}_sum"] or Decimal(0)
                                        for c, name in COST_TOTALS.items()
                                        if r[f"{c}_count"] or c in always}
                for r in sums.to_pylist()}  # fmt: skip

    def scopes(self) -> set[tuple[str, datetime]]:
        """The (billing account, billing period start) pairs a correction replaces."""
        keys = ["billing_account_id", "billing_period_start"]
        table = pa.Table.from_batches([self._batch.select(keys)]).group_by(keys).aggregate([])
        return {(a, p.astimezone(UTC)) for a, p in zip(*table.to_pydict().values(), strict=True)}

    def _with_prefix(
        self, prefix: tuple[int, str, str], time_text: Callable[[Any], Any]
    ) -> pa.RecordBatch:
        """The import's columns, then the chunk's; times as text formatted once per distinct value."""
        n = self.num_rows
        rates = self._rates if self._rates is not None else pa.repeat(pa.scalar(1, MONEY), n)
        head = [pa.repeat(pa.scalar(prefix[0], pa.int64()), n),
                pa.repeat(pa.scalar(prefix[1], STRING), n),
                pa.repeat(pa.scalar(prefix[2], STRING), n), rates]  # fmt: skip
        body = [map_values(time_text, STRING, a) if a.type == TIME else a
                for a in self._batch.columns]  # fmt: skip
        nodes = self._nodes if self._nodes is not None else pa.nulls(n, pa.int32())
        return pa.RecordBatch.from_arrays([*head, *body, nodes], names=list(COLUMNS))

    def copy_csv(self, prefix: tuple[int, str, str]) -> bytes:
        """CSV for PostgreSQL ``COPY … (FORMAT csv)`` in ``COLUMNS`` order: null unquoted, text quoted."""
        out = io.BytesIO()
        batch = self._with_prefix(prefix, lambda t: t and t.isoformat(" "))
        pa_csv.write_csv(batch, out,
                         pa_csv.WriteOptions(include_header=False))  # fmt: skip
        return out.getvalue()

    def sqlite_rows(self, prefix: tuple[int, str, str]) -> list[tuple[Any, ...]]:
        """Rows for SQLite in ``COLUMNS`` order: money as plain decimal text, times naive UTC text."""
        columns: list[list[Any]] = []
        # SQLAlchemy's SQLite DateTime text: naive UTC (see app.db.UTCDateTime)
        naive = lambda t: t and t.replace(tzinfo=None).isoformat(" ", "microseconds")  # noqa: E731
        for arr in self._with_prefix(prefix, naive).columns:
            if arr.type == MONEY:
                columns.append([None if v is None else format(v, "f") for v in arr.to_pylist()])
            else:
                columns.append(arr.to_pylist())
        return list(zip(*columns, strict=True))


PREFIX_COLUMNS = ("import_id", "x_source_system", "x_dataset", "x_exchange_rate")
COLUMNS = (*PREFIX_COLUMNS, *FIELDS, "node_id")
