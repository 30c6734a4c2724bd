"""Billing imports: stream a file into normalized line items, replace corrected periods."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.billing import repository
from app.billing.errors import ImportNotFound
from app.billing.formats import Format
from app.billing.importer import BillingReader
from app.billing.rows import COST_TOTALS, BillingFileError, LineItems, RowError, _Errors
from app.costs import ledger as cost_ledger
from app.models import BillingImport, BillingLineItem

Progress = Callable[[int, int, int], None]  # bytes read, file bytes, rows read
ONE = Decimal(1)


@dataclass
class ImportSummary:
    """What an import did: the figures the CLI prints and the API returns."""

    import_id: int | None
    file_name: str
    format: str | None
    status: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_matched: int = 0
    rows_replaced: int = 0
    totals: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    duplicate_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def summary_of(record: BillingImport) -> ImportSummary:
    return ImportSummary(
        import_id=record.id,
        file_name=record.file_name,
        format=record.format,
        status=record.status,
        rows_read=record.rows_read,
        rows_accepted=record.rows_accepted,
        rows_matched=record.rows_matched,
        rows_replaced=record.rows_replaced,
        totals=dict(record.totals),
        warnings=list(record.options.get("warnings", [])),
    )


def find_duplicate(session: Session, sha256: str) -> BillingImport | None:
    """An earlier import of the same file whose rows are still there (a later export may have
    replaced them: then the file imports again)."""
    still_there = (
        select(BillingLineItem.row_number)
        .where(BillingLineItem.import_id == BillingImport.id)
        .limit(1)
        .exists()
    )
    return session.scalars(
        select(BillingImport)
        .where(
            BillingImport.file_sha256 == sha256,
            BillingImport.status == "succeeded",
            or_(still_there, BillingImport.rows_accepted == 0),
        )
        .order_by(BillingImport.id)
        .limit(1)
    ).first()


def create_import(
    session: Session, *, file_name: str, path: Path, options: dict[str, Any] | None = None
) -> BillingImport:
    """A pending import row for a stored upload (the task fills it in)."""
    record = BillingImport(
        file_name=file_name,
        file_sha256=file_sha256(path),
        file_bytes=path.stat().st_size,
        status="pending",
        stored_path=str(path),
        options=options or {},
        totals={},
        errors=[],
        created_at=_now(),
    )
    session.add(record)
    session.flush()
    return record


def get_import(session: Session, import_id: int) -> BillingImport:
    record = session.get(BillingImport, import_id)
    if record is None:
        raise ImportNotFound(f"no billing import {import_id}")
    return record


class _Totals:
    """Per currency, the sums of the FOCUS cost columns the file has values for."""

    def __init__(self, reporting: str | None, rates: dict[str, Decimal]) -> None:
        self.reporting = reporting.upper() if reporting else None
        self.rates = {k.upper(): v for k, v in rates.items()}
        self.sums: dict[str, dict[str, Decimal]] = {}
        self.scopes: set[tuple[str, datetime]] = set()
        self.unrated: dict[str, int] = {}

    def rate(self, currency: str) -> Decimal | None:
        if self.reporting is None:
            self.reporting = currency
        if currency == self.reporting:
            return ONE
        return self.rates.get(currency)

    def add(self, items: LineItems, errors: _Errors) -> bool:
        """Fold a chunk into the totals; False (and an error) on a currency without a rate."""
        rates: dict[str, Decimal] = {}
        for cur, row in items.currencies():
            rate = self.rate(cur)
            if rate is None:
                if cur not in self.unrated:
                    errors.add(row, "BillingCurrency", f"mixed currencies: {cur} after "
                               f"{self.reporting} and no exchange rate given (--rate {cur}=...)")  # fmt: skip
                    self.unrated[cur] = 0
                continue
            rates[cur] = rate
        if len(rates) < len(items.currencies()):
            return False
        items.set_rates(rates)
        for cur, chunk in items.totals().items():
            sums = self.sums.setdefault(cur, {})
            for name, value in chunk.items():
                sums[name] = sums.get(name, Decimal(0)) + value
        self.scopes |= items.scopes()
        return True

    def as_json(self) -> dict[str, dict[str, str]]:
        """BilledCost, EffectiveCost, then ListCost and ContractedCost where the file has them."""
        return {c: {name: f"{sums[name].normalize():f}" for name in COST_TOTALS.values()
                    if name in sums}
                for c, sums in sorted(self.sums.items())}  # fmt: skip


def import_file(
    session: Session,
    *,
    path: Path,
    file_name: str | None = None,
    format: Format | None = None,
    dataset: str | None = None,
    currency: str | None = None,
    rates: dict[str, Decimal] | None = None,
    record: BillingImport | None = None,
    progress: Progress | None = None,
    delivery: str | None = None,
    run: str | None = None,
    replace_scope: bool = False,
) -> ImportSummary:
    """Import one billing file whole or not at all; raises BillingFileError on a bad file.

    What it replaces: the rows of earlier imports of the same ``delivery`` (default: the file
    name, so a re-export of one file of a split month replaces only that file) in the same
    accounts and billing periods, but not those of the same ``run`` (the files of one
    multi-file delivery); ``replace_scope`` replaces every earlier import in those scopes.
    """
    name = file_name or path.name
    sha = record.file_sha256 if record else file_sha256(path)
    duplicate = find_duplicate(session, sha)
    if duplicate is not None and (record is None or duplicate.id != record.id):
        summary = summary_of(duplicate)
        summary.duplicate_of, summary.status = duplicate.id, "duplicate"
        if record is not None:
            record.status, record.message = "duplicate", f"same file as import {duplicate.id}"
            record.finished_at = _now()
        return summary
    reader = BillingReader(path, file_name=name, format=format, dataset=dataset,
                           currency=currency)  # fmt: skip
    savepoint = session.begin_nested()  # a rejected file leaves the database as it was
    if record is None:
        record = BillingImport(file_name=name, file_sha256=sha, file_bytes=path.stat().st_size,
                               options={}, totals={}, errors=[], created_at=_now())  # fmt: skip
        session.add(record)
    record.format = reader.format.value + (f"-{reader.version}" if reader.version else "")
    record.source_system, record.dataset, record.status = (
        reader.spec.source_system, reader.dataset, "running")  # fmt: skip
    session.flush()
    totals = _Totals(currency, rates or {})
    known = repository.node_keys(session)
    total_bytes = path.stat().st_size
    prefix = (record.id, reader.spec.source_system, reader.dataset)
    try:
        with reader, repository.line_item_writer(session, prefix) as write:
            for chunk in reader.chunks():
                record.rows_read += chunk.rows_read
                items = chunk.items
                if (items is not None and totals.add(items, reader.errors)
                        and not reader.errors.count):  # fmt: skip
                    record.rows_matched += items.set_nodes(known)
                    record.rows_accepted += write(items)  # once rejected, stop writing
                record.bytes_read = chunk.bytes_read
                if progress is not None:
                    progress(chunk.bytes_read, total_bytes, record.rows_read)
    except BaseException:
        savepoint.rollback()  # whatever went wrong, nothing of this file stays
        raise
    if reader.errors.count:
        savepoint.rollback()
        raise BillingFileError(name, reader.errors.items, reader.errors.count)
    delivery = delivery or name
    run = run or f"import-{record.id}"
    record.rows_replaced = repository.replace_scopes(
        session, import_id=record.id, source_system=reader.spec.source_system,
        dataset=reader.dataset, scopes=totals.scopes,
        delivery=None if replace_scope else delivery, run=run,
    )  # fmt: skip
    savepoint.commit()
    record.totals = totals.as_json()
    scopes = sorted([a, p.isoformat()] for a, p in totals.scopes)  # for later corrections
    warnings = list(reader.warnings)
    unkeyed = session.scalar(
        select(func.count()).where(BillingLineItem.import_id == record.id,
                                   BillingLineItem.x_resource_key.is_(None))
    ) or 0  # fmt: skip
    if unkeyed:
        # e.g. GCP standard exports (no resource.* columns), CUR without resource ids
        warnings.append(f"{unkeyed:,} of {record.rows_accepted:,} rows name no resource (no "
                        "resource id in the file), so they can never be matched to a node")  # fmt: skip
    record.options = {**record.options, "warnings": warnings,
                      "reporting_currency": totals.reporting, "scopes": scopes,
                      "delivery": delivery, "run": run}  # fmt: skip
    record.status, record.finished_at = "succeeded", _now()
    session.flush()
    # The ledger re-prices the hours this bill covers, replaces or re-rates (costs.reprice).
    replaced = {p for _, p in totals.scopes} if record.rows_replaced else set()
    cost_ledger.mark_import(session, record.id, replaced)
    return summary_of(record)


def import_delivery(
    session: Session,
    paths: list[Path],
    *,
    delivery: str,
    run: str,
    progress: Callable[[Path], Progress | None] | None = None,
    **options: Any,
) -> list[ImportSummary]:
    """Import the files of one delivery as a unit: all of them, or none when one is rejected
    (the BillingFileError names that file). ``options`` are ``import_file``'s."""
    savepoint = session.begin_nested()
    try:
        summaries = [
            import_file(session, path=path, delivery=delivery, run=run,
                        progress=progress(path) if progress else None, **options)
            for path in paths
        ]  # fmt: skip
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return summaries


def record_failure(record: BillingImport, error: BillingFileError | Exception) -> None:
    """Mark an import failed with its first errors (the line items were rolled back)."""
    record.status, record.finished_at = "failed", _now()
    if isinstance(error, BillingFileError):
        record.errors = [e.as_dict() for e in error.errors]
        record.error_count = error.error_count
    else:
        record.errors = [RowError(None, None, str(error)).as_dict()]
        record.error_count = 1
    record.message = str(error)


def list_imports(session: Session, *, limit: int = 50) -> list[BillingImport]:
    return list(
        session.scalars(select(BillingImport).order_by(BillingImport.id.desc()).limit(limit))
    )


def rematch_nodes(session: Session) -> int:
    """Match every line item to known nodes again (after new nodes register)."""
    return repository.match_nodes(session, keys=repository.distinct_keys(session))
