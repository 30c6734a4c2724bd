"""Node tokens and API keys: random secrets shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Unauthenticated
from app.models import ApiKey, Node, NodeToken

NODE_TOKEN_PREFIX = "gpln_"  # noqa: S105  (a public prefix, not a secret)
API_KEY_PREFIX = "gplk_"


class Role(StrEnum):
    VIEWER = "viewer"
    FINANCE = "finance"
    SRE = "sre"
    ADMIN = "admin"


# viewer < finance/sre < admin: finance and sre are peers, each with its own areas.
ROLE_RANK = {Role.VIEWER: 0, Role.FINANCE: 1, Role.SRE: 1, Role.ADMIN: 2}


def role_allows(held: str, needed: Role) -> bool:
    """Whether a key of role ``held`` may use a route that needs ``needed``."""
    try:
        have = Role(held)
    except ValueError:
        return False
    if have == needed or have == Role.ADMIN:
        return True
    if needed == Role.VIEWER:
        return True
    return ROLE_RANK[have] > ROLE_RANK[needed]


def hash_secret(secret: str) -> str:
    # The secrets are 256-bit random strings, so a fast hash is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSecret:
    id: int
    secret: str


def _now() -> datetime:
    return datetime.now(UTC)


def ensure_node(session: Session, *, name: str) -> Node:
    """The node called ``name``, created if GPU Ledger has not heard of it yet."""
    node = session.scalars(select(Node).where(Node.name == name)).one_or_none()
    if node is None:
        node = Node(name=name, labels={}, created_at=_now())
        session.add(node)
        session.flush()
    return node


def create_node_token(session: Session, *, node_name: str) -> IssuedSecret:
    """Issue a token that may ingest for ``node_name`` only."""
    node = ensure_node(session, name=node_name)
    secret = NODE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = NodeToken(
        node_id=node.id, token_hash=hash_secret(secret), prefix=secret[:12], created_at=_now()
    )
    session.add(token)
    session.flush()
    return IssuedSecret(token.id, secret)


def create_api_key(session: Session, *, name: str, role: Role) -> IssuedSecret:
    """Issue an API key with ``role``."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        role=role.value,
        key_hash=hash_secret(secret),
        prefix=secret[:12],
        created_at=_now(),
    )
    session.add(key)
    session.flush()
    return IssuedSecret(key.id, secret)


def authenticate_node(session: Session, secret: str) -> NodeToken:
    """The live token matching ``secret``; raises Unauthenticated."""
    token = session.scalars(
        select(NodeToken).where(NodeToken.token_hash == hash_secret(secret))
    ).one_or_none()
    if token is None or token.revoked_at is not None:
        raise Unauthenticated("invalid node token")
    return token


def authenticate_key(session: Session, secret: str) -> ApiKey:
    """The live API key matching ``secret``; raises Unauthenticated."""
    key = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_secret(secret))
    ).one_or_none()
    if key is None or key.revoked_at is not None:
        raise Unauthenticated("invalid API key")
    return key
