"""Progress of running imports: Redis when configured (the worker is another process), else memory."""

from __future__ import annotations

import json
import threading
from typing import Any

from app.config import settings

_KEY = "gpuledger:billing:progress:{}"
_TTL_SECONDS = 24 * 3600
_local: dict[int, dict[str, Any]] = {}
_lock = threading.Lock()


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url or "")


def set_progress(import_id: int, **values: Any) -> None:
    if settings.redis_url:
        _redis().set(_KEY.format(import_id), json.dumps(values), ex=_TTL_SECONDS)
        return
    with _lock:
        _local[import_id] = values


def get_progress(import_id: int) -> dict[str, Any] | None:
    if settings.redis_url:
        raw = _redis().get(_KEY.format(import_id))
        return json.loads(raw) if raw else None
    with _lock:
        return _local.get(import_id)
