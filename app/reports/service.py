"""The spend report: ledger sums for a period and the one before it, the bills' GPU coverage,
the daily breakdown, the owners whose GPUs idled most and the nodes that could not be priced."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.costs import scalesets
from app.costs import service as costs_service
from app.costs.ledger import GPU_COMPONENTS, effective_rows, import_currencies
from app.costs.service import Sums
from app.kit.timebuckets import utc
from app.models import BillingLineItem
from app.reports.types import (
    NO_TELEMETRY,
    Amounts,
    Coverage,
    DailyCost,
    EstimatedNode,
    OwnerIdle,
    SpendLine,
    SpendReport,
    UnpricedNode,
)

TOP_OWNERS = 10
SECONDS_PER_HOUR = Decimal(3600)
JOULES_PER_KWH = Decimal(3_600_000)


def previous_period(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month before a calendar month; otherwise the same length just before."""
    first, last = start.astimezone(tz), end.astimezone(tz)
    midnight = time(0)
    if first.day == 1 and first.time() == midnight and last.day == 1 and last.time() == midnight:
        months = (last.year - first.year) * 12 + last.month - first.month
        if months >= 1:
            year, month = first.year, first.month - months
            while month < 1:
                year, month = year - 1, month + 12
            begin = datetime(year, month, 1, tzinfo=tz)
            return begin.astimezone(UTC), start
    return start - (end - start), start


def _amounts(by_source: dict[str, Sums]) -> Amounts:
    total = Sums()
    for s in by_source.values():
        total.gpu_seconds += s.gpu_seconds
        total.energy_joules += s.energy_joules
        for m, v in s.money.items():
            total.money[m] += v
    unpriced = by_source.get("unpriced")
    return Amounts(
        gpu_hours=Decimal(str(total.gpu_seconds)) / SECONDS_PER_HOUR,
        cost=total.money["cost"],
        billed=by_source["billed"].money["cost"] if "billed" in by_source else Decimal(0),
        estimated=by_source["estimated"].money["cost"] if "estimated" in by_source else Decimal(0),
        onprem=by_source["onprem"].money["cost"] if "onprem" in by_source else Decimal(0),
        unpriced_gpu_hours=(
            Decimal(str(unpriced.gpu_seconds)) / SECONDS_PER_HOUR if unpriced else Decimal(0)
        ),
        utilized=total.money["utilized_cost"],
        idle=total.money["idle_cost"],
        unused=total.money["unused_cost"],
        unmeasured=total.money["unmeasured_cost"],
        energy_kwh=Decimal(str(total.energy_joules)) / JOULES_PER_KWH,
        energy_cost=total.money["energy_cost"],
    )


def unmatched_gpu_spend(
    session: Session, *, start: datetime, end: datetime, zone: ZoneInfo
) -> dict[tuple[str, date], Decimal]:
    """Per currency and day (in ``zone``, of the row's start), the bills' GPU instance rows in
    [start, end) that match no node (a row crossing an edge counts for its share of time).
    Read through a small partial index."""
    li = BillingLineItem
    currencies = import_currencies(session)
    stmt = select(
        li.import_id, li.x_dataset, li.x_source_system, li.charge_period_start,
        li.charge_period_end, li.effective_cost, li.x_exchange_rate, li.x_resource_key,
    ).where(
        li.node_id.is_(None), li.x_gpu_count > 0, li.charge_period_end > start,
        li.charge_period_start < end, li.x_cost_component.in_(GPU_COMPONENTS),
    )  # fmt: skip
    totals: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    # Scale-set rows that the ledger splits over their instances are billed, not unmatched.
    rows = scalesets.unsplit_rows(session, effective_rows(session.execute(stmt).all()))
    for import_id, _, _, lo, hi, amount, rate, _ in rows:
        value = amount * rate
        if lo < start or hi > end:
            overlap = min(hi, end) - max(lo, start)
            value = value * Decimal(overlap.total_seconds()) / Decimal((hi - lo).total_seconds())
        day = max(lo, start).astimezone(zone).date()
        totals[currencies.get(import_id, "USD"), day] += value
    return totals


def spend_report(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    label: str,
    group_by: tuple[str, ...],
    now: datetime,
) -> SpendReport:
    """The GPU spend report for [start, end), with the previous period to compare with."""
    start, end, zone = utc(start), utc(end), ZoneInfo(tz)
    # One read of the period gives the lines and the daily breakdown: by day in UTC (day
    # totals), by hour in other zones (their days do not start at UTC midnight).
    utc_days = all(zone.utcoffset(t.replace(tzinfo=None)) == timedelta(0) for t in (start, end))
    when = "day" if utc_days else "hour"
    sums = costs_service.sum_ledger(session, start=start, end=end, hourly=not utc_days,
                                    keys=[*group_by, "currency", "source", when])  # fmt: skip
    by_group: dict[tuple[Any, ...], dict[str, Sums]] = defaultdict(dict)
    daily: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for key, part in sums.items():
        *group, currency, source, at = key
        by_group[(*group, currency)].setdefault(source, Sums()).merge(part)
        name = tuple(str(v) for v in group)
        daily[(at.astimezone(zone).date(), name, currency)] += part.money["cost"]
    prev_start, prev_end = previous_period(start, end, zone)
    previous = costs_service.sum_ledger(session, start=prev_start, end=prev_end,
                                        keys=[*group_by, "currency"])  # fmt: skip
    lines = [
        SpendLine(tuple(str(k) for k in key[:-1]), key[-1], _amounts(parts),
                  previous[key].money["cost"] if key in previous else None)
        for key, parts in by_group.items()
    ]  # fmt: skip
    observed: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        observed[line.currency] += line.amounts.billed
    unmatched: dict[str, Decimal] = defaultdict(Decimal)
    no_telemetry = (NO_TELEMETRY,) + ("",) * (len(group_by) - 1)
    for (currency, day), value in unmatched_gpu_spend(
        session, start=start, end=end, zone=zone
    ).items():
        unmatched[currency] += value
        daily[(day, no_telemetry, currency)] += value
    coverage = []
    for currency in sorted(set(observed) | set(unmatched)):
        seen, unseen = observed.get(currency, Decimal(0)), unmatched.get(currency, Decimal(0))
        if seen or unseen:
            coverage.append(Coverage(currency, seen + unseen, seen, unseen))
        if unseen:
            lines.append(SpendLine(no_telemetry, currency, Amounts(cost=unseen, billed=unseen)))
    lines.sort(key=lambda line: (line.currency, -line.amounts.cost, line.key))
    totals: dict[str, Amounts] = {}
    for line in lines:
        a, t = line.amounts, totals.get(line.currency, Amounts())
        totals[line.currency] = Amounts(**{
            f: getattr(t, f) + getattr(a, f) for f in Amounts.__dataclass_fields__
        })  # fmt: skip
    notes = costs_service.pricing_notes(session, start=start, end=end)
    return SpendReport(
        start=start, end=end, tz=tz, label=label, group_by=group_by, generated_at=now,
        previous_start=prev_start, previous_end=prev_end, lines=lines, totals=totals,
        daily=[DailyCost(d, g, cur, cost) for (d, g, cur), cost in sorted(daily.items())],
        top_idle_owners=_top_owners(session, start, end), coverage=coverage,
        unpriced_nodes=[UnpricedNode(n.node, n.detail or "", n.gpu_hours) for n in notes
                        if n.source == "unpriced"],
        estimated_nodes=[EstimatedNode(n.node, n.detail or "", n.gpu_hours) for n in notes
                         if n.source == "estimated"],
    )  # fmt: skip


def _top_owners(session: Session, start: datetime, end: datetime) -> list[OwnerIdle]:
    sums = costs_service.sum_ledger(session, start=start, end=end,
                                    keys=["owner", "team", "currency"],
                                    where=lambda m: [m.owner != ""], largest="idle_cost",
                                    limit=TOP_OWNERS,
                                    columns=["idle_cost", "gpu_seconds"])  # fmt: skip
    return [  # ranked by sum_ledger, largest idle cost first
        OwnerIdle(owner, team, cur, s.money["idle_cost"],
                  Decimal(str(s.gpu_seconds)) / SECONDS_PER_HOUR)
        for (owner, team, cur), s in sums.items()
        if s.money["idle_cost"] > 0
    ]  # fmt: skip
