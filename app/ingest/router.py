"""``POST /api/v1/ingest``: where agents deliver their batches."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.db import session_scope
from app.deps import get_node_token
from app.errors import Forbidden, PayloadTooLarge, Unauthenticated, error_responses
from app.ingest import service
from app.ingest.schemas import IngestBatch, IngestResult
from app.kit.body import BadEncoding, read_body
from app.kit.validation import PayloadInvalid

router = APIRouter(prefix="/api/v1", tags=["ingest"])

MAX_BODY_BYTES = 64 * 1024 * 1024


def _store(authorization: str | None, batch: IngestBatch) -> IngestResult:
    with session_scope() as session:
        token = get_node_token(authorization, session)
        return service.ingest_batch(session, token=token, batch=batch)


@router.post(
    "/ingest",
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": IngestBatch.model_json_schema()}},
        }
    },
    responses=error_responses(
        Unauthenticated, Forbidden, PayloadTooLarge, BadEncoding, PayloadInvalid
    ),
)
async def create_ingest(request: Request) -> IngestResult:
    """Store one agent batch (JSON, optionally gzip). Retries are safe: a sample is stored once."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthenticated("missing bearer node token")
    body = await read_body(request, max_bytes=MAX_BODY_BYTES)
    try:
        batch = IngestBatch.model_validate_json(body)
    except ValidationError as e:
        raise PayloadInvalid.from_validation(e) from e
    # The database work is synchronous; keep it off the event loop.
    return await run_in_threadpool(_store, authorization, batch)
