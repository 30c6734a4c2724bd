"""Shared FastAPI dependencies: the session and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Role
from app.db import get_session
from app.errors import Forbidden, Unauthenticated
from app.models import ApiKey

SESSION_COOKIE = "gpuledger_key"

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def bearer_secret(header: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def require_role(role: Role) -> Callable[[Request, Session], ApiKey]:
    """A dependency that admits API keys (header or sign-in cookie) whose role allows ``role``."""

    def dependency(request: Request, session: SessionDep) -> ApiKey:
        secret = bearer_secret(request.headers.get("authorization")) or request.cookies.get(
            SESSION_COOKIE
        )
        if not secret:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        key = auth_service.authenticate_key(session, secret)
        if not auth_service.role_allows(key.role, role):
            raise Forbidden(f"this route needs the {role.value} role; the key has {key.role}")
        return key

    return dependency


ViewerAuth = Annotated[ApiKey, Depends(require_role(Role.VIEWER))]
AdminAuth = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]


def request_now() -> datetime:
    """The time of the request; tests override this dependency to pin it."""
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(request_now)]
