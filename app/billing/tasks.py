"""Celery task for large uploads; embedded mode runs ``run_import`` in a thread instead."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from app.billing import service
from app.billing.formats import Format
from app.billing.progress import set_progress
from app.billing.rows import BillingFileError
from app.db import session_scope
from app.worker import celery_app

log = logging.getLogger(__name__)


def run_import(import_id: int) -> str:
    """Import a stored upload by id; a bad file marks the import failed. Returns the status."""
    with session_scope() as session:
        record = service.get_import(session, import_id)
        if record.status in ("succeeded", "failed", "duplicate"):
            return record.status  # a redelivered task: the work is done
        path, options = Path(record.stored_path or ""), dict(record.options)

    def progress(done: int, total: int, rows: int) -> None:
        set_progress(import_id, bytes_read=done, file_bytes=total, rows_read=rows)

    try:
        with session_scope() as session:
            record = service.get_import(session, import_id)
            summary = service.import_file(
                session,
                path=path,
                file_name=record.file_name,
                format=Format(options["format"]) if options.get("format") else None,
                dataset=options.get("dataset"),
                currency=options.get("currency"),
                rates={k: Decimal(v) for k, v in (options.get("rates") or {}).items()},
                record=record,
                progress=progress,
                delivery=options.get("delivery"),
                run=options.get("run"),
                replace_scope=bool(options.get("replace")),
            )
            status = summary.status
    except BillingFileError as e:
        with session_scope() as session:
            service.record_failure(service.get_import(session, import_id), e)
        status = "failed"
    finally:
        path.unlink(missing_ok=True)
    return status


@celery_app.task(name="billing.import_file", acks_late=True)  # type: ignore[untyped-decorator]
def import_file(import_id: int) -> str:
    """Import one uploaded billing file (see ``run_import``)."""
    return run_import(import_id)
