"""Checks and conversions of one raw chunk: the column operations the per-format rules use.

``_Batch`` wraps a chunk as the reader produced it (strings) and turns its columns into money
(exact decimals, located errors for bad cells), UTC times, ISO currencies and text that fits its
column; ``normalize`` runs the format's rules (``shapes.py``) over it and returns ``LineItems``.
Every error names the data row and the file's column.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from app.billing.formats import Format
from app.billing.rows import (
    FIELDS,
    LINE_SCHEMA,
    MONEY,
    STRING,
    TIME,
    LineItems,
    map_values,
)
from app.kit.money import ISO_4217_CODES, MONEY_PRECISION, MONEY_SCALE

if TYPE_CHECKING:
    from app.billing.importer import BillingReader

NULLS = pa.array(["", "null", "NULL", "None", "NaN"])
_TIME_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S%z", "%m/%d/%Y %H:%M:%S", "%Y%m%d")  # fmt: skip
_CURRENCIES = pa.array(sorted(ISO_4217_CODES))


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


class _Batch:
    """One raw chunk and the column operations the per-format rules (``shapes.py``) use."""

    def __init__(self, reader: BillingReader, batch: pa.RecordBatch | pa.Table, offset: int):
        self.reader = reader
        self.batch = batch
        self.offset = offset
        self.n = batch.num_rows

    def has(self, fieldname: str) -> bool:
        return fieldname in self.reader.columns

    def source(self, column: str) -> pa.Array:
        """A source column by its file name, as strings."""
        arr = _plain(self.batch.column(column))
        return arr if arr.type == pa.string() else pc.cast(arr, pa.string())

    def raw(self, fieldname: str) -> pa.Array | None:
        name = self.reader.columns.get(fieldname)
        if name is None:
            return None
        arr = self.source(name)
        return pc.if_else(pc.is_in(arr, value_set=NULLS), pa.scalar(None, pa.string()), arr)

    def text(self, fieldname: str) -> pa.Array:
        arr = self.raw(fieldname)
        return pa.nulls(self.n, pa.string()) if arr is None else arr

    def const(self, value: Any, type: pa.DataType = STRING) -> pa.Array:
        return pa.repeat(pa.scalar(value, type), self.n)

    def mapped(
        self, fieldname: str, fn: Callable[[Any], Any], type: pa.DataType = STRING
    ) -> pa.Array:
        """``fn`` over the column's distinct values only."""
        arr = self.raw(fieldname)
        return self.const(fn(None), type) if arr is None else map_values(fn, type, arr)

    def column_name(self, fieldname: str) -> str:
        return self.reader.columns.get(fieldname, fieldname)

    def money(self, fieldname: str, *, required: bool) -> pa.Array:
        arr = self.raw(fieldname)
        if arr is None:
            return pa.nulls(self.n, MONEY)
        try:
            # pyarrow wraps exponents past the precision ("1e30" casts to 1.896e19): Decimal does not
            if pc.any(pc.match_substring_regex(arr, "[eE]")).as_py():
                raise pa.ArrowInvalid("exponent")
            values = pc.cast(arr, MONEY)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = self._money_rowwise(arr, fieldname)  # >18 decimals, or a bad value
        if required and arr.null_count:
            for i in pc.indices_nonzero(pc.is_null(arr)).to_pylist():
                self.error(i, fieldname, "empty cost")
        return values

    def _money_rowwise(self, arr: pa.Array, fieldname: str) -> pa.Array:
        """Decimal per row: rounds beyond 18 decimals and locates each bad value by row."""
        values: list[Decimal | None] = []
        for i, text in enumerate(arr.to_pylist()):
            try:
                value = None if text is None else _money_value(text)
            except (InvalidOperation, ValueError):
                value = None
                self.error(i, fieldname, f"not a number: {text!r}")
            except OverflowError:
                value = None
                self.error(i, fieldname, f"out of range: {text!r} (money must be below 1e20)")
            values.append(value)
        return pa.array(values, MONEY)

    def times(self, fieldname: str, *, required: bool) -> pa.Array:
        arr = self.raw(fieldname)
        if arr is None:
            return pa.nulls(self.n, TIME)
        parsed = _parse_times(arr)
        bad = pc.and_(pc.is_null(parsed), pc.is_valid(arr))
        if required:
            bad = pc.or_(bad, pc.is_null(arr))
        if pc.any(bad).as_py():
            for i in pc.indices_nonzero(bad).to_pylist():
                text = arr[i].as_py()
                self.error(
                    i, fieldname, "empty date" if text is None else f"unparseable date: {text!r}"
                )
        return parsed

    def _currencies(self, arr: pa.Array | None) -> pa.Array:
        """ISO 4217 codes; an empty cell takes the import's currency, or is an error without one."""
        fieldname = "BillingCurrency" if self.reader.format == Format.FOCUS else "billing_currency"
        currency = self.reader.default_currency
        if arr is None or not self.has(fieldname):
            arr = pa.nulls(self.n, STRING)
        elif arr.null_count and not self.reader.currency_given:
            for i in pc.indices_nonzero(pc.is_null(arr)).to_pylist():
                self.error(i, fieldname, "empty currency (pass --currency to assume one)")
        filled = pc.fill_null(arr, currency)
        bad = pc.invert(pc.is_in(filled, value_set=_CURRENCIES))
        if pc.any(bad).as_py():
            for i in pc.indices_nonzero(bad).to_pylist():
                self.error(i, fieldname, "not an ISO 4217 currency code (three upper-case "
                           f"letters such as USD): {filled[i].as_py()!r}")  # fmt: skip
            filled = pc.if_else(bad, pa.scalar(None, STRING), filled)  # never longer than 3
        return filled

    def error(self, index: int, fieldname: str, message: str) -> None:
        self.reader.errors.add(self.offset + index + 1, self.column_name(fieldname), message)

    def finish(self, c: dict[str, pa.Array]) -> LineItems:
        """The chunk's columns in ``LINE_SCHEMA`` order; absent ones are null or derived."""
        from app.billing.normalize import instance_gpu

        c["billing_account_id"] = pc.fill_null(c.get("billing_account_id", self.const("")), "")
        c["billing_currency"] = self._currencies(c.get("billing_currency"))
        instance = c.get("x_instance_type", pa.nulls(self.n, pa.string()))
        if "x_gpu_model" not in c:
            c["x_gpu_model"] = map_values(lambda t: instance_gpu(t)[0], pa.string(), instance)
        if "x_gpu_count" not in c:
            c["x_gpu_count"] = map_values(lambda t: instance_gpu(t)[1], pa.int32(), instance)
        c["row_number"] = pa.array(range(self.offset + 1, self.offset + self.n + 1), pa.int64())
        self._check_lengths(c)
        arrays = []
        for f in LINE_SCHEMA:
            arr = c.get(f.name)
            if arr is None:
                arr = pa.nulls(self.n, f.type)
            arrays.append(arr if arr.type == f.type else pc.cast(arr, f.type))
        return LineItems(pa.RecordBatch.from_arrays(arrays, schema=LINE_SCHEMA))

    def _check_lengths(self, c: dict[str, pa.Array]) -> None:
        """Text longer than its ``billing_line_items`` column is an error naming row and column."""
        for name, limit in TEXT_LIMITS.items():
            arr = c.get(name)
            if arr is None or arr.type != STRING:
                continue
            long = pc.fill_null(pc.greater(pc.utf8_length(arr), limit), False)
            if not pc.any(long).as_py():
                continue
            source = _DERIVED_FROM.get(name, name)
            if self.reader.format == Format.FOCUS:  # "resource_id" -> "ResourceId"
                prefix = "x_" if source.startswith("x_") else ""
                source = prefix + source.removeprefix("x_").title().replace("_", "")
            for i in pc.indices_nonzero(long).to_pylist():
                self.error(i, source, f"longer than {limit} characters "
                           f"({len(arr[i].as_py()):,}); nothing of the file was imported")  # fmt: skip


def _text_limits() -> dict[str, int]:
    from app.models import BillingLineItem  # the lengths are the table's

    lengths = {c.name: getattr(c.type, "length", None) for c in BillingLineItem.__table__.columns}
    return {name: n for name, n in lengths.items() if name in FIELDS and n}


TEXT_LIMITS = _text_limits()
_DERIVED_FROM = {"x_resource_key": "resource_id"}  # a too-long key means a too-long resource id
_WIDE_CONTEXT = Context(prec=80)  # enough for any value that could fit, and to tell it does not
MONEY_LIMIT = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE)  # NUMERIC(38,18): |value| < 1e20


def _money_value(text: str) -> Decimal:
    """A money cell as NUMERIC(38,18); InvalidOperation if not a number, OverflowError if too big."""
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidOperation(text)
    if value.adjusted() > 60:  # don't quantize 1e999999 into a million digits
        raise OverflowError(text)
    value = value.quantize(Decimal(10) ** -MONEY_SCALE, context=_WIDE_CONTEXT)
    if abs(value) >= MONEY_LIMIT:
        raise OverflowError(text)
    return value


def _parse_times(arr: pa.Array) -> pa.Array:
    for target in (TIME, pa.timestamp("us")):
        try:
            return pc.cast(pc.cast(arr, target), TIME)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    result = pa.nulls(len(arr), TIME)
    for fmt in _TIME_FORMATS:
        attempt = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        attempt = pc.cast(attempt, TIME)
        result = pc.coalesce(result, attempt)
        if pc.all(pc.or_(pc.is_valid(result), pc.is_null(arr))).as_py():
            break
    return result


def normalize(reader: BillingReader, batch: pa.RecordBatch | pa.Table, offset: int) -> LineItems:
    from app.billing.shapes import SHAPERS  # per-format rules, kept apart to stay short

    b = _Batch(reader, batch, offset)
    for name in batch.schema.names:  # PostgreSQL text cannot hold NUL; SQLite would cut it
        found = pc.match_substring(b.source(name), "\x00")
        if pc.any(found).as_py():
            for i in pc.indices_nonzero(pc.fill_null(found, False)).to_pylist():
                reader.errors.add(offset + i + 1, name, "NUL byte in the cell")
    return SHAPERS[reader.format](b)
