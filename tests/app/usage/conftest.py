"""Helpers for usage tests: ingest wire batches straight through the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch, IngestResult

Ingest = Callable[[dict[str, Any]], IngestResult]


@pytest.fixture
def ingest(session: Session) -> Ingest:
    """Store a wire batch for its node (a token is made on first use)."""
    tokens: dict[str, str] = {}

    def run(batch: dict[str, Any]) -> IngestResult:
        name = batch["node"]["name"]
        if name not in tokens:
            tokens[name] = auth_service.create_node_token(session, node_name=name).secret
        token = auth_service.authenticate_node(session, tokens[name])
        return ingest_service.ingest_batch(
            session, token=token, batch=IngestBatch.model_validate(batch)
        )

    return run
