"""Read a billing file in chunks and normalize each chunk as whole columns.

The only module that touches pandas/pyarrow (with ``shapes.py``, its per-format rules). CSV (plain
or gzip) streams through pyarrow's incremental reader, Parquet by record batches and JSONL line by
line, so memory stays bounded by the chunk size whatever the file size. Each chunk is validated
and normalized with ``pyarrow.compute`` (decimal casts, UTC timestamps; bad values are located by
row index so errors keep exact row numbers) and handed out as ``LineItems``: typed figures for
the service and bulk rows for the repository (CSV for COPY, tuples for SQLite), never frames.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from app.billing.formats import SPECS, Format, FormatSpec, detect_format, focus_version
from app.kit.money import ISO_4217_CODES, MONEY_PRECISION, MONEY_SCALE

CHUNK_BYTES = 4 << 20  # 4 MiB measured as fast as 16 MiB on 100k rows, peak RSS 290 vs 390 MB
PARQUET_BATCH_ROWS = 100_000
JSONL_BATCH_ROWS = 50_000
MAX_REPORTED_ERRORS = 20
DATASETS = ("actual", "amortized")  # Azure's two cost datasets; other sources have one
NULLS = pa.array(["", "null", "NULL", "None", "NaN"])
_TIME_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S%z", "%m/%d/%Y %H:%M:%S", "%Y%m%d")  # fmt: skip


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
    ("billing_currency", pa.string()), ("pricing_quantity", MONEY), ("pricing_unit", pa.string()),
    ("provider_name", pa.string()), ("service_name", pa.string()), ("region_id", pa.string()),
    ("resource_id", pa.string()), ("sku_id", pa.string()), ("tags", pa.string()),
    ("x_resource_key", pa.string()), ("x_instance_type", pa.string()),
    ("x_gpu_model", pa.string()), ("x_gpu_count", pa.int32()), ("x_cost_component", pa.string()),
])  # fmt: skip
FIELDS: tuple[str, ...] = tuple(LINE_SCHEMA.names)


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
    items: LineItems | None  # None when the chunk had errors (the file will be rejected)
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
            # BigQuery omits null fields (``credits``, ``resource.global_name``): a key missing
            # from the first lines may appear later, so the columns are those of every line.
            keys: dict[str, None] = {}
            for line in text:
                if line.strip():
                    keys.update(dict.fromkeys(_flatten(json.loads(line))))
            return list(keys)
        return next(csv.reader(text), [])


def check_text(path: Path, file_name: str, kind: str) -> None:
    """Reject a file that is not UTF-8 (naming the byte and row) or has no data rows.

    pyarrow only says "invalid UTF8 data" and the header reader would crash, so the bytes are
    checked once up front: ``isascii`` is ~10 ms per 100 MB, the decoder runs on other blocks only.
    """
    if kind == "parquet":
        if pq.ParquetFile(path).metadata.num_rows == 0:
            raise BillingFileError(file_name, [RowError(None, None, "no data rows")], 1)
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    data_seen = kind == "jsonl"  # JSON lines have no header line
    with _open_binary(path) as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            try:
                if not block.isascii() or decoder.getstate()[0]:
                    decoder.decode(block)
            except UnicodeDecodeError as e:
                at = offset + e.start
                row = lines + block.count(b"\n", 0, e.start)  # the header is line 1, row 0
                message = f"not UTF-8 at byte {at}; export the file as UTF-8"
                raise BillingFileError(file_name, [RowError(row or None, None, message)], 1) from e
            if not data_seen:
                start = block.find(b"\n") + 1 if lines == 0 else 0
                data_seen = (lines > 0 or start > 0) and bool(block[start:].strip())
            lines += block.count(b"\n")
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            message = f"not UTF-8 at byte {offset - 1}; export the file as UTF-8 (cut short)"
            raise BillingFileError(file_name, [RowError(lines or None, None, message)], 1) from e
    if not data_seen:
        raise BillingFileError(file_name, [RowError(None, None, "no data rows")], 1)


def parse_error_row(path: Path, error: Exception) -> int | None:
    """The data row of a pyarrow "CSV parse error: Expected N columns, got M: <row text>"."""
    text = str(error)
    marker = text.find("columns, got ")
    colon = text.find(": ", marker)
    if marker < 0 or colon < 0:
        return None
    wanted = text[colon + 2 :].rstrip("\r\n")
    with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines):  # the header is line 0
            if number and line.rstrip("\r\n").startswith(wanted):
                return number
    return None


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
        check_text(path, self.file_name, self.kind)
        self.header = read_header(path)
        detected = format or detect_format(self.header)
        if detected is None:
            raise BillingFileError(
                self.file_name,
                [RowError(None, None, "unknown billing format: the header matches none of "
                          f"{', '.join(f.value for f in Format)}; pass --format to choose")],
                1,
            )  # fmt: skip
        if dataset not in (None, *DATASETS):
            message = f"dataset must be one of {', '.join(DATASETS)} (got {dataset[:40]!r})"
            raise BillingFileError(self.file_name, [RowError(None, None, message)], 1)
        self.format = detected
        self.spec: FormatSpec = SPECS[detected]
        self.version = focus_version(self.header) if detected == Format.FOCUS else ""
        self.default_currency = (currency or "USD").upper()
        self.currency_given = currency is not None  # empty currency cells take it, else an error
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
        # CUR legacy "resourceTags/user:team", CUR 2.0 "resource_tags" (a map) or, in
        # Athena-style exports, one "resource_tags_user_team" column per tag.
        self.tag_columns = [h for h in self.header
                            if h.startswith(("resourceTags/", "resource_tags"))]  # fmt: skip
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
        self._open: list[Generator[Chunk]] = []

    # -- reading -------------------------------------------------------------------------
    def _needed(self) -> list[str]:
        return sorted(set(self.columns.values()) | set(self.tag_columns))

    def _raw_batches(self) -> Iterator[tuple[pa.RecordBatch | pa.Table, int]]:
        needed = self._needed()
        if self.kind == "parquet":
            with pq.ParquetFile(self.path) as pf:
                total = self.path.stat().st_size
                groups = max(pf.num_row_groups, 1)
                for i, batch in enumerate(pf.iter_batches(batch_size=PARQUET_BATCH_ROWS,
                                                         columns=needed)):  # fmt: skip
                    yield _nested_as_json(batch), min(total, total * (i + 1) // groups)
            return
        if self.kind == "jsonl":
            with self.path.open("rb") as raw:
                yield from self._jsonl_batches(raw, needed)
            return
        yield from self._csv_batches(needed)

    def _csv_batches(self, needed: list[str]) -> Iterator[tuple[pa.RecordBatch, int]]:
        # A native file, not a Python one: pyarrow reads ahead on an I/O thread, and a thread
        # that needs the GIL to read deadlocks or aborts the interpreter at exit ("terminate
        # called without an active exception") when the reader is dropped mid-file.
        raw = pa.OSFile(str(self.path))
        source: pa.NativeFile = raw
        reader: pa_csv.CSVStreamingReader | None = None
        try:
            if raw.read(2) == b"\x1f\x8b":
                source = pa.CompressedInputStream(raw, "gzip")
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
        finally:
            if reader is not None:
                reader.close()
                del reader  # its destructor waits for the read-ahead before the file closes
            source.close()
            raw.close()

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
        """Normalized chunks; rows of a chunk with errors are dropped (see ``self.errors``).

        The file and its pyarrow reader close when the iteration ends or fails; ``close()``
        (or leaving ``with BillingReader(...)``) closes them when the caller stops early.
        """
        chunks = self._checked_chunks()
        self._open.append(chunks)
        return chunks

    def close(self) -> None:
        """Close what ``chunks()`` opened and has not finished reading (idempotent)."""
        while self._open:
            self._open.pop().close()

    def __enter__(self) -> BillingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _checked_chunks(self) -> Generator[Chunk]:
        try:
            yield from self._chunks()
        except (pa.ArrowInvalid, ValueError, OSError) as e:  # malformed CSV, JSON, Parquet
            row = parse_error_row(self.path, e) if self.kind == "csv" else None
            self.errors.add(row, None, f"unreadable file: {e}")
            raise BillingFileError(self.file_name, self.errors.items, self.errors.count) from e

    def _chunks(self) -> Iterator[Chunk]:
        offset = 0
        for batch, position in self._raw_batches():
            before = self.errors.count
            items = _normalize(self, batch, offset)
            rows = batch.num_rows
            offset += rows
            yield Chunk(items if self.errors.count == before else None, rows, position)


def _to_table(rows: list[dict[str, Any]], needed: list[str]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) or "" for r in rows], pa.string()) for c in needed})


def _json_value(value: Any) -> Any:
    """A Parquet nested value as JSON: maps (lists of key/value pairs) become objects."""
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _json_value(v) for k, v in value}
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _nested_as_json(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Map, struct and list columns as JSON text (CUR 2.0 ``resource_tags``, FOCUS ``Tags``).

    pyarrow cannot cast nested types to strings; JSON text is what the CSV exports carry.
    """
    nested = [i for i, f in enumerate(batch.schema) if pa.types.is_nested(f.type)]
    for i in nested:
        texts = [None if v is None else json.dumps(_json_value(v), separators=(",", ":"),
                                                   default=str)
                 for v in batch.column(i).to_pylist()]  # fmt: skip
        batch = batch.set_column(i, batch.schema.field(i).name, pa.array(texts, pa.string()))
    return batch


# -- normalization (vectorized per chunk) -----------------------------------------------------
_SEP, _NULL = "\x1f", "\x00"  # joins several columns into one key for map_values
_CURRENCIES = pa.array(sorted(ISO_4217_CODES))


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


def _normalize(reader: BillingReader, batch: pa.RecordBatch | pa.Table, offset: int) -> LineItems:
    from app.billing.shapes import SHAPERS  # per-format rules, kept apart to stay short

    b = _Batch(reader, batch, offset)
    for name in batch.schema.names:  # PostgreSQL text cannot hold NUL; SQLite would cut it
        found = pc.match_substring(b.source(name), "\x00")
        if pc.any(found).as_py():
            for i in pc.indices_nonzero(pc.fill_null(found, False)).to_pylist():
                reader.errors.add(offset + i + 1, name, "NUL byte in the cell")
    return SHAPERS[reader.format](b)


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

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """BilledCost and EffectiveCost sums per currency."""
        table = pa.Table.from_batches([self._batch]).group_by("billing_currency")
        sums = table.aggregate([("billed_cost", "sum"), ("effective_cost", "sum")])
        return {r["billing_currency"]: (r["billed_cost_sum"] or Decimal(0),
                                        r["effective_cost_sum"] or Decimal(0))
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
