"""Costs API: GPU spend over a window from the cost ledger, grouped, with its utilized, idle,
unused and unmeasured shares."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.costs import service
from app.costs.engine import efficiency
from app.deps import SessionDep, ViewerAuth
from app.errors import AppError, Forbidden, Unauthenticated, error_responses
from app.kit.money import money_str, round_columns
from app.reports.period import BadPeriod, parse_instant, zone

router = APIRouter(prefix="/api/v1", tags=["costs"])


class BadWindow(AppError):
    status_code = 400
    error = "bad_window"


@router.get("/costs", responses=error_responses(Unauthenticated, Forbidden, BadWindow, BadPeriod))
def get_costs(
    session: SessionDep,
    _key: ViewerAuth,
    start: Annotated[
        str,
        Query(alias="from", description="a date (start of that day in tz) or ISO 8601 with offset"),
    ],
    end: Annotated[
        str, Query(alias="to", description="a date (that day included) or ISO 8601 with offset")
    ],
    group_by: Literal["team", "project", "cluster", "instance_type", "node"] = "team",
    tz: Annotated[str, Query(description="IANA zone plain dates are read in")] = "UTC",
    currency: Annotated[
        str | None,
        Query(min_length=3, max_length=3, description="default: the window's main currency"),
    ] = None,
) -> dict[str, object]:
    """GPU cost in [from, to) by group, rounded to the currency's minor unit so that the groups
    add up to ``total`` exactly; ``exact`` keeps the unrounded figures for reconciliation.
    ``efficiency``: utilized / (cost - unmeasured), null when no cost was measured."""
    zone_info = zone(tz)
    lo, hi = parse_instant(start, tz=zone_info), parse_instant(end, tz=zone_info, end=True)
    if hi <= lo:
        raise BadWindow("'to' must be after 'from'")
    report = service.cost_report(
        session,
        start=lo,
        end=hi,
        group_by=group_by,
        currency=currency.upper() if currency else None,
    )
    names = sorted(report.groups)
    rounded = round_columns({n: report.groups[n] for n in names}, service.AMOUNTS, report.currency)
    groups: dict[str, dict[str, object]] = {
        n: {c: format(v, "f") for c, v in rounded[n].items()} for n in names
    }
    for n in names:
        for q in service.QUANTITIES:
            groups[n][q] = format(report.groups[n][q].quantize(_QUANTITY), "f")
        groups[n]["efficiency"] = _efficiency(report.groups[n])
        groups[n]["exact"] = {c: _exact(report.groups[n][c]) for c in service.AMOUNTS}
    return {
        "group_by": report.group_by,
        "from": lo,
        "to": hi,
        "currency": report.currency,
        "other_currencies": report.other_currencies,
        "total": money_str(report.total["cost"], report.currency),
        "totals": {c: money_str(report.total[c], report.currency) for c in service.AMOUNTS}
        | {q: format(report.total[q].quantize(_QUANTITY), "f") for q in service.QUANTITIES}
        | {"efficiency": _efficiency(report.total)},
        "exact_total": _exact(report.total["cost"]),
        "groups": groups,
        "pricing": [
            {
                "node": p.node,
                "source": p.source,
                "gpu_hours": format(p.gpu_hours, "f"),
                "detail": p.detail,
            }
            for p in report.pricing
        ],
    }


_QUANTITY = Decimal("0.0001")  # GPU-hours and kWh: four places


def _exact(value: object) -> str:
    return f"{value:f}"


def _efficiency(amounts: dict[str, Decimal]) -> float | None:
    value = efficiency(amounts["utilized_cost"], amounts["cost"], amounts["unmeasured_cost"])
    return None if value is None else float(value.quantize(_RATIO))


_RATIO = Decimal("0.0001")  # as the spend report's JSON
