"""``POST /api/v1/ingest``: where agents deliver their batches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from app.deps import SessionDep, bearer_secret
from app.errors import Forbidden, PayloadTooLarge, Unauthenticated, error_responses
from app.ingest import service
from app.ingest.repository import NodeState
from app.ingest.schemas import IngestBatch, IngestResult
from app.kit.body import BadEncoding, read_body
from app.kit.validation import PayloadInvalid

router = APIRouter(prefix="/api/v1", tags=["ingest"])

MAX_BODY_BYTES = 64 * 1024 * 1024


async def parse_batch(request: Request) -> IngestBatch:
    """The request body (JSON, optionally gzip) as a validated batch; 422 names each bad field."""
    body = await read_body(request, max_bytes=MAX_BODY_BYTES)
    try:
        return IngestBatch.model_validate_json(body)
    except ValidationError as e:
        raise PayloadInvalid.from_validation(e) from e


BatchDep = Annotated[IngestBatch, Depends(parse_batch)]


def get_ingest_node(request: Request, session: SessionDep) -> NodeState:
    """The node token in the Authorization header with its node and GPUs (one query)."""
    secret = bearer_secret(request.headers.get("authorization"))
    if secret is None:
        raise Unauthenticated("missing bearer node token")
    return service.authenticate(session, secret)


IngestAuth = Annotated[NodeState, Depends(get_ingest_node)]


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
def create_ingest(token: IngestAuth, batch: BatchDep, session: SessionDep) -> IngestResult:
    """Store one agent batch. Retries are safe: a sample is stored once per (GPU, time)."""
    return service.ingest_batch(session, token=token, batch=batch)
