"""422 answers that name each field that was wrong."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.errors import AppError


class PayloadInvalid(AppError):
    status_code = 422
    error = "invalid_payload"

    @classmethod
    def from_validation(cls, e: ValidationError) -> PayloadInvalid:
        return cls(summarize(e.errors()), detail=field_errors(e.errors()))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(body)"


def field_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            "field": _loc(tuple(err.get("loc", ()))),
            "message": err.get("msg", ""),
            "type": err.get("type"),
        }
        for err in errors
    ]


def summarize(errors: Any, limit: int = 5) -> str:
    parts = [f"{e['field']}: {e['message']}" for e in field_errors(errors)[:limit]]
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
