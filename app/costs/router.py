"""Costs API: GPU spend over a window, grouped, with idle and unused shares."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from app.costs import service
from app.deps import SessionDep, ViewerAuth
from app.errors import AppError

router = APIRouter(prefix="/api/v1", tags=["costs"])


def money(value: Decimal) -> str:
    """The exact amount as plain decimal text: no exponent, no trailing zeros, no rounding
    (rounding each group separately would break "the groups add up to the total")."""
    return f"{value.normalize():f}"


class BadWindow(AppError):
    status_code = 400
    error = "bad_window"


@router.get("/costs")
def get_costs(
    session: SessionDep,
    _key: ViewerAuth,
    start: Annotated[AwareDatetime, Query(alias="from", description="ISO 8601 with offset")],
    end: Annotated[AwareDatetime, Query(alias="to", description="ISO 8601 with offset")],
    group_by: Literal["team", "project", "cluster", "instance_type", "node"] = "team",
) -> dict[str, object]:
    """GPU cost in [from, to) by group; the groups add up to ``total``."""
    if end <= start:
        raise BadWindow("'to' must be after 'from'")
    report = service.cost_report(session, start=start, end=end, group_by=group_by)
    return {
        "group_by": report.group_by,
        "from": report.start,
        "to": report.end,
        "total": money(report.total),
        "billed_total": money(report.billed_total),
        "groups": {k: {n: money(v) for n, v in g.items()} for k, g in report.groups.items()},
    }
