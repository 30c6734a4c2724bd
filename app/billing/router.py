"""Billing API: upload a bill, follow its import, read and edit the price book."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, UploadFile, status

from app.auth.service import Role
from app.billing import pricebook, service, tasks
from app.billing.catalog import PriceEntry
from app.billing.errors import BillingFileRejected, ImportNotFound
from app.billing.formats import Format
from app.billing.progress import get_progress
from app.billing.rows import BillingFileError
from app.billing.schemas import ImportRead, PriceEntryIO
from app.config import settings
from app.deps import SessionDep, ViewerAuth, require_role
from app.errors import error_responses
from app.kit.validation import PayloadInvalid
from app.models import ApiKey
from app.worker import enqueue_after_commit

router = APIRouter(prefix="/api/v1", tags=["billing"])
FinanceAuth = Annotated[ApiKey, Depends(require_role(Role.FINANCE))]
# Uploads up to this size import inside the request; larger ones go to the worker.
SYNC_IMPORT_MAX_BYTES = 8 << 20
MAX_FILE_NAME = 500  # the column; the stored upload is named by a uuid, not by this


def _read(record: Any, **extra: Any) -> ImportRead:
    out = ImportRead.model_validate(record)
    out.progress = get_progress(record.id) if record.status in ("pending", "running") else None
    for k, v in extra.items():
        setattr(out, k, v)
    return out


def _store(upload: UploadFile) -> Path:
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / uuid.uuid4().hex  # the name is the user's: it may not fit a file system
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return path


@router.post(
    "/billing/imports",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(BillingFileRejected, PayloadInvalid),
)
def create_import(
    session: SessionDep,
    _key: FinanceAuth,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File()],
    format: Annotated[Format | None, Form()] = None,
    dataset: Annotated[Literal["actual", "amortized"] | None, Form()] = None,
    currency: Annotated[str | None, Form()] = None,
    delivery: Annotated[
        str | None,
        Form(max_length=200, description="name of a multi-file delivery; default: the file name"),
    ] = None,
    run: Annotated[
        str | None,
        Form(
            max_length=200,
            description="the delivery's run (e.g. CUR assembly id): files of one run never replace each other",
        ),
    ] = None,
    replace: Annotated[
        bool,
        Form(description="replace every earlier import of the same account and billing period"),
    ] = False,
) -> ImportRead:
    """Upload a billing file; small files import now, large ones are queued (status 'pending').

    A new import replaces the rows of an earlier import of the same delivery (by default: a file
    of the same name) in the same accounts and billing periods, not those of other files.
    """
    name = Path(file.filename or "bill").name
    if len(name) > MAX_FILE_NAME:
        raise PayloadInvalid(f"file name longer than {MAX_FILE_NAME} characters ({len(name):,})")
    path = _store(file)
    options = {"format": format.value if format else None, "dataset": dataset, "currency": currency,
               "delivery": delivery, "run": run, "replace": replace}  # fmt: skip
    record = service.create_import(session, file_name=name, path=path, options=options)
    if record.file_bytes > SYNC_IMPORT_MAX_BYTES:
        if settings.redis_url:
            enqueue_after_commit(session, tasks.import_file, record.id)
        else:
            background.add_task(tasks.run_import, record.id)  # runs after the commit
        return _read(record)
    try:
        summary = service.import_file(
            session, path=path, file_name=record.file_name, format=format, dataset=dataset,
            currency=currency, record=record, delivery=delivery, run=run, replace_scope=replace,
        )  # fmt: skip
    except BillingFileError as e:
        raise BillingFileRejected(
            str(e), detail={"file": e.file_name, "error_count": e.error_count,
                            "errors": [x.as_dict() for x in e.errors]},
        ) from e  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    record.stored_path = None
    return _read(record, duplicate_of=summary.duplicate_of)


@router.get("/billing/imports", responses=error_responses())
def list_imports(session: SessionDep, _key: ViewerAuth) -> list[ImportRead]:
    """The latest imports, newest first."""
    return [_read(r) for r in service.list_imports(session)]


@router.get("/billing/imports/{import_id}", responses=error_responses(ImportNotFound))
def get_import(session: SessionDep, _key: ViewerAuth, import_id: int) -> ImportRead:
    """One import: status, progress while it runs, totals or errors when done."""
    return _read(service.get_import(session, import_id))


@router.get("/pricebook")
def list_prices(session: SessionDep, _key: ViewerAuth) -> list[PriceEntryIO]:
    """The price book: shipped list prices with the user's entries over them."""
    return [PriceEntryIO.model_validate(e) for e in pricebook.list_entries(session)]


@router.put("/pricebook")
def update_prices(
    session: SessionDep, _key: FinanceAuth, entries: list[PriceEntryIO]
) -> list[PriceEntryIO]:
    """Add or replace price book entries (keyed by provider, instance type and region)."""
    pricebook.upsert_entries(session, [PriceEntry(**e.model_dump()) for e in entries])
    return [PriceEntryIO.model_validate(e) for e in pricebook.list_entries(session)]
