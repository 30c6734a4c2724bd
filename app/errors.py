"""Errors the API renders as ``{"error": ..., "detail": ...}``.

AppError (500)
├── Unauthenticated (401)   no credential, or one that matches nothing
├── Forbidden (403)         a valid credential that may not do this
├── NotFound (404)
│   └── NodeNotFound
├── Conflict (409)
└── PayloadTooLarge (413)
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 500
    error = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthenticated(AppError):
    status_code = 401
    error = "unauthenticated"


class Forbidden(AppError):
    status_code = 403
    error = "forbidden"


class NotFound(AppError):
    status_code = 404
    error = "not_found"


class NodeNotFound(NotFound):
    error = "node_not_found"


class Conflict(AppError):
    status_code = 409
    error = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    error = "payload_too_large"


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route that may raise ``errors``."""
    return {e.status_code: {"description": e.__doc__ or e.error} for e in errors}
