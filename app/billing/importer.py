"""Read a billing file in chunks and yield normalized, typed line items.

The only module that touches pandas/pyarrow: it returns ``LineItem`` tuples, never frames.
CSV (plain or gzip) streams through pyarrow's incremental reader, Parquet by row groups and
JSONL line by line, so memory stays bounded by the chunk size whatever the file size.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from app.billing.formats import SPECS, Format, FormatSpec, detect_format, focus_version

CHUNK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 100_000
JSONL_BATCH_ROWS = 50_000
MAX_REPORTED_ERRORS = 20
MONEY = pa.decimal128(38, 18)
NULLS = pa.array(["", "null", "NULL", "None", "NaN"])
_TIME_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S%z", "%m/%d/%Y %H:%M:%S", "%Y%m%d")  # fmt: skip


class LineItem(NamedTuple):
    """One normalized bill row, in ``billing_line_items`` column order (after ``import_id``)."""

    row_number: int
    billing_account_id: str
    sub_account_id: str | None
    billing_period_start: datetime
    billing_period_end: datetime | None
    charge_period_start: datetime
    charge_period_end: datetime
    charge_category: str
    charge_description: str | None
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal | None
    billing_currency: str
    pricing_quantity: Decimal | None
    pricing_unit: str | None
    provider_name: str | None
    service_name: str | None
    region_id: str | None
    resource_id: str | None
    sku_id: str | None
    tags: str | None
    x_resource_key: str | None
    x_instance_type: str | None
    x_gpu_model: str | None
    x_gpu_count: int | None
    x_cost_component: str


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
class Chunk:
    items: list[LineItem]
    rows_read: int
    bytes_read: int


@dataclass
class _Errors:
    items: list[RowError] = field(default_factory=list)
    count: int = 0

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(RowError(row, column, message))


def _open_binary(path: Path) -> IO[bytes]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb") if gzipped else path.open("rb"))


def _kind(path: Path) -> str:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return "parquet"
    with _open_binary(path) as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = None if value is None else str(value)
    return out


def read_header(path: Path) -> list[str]:
    """The column names of a billing file (CSV, CSV.gz, Parquet or JSONL)."""
    kind = _kind(path)
    if kind == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig") as text:
        if kind == "jsonl":
            line = text.readline()
            return list(_flatten(json.loads(line)).keys()) if line.strip() else []
        return next(csv.reader(text), [])


class BillingReader:
    """A billing file, its detected format, and an iterator of normalized chunks."""

    def __init__(
        self,
        path: Path,
        *,
        file_name: str | None = None,
        format: Format | None = None,
        dataset: str | None = None,
        currency: str | None = None,
    ) -> None:
        self.path = path
        self.file_name = file_name or path.name
        self.kind = _kind(path)
        self.header = read_header(path)
        detected = format or detect_format(self.header)
        if detected is None:
            raise BillingFileError(
                self.file_name,
                [RowError(None, None, "unknown billing format: the header matches none of "
                          f"{', '.join(f.value for f in Format)}; pass --format to choose")],
                1,
            )  # fmt: skip
        self.format = detected
        self.spec: FormatSpec = SPECS[detected]
        self.version = focus_version(self.header) if detected == Format.FOCUS else ""
        self.default_currency = (currency or "USD").upper()
        lower = {h.lower(): h for h in self.header}
        self.columns: dict[str, str] = {}
        for fieldname, source in {**self.spec.columns, **self.spec.extra}.items():
            for option in source.split("|"):
                actual = lower.get(option.lower()) if detected.value.startswith("azure") else (
                    option if option in self.header else None)  # fmt: skip
                if actual:
                    self.columns[fieldname] = actual
                    break
        if detected.value.startswith("azure"):
            self.dataset = dataset or ("amortized" if "amortized" in self.file_name.lower()
                                       else "actual")  # fmt: skip
        else:
            self.dataset = dataset or ""
        self.tag_columns = [h for h in self.header
                            if h.startswith("resourceTags/") or h == "resource_tags"]  # fmt: skip
        self.warnings: list[str] = []
        missing = [self.spec.columns.get(f, f) for f in self.spec.required
                   if f not in self.columns]  # fmt: skip
        if missing:
            raise BillingFileError(
                self.file_name,
                [RowError(None, c.split("|")[0], "mandatory column is missing") for c in missing],
                len(missing),
            )
        if detected == Format.FOCUS and "BillingCurrency" not in self.columns:
            self.warnings.append(
                f"no BillingCurrency column: amounts taken as {self.default_currency}"
            )
        self.errors = _Errors()

    # -- reading -------------------------------------------------------------------------
    def _needed(self) -> list[str]:
        return sorted(set(self.columns.values()) | set(self.tag_columns))

    def _raw_batches(self) -> Iterator[tuple[pa.RecordBatch | pa.Table, int]]:
        needed = self._needed()
        if self.kind == "parquet":
            pf = pq.ParquetFile(self.path)
            total = self.path.stat().st_size
            groups = max(pf.num_row_groups, 1)
            for i, batch in enumerate(pf.iter_batches(batch_size=PARQUET_BATCH_ROWS,
                                                     columns=needed)):  # fmt: skip
                yield batch, min(total, total * (i + 1) // groups)
            return
        with self.path.open("rb") as raw:
            if self.kind == "jsonl":
                yield from self._jsonl_batches(raw, needed)
                return
            source: Any = raw
            raw.seek(0)
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                source = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip")
            raw.seek(0)
            reader = pa_csv.open_csv(
                source,
                read_options=pa_csv.ReadOptions(block_size=CHUNK_BYTES),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=needed,
                    column_types=dict.fromkeys(needed, pa.string()),
                    strings_can_be_null=False,
                ),
            )
            for batch in reader:
                yield batch, raw.tell()

    def _jsonl_batches(self, raw: IO[bytes], needed: list[str]) -> Iterator[tuple[pa.Table, int]]:
        raw.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw  # type: ignore[assignment]
        raw.seek(0)
        rows: list[dict[str, Any]] = []
        for line in stream:
            if line.strip():
                rows.append(_flatten(json.loads(line)))
            if len(rows) >= JSONL_BATCH_ROWS:
                yield _to_table(rows, needed), raw.tell()
                rows = []
        if rows:
            yield _to_table(rows, needed), raw.tell()

    def chunks(self) -> Iterator[Chunk]:
        """Normalized chunks; rows of a chunk with errors are dropped (see ``self.errors``)."""
        try:
            yield from self._chunks()
        except (pa.ArrowInvalid, ValueError, OSError) as e:  # malformed CSV, JSON, Parquet
            self.errors.add(None, None, f"unreadable file: {e}")
            raise BillingFileError(self.file_name, self.errors.items, self.errors.count) from e

    def _chunks(self) -> Iterator[Chunk]:
        offset = 0
        for batch, position in self._raw_batches():
            before = self.errors.count
            items = _normalize(self, batch, offset)
            rows = batch.num_rows
            offset += rows
            yield Chunk(items if self.errors.count == before else [], rows, position)


def _to_table(rows: list[dict[str, Any]], needed: list[str]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) or "" for r in rows], pa.string()) for c in needed})


# -- normalization (vectorized per chunk) -----------------------------------------------------
class _Batch:
    def __init__(self, reader: BillingReader, batch: pa.RecordBatch | pa.Table, offset: int):
        self.reader = reader
        self.batch = batch
        self.offset = offset
        self.n = batch.num_rows

    def raw(self, fieldname: str) -> pa.Array | None:
        name = self.reader.columns.get(fieldname)
        if name is None:
            return None
        arr = self.batch.column(name)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if arr.type != pa.string():
            arr = pc.cast(arr, pa.string())
        return pc.if_else(pc.is_in(arr, value_set=NULLS), pa.scalar(None, pa.string()), arr)

    def text(self, fieldname: str) -> list[str | None]:
        arr = self.raw(fieldname)
        return [None] * self.n if arr is None else arr.to_pylist()

    def mapped(self, fieldname: str, fn: Callable[[str | None], Any]) -> list[Any]:
        """``fn`` over the column's distinct values only."""
        arr = self.raw(fieldname)
        if arr is None:
            return [fn(None)] * self.n
        encoded = pc.dictionary_encode(arr)
        values = [fn(v) for v in encoded.dictionary.to_pylist()]
        none = fn(None)
        return [none if i is None else values[i] for i in encoded.indices.to_pylist()]

    def column_name(self, fieldname: str) -> str:
        return self.reader.columns.get(fieldname, fieldname)

    def money(self, fieldname: str, *, required: bool) -> list[Decimal | None]:
        arr = self.raw(fieldname)
        if arr is None:
            return [None] * self.n
        try:
            values: list[Decimal | None] = pc.cast(arr, MONEY).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = []
            for i, text in enumerate(arr.to_pylist()):
                try:
                    values.append(
                        None if text is None else Decimal(text).quantize(Decimal(10) ** -18)
                    )
                    if values[-1] is not None and not values[-1].is_finite():
                        raise InvalidOperation
                except (InvalidOperation, ValueError):
                    values.append(None)
                    self.error(i, fieldname, f"not a number: {text!r}")
                    continue
        if required:
            for i in pc.indices_nonzero(pc.is_null(arr)).to_pylist():
                self.error(i, fieldname, "empty cost")
        return values

    def times(self, fieldname: str, *, required: bool) -> list[datetime | None]:
        arr = self.raw(fieldname)
        if arr is None:
            return [None] * self.n
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
        encoded = pc.dictionary_encode(parsed)
        values = [None if v is None else v.replace(tzinfo=UTC) if v.tzinfo is None
                  else v.astimezone(UTC) for v in encoded.dictionary.to_pylist()]  # fmt: skip
        return [None if i is None else values[i] for i in encoded.indices.to_pylist()]

    def error(self, index: int, fieldname: str, message: str) -> None:
        self.reader.errors.add(self.offset + index + 1, self.column_name(fieldname), message)


def _parse_times(arr: pa.Array) -> pa.Array:
    for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
        try:
            return pc.cast(pc.cast(arr, target), pa.timestamp("us", "UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    result = pa.nulls(len(arr), pa.timestamp("us", "UTC"))
    for fmt in _TIME_FORMATS:
        attempt = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        attempt = pc.cast(attempt, pa.timestamp("us", "UTC"))
        result = pc.coalesce(result, attempt)
        if pc.all(pc.or_(pc.is_valid(result), pc.is_null(arr))).as_py():
            break
    return result


def _normalize(
    reader: BillingReader, batch: pa.RecordBatch | pa.Table, offset: int
) -> list[LineItem]:
    from app.billing.shapes import SHAPERS  # per-format rules, kept apart to stay short

    b = _Batch(reader, batch, offset)
    return SHAPERS[reader.format](b)
