"""Read side of findings: the filtered, newest-first list, one finding with the series behind it,
and the open findings grouped for /metrics."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.findings.schemas import (
    FindingDetail,
    FindingLinks,
    FindingPage,
    FindingRead,
)
from app.findings.series import read_series
from app.kit.money import money_str
from app.kit.timebuckets import MINUTE, utc
from app.models import Finding, Gpu, Node
from app.models.findings import OPEN

API_PATH = "/api/v1/findings"
PAGE_PATH = "/findings"


class FindingNotFound(NotFound):
    """No finding has this id."""

    error = "finding_not_found"


class BadCursor(AppError):
    """The cursor was not given out by this API."""

    status_code = 400
    error = "bad_cursor"


@dataclass(frozen=True)
class FindingFilter:
    """What ``list_findings`` keeps; None means any. The window keeps findings active in it."""

    kind: str | None = None
    state: str | None = None
    team: str | None = None
    node: str | None = None
    gpu: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def _select() -> Select[Finding, str, str, int]:
    return (
        select(Finding, Node.name, Gpu.uuid, Gpu.index)
        .join(Node, Node.id == Finding.node_id)
        .outerjoin(Gpu, Gpu.id == Finding.gpu_id)
    )


def _conditions(f: FindingFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.kind is not None:
        out.append(Finding.kind == f.kind)
    if f.state is not None:
        out.append(Finding.state == f.state)
    if f.team is not None:
        out.append(Finding.team == f.team)
    if f.node is not None:
        out.append(Node.name == f.node)
    if f.gpu is not None:
        out.append(Gpu.uuid == f.gpu)
    # Active in [start, end): began before the end, and not resolved before the start.
    if f.end is not None:
        out.append(Finding.started_at < utc(f.end))
    if f.start is not None:
        out.append(or_(Finding.resolved_at.is_(None), Finding.resolved_at > utc(f.start)))
    return out


def encode_cursor(opened_at: datetime, finding_id: int) -> str:
    raw = json.dumps([utc(opened_at).isoformat(), finding_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, finding_id = json.loads(raw)
        return utc(datetime.fromisoformat(at)), int(finding_id)
    except (binascii.Error, ValueError, TypeError) as e:
        raise BadCursor(f"unreadable cursor {cursor!r}: pass next_cursor as given") from e


def list_findings(
    session: Session,
    *,
    filters: FindingFilter,
    limit: int,
    cursor: str | None = None,
    now: datetime,
) -> FindingPage:
    """Findings newest first (by opened_at, then id), a keyset page at a time."""
    conditions = _conditions(filters)
    total = session.scalar(
        select(func.count())
        .select_from(Finding)
        .join(Node, Node.id == Finding.node_id)
        .outerjoin(Gpu, Gpu.id == Finding.gpu_id)
        .where(*conditions)
    )
    stmt = _select().where(*conditions)
    if cursor is not None:
        # Keyset, not offset: findings opened meanwhile do not shift the later pages.
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(Finding.opened_at < at, and_(Finding.opened_at == at, Finding.id < last_id))
        )
    rows = session.execute(
        stmt.order_by(Finding.opened_at.desc(), Finding.id.desc()).limit(limit + 1)
    ).all()
    items = [_read(f, node, uuid, index, now=now) for f, node, uuid, index in rows[:limit]]
    last = rows[limit - 1][0] if len(rows) > limit else None
    return FindingPage(
        items=items,
        total=total or 0,
        limit=limit,
        next_cursor=encode_cursor(last.opened_at, last.id) if last is not None else None,
        next=None,
    )


def get_finding(session: Session, *, finding_id: int, now: datetime) -> FindingDetail:
    """One finding with its evidence and the GPU's and node's minutes around it."""
    row = session.execute(_select().where(Finding.id == finding_id)).one_or_none()
    if row is None:
        raise FindingNotFound(f"no finding {finding_id}")
    finding, node, uuid, index = row
    read = _read(finding, node, uuid, index, now=now)
    series = read_series(
        session,
        gpu_id=finding.gpu_id,
        node_id=finding.node_id,
        start=finding.started_at,
        end=episode_end(finding),
        now=now,
    )
    return FindingDetail(**read.model_dump(), evidence=finding.evidence or {}, series=series)


def load_finding(session: Session, *, finding_id: int, now: datetime) -> FindingRead:
    """The finding as the list shows it (after an ack or a snooze)."""
    row = session.execute(_select().where(Finding.id == finding_id)).one_or_none()
    if row is None:
        raise FindingNotFound(f"no finding {finding_id}")
    finding, node, uuid, index = row
    return _read(finding, node, uuid, index, now=now)


def episode_end(finding: Finding) -> datetime:
    """Where the evidence ends: the resolution, or the end of the last minute seen."""
    return finding.resolved_at or finding.last_seen_at + MINUTE


def _money(value: Decimal | None, currency: str | None) -> str | None:
    return None if value is None or currency is None else money_str(value, currency)


def _read(
    f: Finding, node: str, uuid: str | None, index: int | None, *, now: datetime
) -> FindingRead:
    snoozed_until = f.snoozed_until
    return FindingRead(
        id=f.id,
        kind=f.kind,
        state=f.state,
        node=node,
        gpu_uuid=uuid,
        gpu_index=index,
        team=f.team or None,
        owner=f.owner or None,
        started_at=f.started_at,
        opened_at=f.opened_at,
        last_seen_at=f.last_seen_at,
        resolved_at=f.resolved_at,
        duration_seconds=(episode_end(f) - f.started_at).total_seconds(),
        cost_per_hour=_money(f.cost_per_hour, f.currency),
        cost_so_far=_money(f.cost_so_far, f.currency),
        currency=f.currency,
        cost_source=f.cost_source,
        acked=f.acked_at is not None,
        acked_at=f.acked_at,
        acked_by=f.acked_by,
        snoozed=snoozed_until is not None and snoozed_until > now,
        snoozed_until=snoozed_until,
        links=FindingLinks(self=f"{API_PATH}/{f.id}", page=f"{PAGE_PATH}/{f.id}"),
    )


@dataclass(frozen=True)
class OpenGroup:
    kind: str
    team: str
    currency: str | None
    findings: int
    cost_per_hour: float | None  # summed over the group's priced findings


def open_findings_by_group(session: Session) -> list[OpenGroup]:
    """Open findings counted, and their cost per hour summed, by kind, team and currency."""
    rows: list[Any] = list(
        session.execute(
            select(
                Finding.kind,
                Finding.team,
                Finding.currency,
                func.count(),
                func.sum(Finding.cost_per_hour),
            )
            .where(Finding.state == OPEN)
            .group_by(Finding.kind, Finding.team, Finding.currency)
        ).all()
    )
    return [
        OpenGroup(kind, team or "", currency, int(n), None if cost is None else float(cost))
        for kind, team, currency, n, cost in rows
    ]
