"""Findings API: list and read findings (viewer); acknowledge and snooze them (sre, admin)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from app.auth.service import Role
from app.deps import NowDep, SessionDep, ViewerAuth, require_role
from app.errors import Forbidden, Unauthenticated, error_responses
from app.findings import actions, queries
from app.findings.queries import BadCursor, FindingFilter, FindingNotFound
from app.findings.schemas import FindingDetail, FindingPage, FindingRead, SnoozeRequest
from app.kit.validation import PayloadInvalid
from app.models import ApiKey
from app.reports.period import BadPeriod, parse_instant, zone

router = APIRouter(prefix="/api/v1", tags=["findings"])
# Acting on findings is operations' work: sre (and admin, who may do anything); finance, a peer
# of sre, reads them like a viewer.
SreAuth = Annotated[ApiKey, Depends(require_role(Role.SRE))]


DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@router.get(
    "/findings",
    response_model=FindingPage,
    responses=error_responses(Unauthenticated, Forbidden, BadPeriod, BadCursor),
)
def list_findings(
    request: Request,
    session: SessionDep,
    _key: ViewerAuth,
    now: NowDep,
    kind: Annotated[str | None, Query(description="e.g. idle_allocated, data_starvation")] = None,
    state: Literal["open", "resolved"] | None = None,
    team: str | None = None,
    node: Annotated[str | None, Query(description="node name")] = None,
    gpu: Annotated[str | None, Query(description="GPU UUID")] = None,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="findings still active at or after this: a date (the start of that day "
            "in tz) or ISO 8601 with offset",
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="findings begun before this: a date (that day included) or ISO 8601 "
            "with offset",
        ),
    ] = None,
    tz: Annotated[str, Query(description="IANA zone plain dates are read in")] = "UTC",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> FindingPage:
    """Findings, newest opened first, with their cost and links to their evidence."""
    zone_info = zone(tz)
    lo = parse_instant(start, tz=zone_info) if start else None
    hi = parse_instant(end, tz=zone_info, end=True) if end else None
    if lo is not None and hi is not None and hi <= lo:
        raise BadPeriod("'to' must be after 'from'")
    filters = FindingFilter(kind=kind, state=state, team=team, node=node, gpu=gpu, start=lo, end=hi)
    page = queries.list_findings(session, filters=filters, limit=limit, cursor=cursor, now=now)
    if page.next_cursor is not None:
        url = request.url.include_query_params(cursor=page.next_cursor)
        page.next = f"{url.path}?{url.query}"
    return page


@router.get(
    "/findings/{finding_id}",
    response_model=FindingDetail,
    responses=error_responses(Unauthenticated, Forbidden, FindingNotFound),
)
def get_finding(
    finding_id: int, session: SessionDep, _key: ViewerAuth, now: NowDep
) -> FindingDetail:
    """One finding: its evidence, and its GPU's and node's rollups around the episode."""
    return queries.get_finding(session, finding_id=finding_id, now=now)


@router.post(
    "/findings/{finding_id}/ack",
    response_model=FindingRead,
    responses=error_responses(Unauthenticated, Forbidden, FindingNotFound),
)
def ack_finding(finding_id: int, session: SessionDep, key: SreAuth, now: NowDep) -> FindingRead:
    """Acknowledge a finding, recording the API key's name and the time (sre or admin)."""
    return actions.ack_finding(session, finding_id=finding_id, key=key, now=now)


@router.post(
    "/findings/{finding_id}/snooze",
    response_model=FindingRead,
    responses=error_responses(Unauthenticated, Forbidden, FindingNotFound, PayloadInvalid),
)
def snooze_finding(
    finding_id: int, body: SnoozeRequest, session: SessionDep, _key: SreAuth, now: NowDep
) -> FindingRead:
    """Snooze a finding until ``until`` (with an offset, in the future) (sre or admin)."""
    return actions.snooze_finding(session, finding_id=finding_id, until=body.until, now=now)
