"""Build wire-format batches (schema version 1; see ``app/ingest/schemas.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1


def build_batch(
    *,
    node: dict[str, Any],
    gpus: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    host_samples: list[dict[str, Any]],
    batch_id: str | None = None,
) -> dict[str, Any]:
    """A batch ready to serialise; ``batch_id`` is the idempotency key of the whole batch."""
    return {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch_id or uuid.uuid4().hex,
        "sent_at": datetime.now(UTC).isoformat(),
        "node": {k: v for k, v in node.items() if v not in (None, {}, "")},
        "gpus": gpus,
        "samples": samples,
        "host_samples": host_samples,
    }
