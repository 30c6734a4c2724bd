"""Findings: evaluate the minute rollups into open and resolved findings.

``evaluate`` is causal and idempotent: a finding's times depend only on the data, however often
and whenever it runs. Each pass replays a bounded window per node: from far enough before the
earliest minute it has not read (its cursor, or a minute the rollup rewrote since) to rebuild
the state machine's state there from the stored findings (``app.findings.reconcile``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.config import settings
from app.costs.ledger import node_infos
from app.findings import dirty, repository
from app.findings.reconcile import Step, StepStats, evaluate_step, lookback_minutes
from app.kit.timebuckets import HOUR, floor_hour, floor_minute, utc
from app.models import Finding, FindingCursor
from app.models.findings import OPEN

LOCK_KEY = 0x6670_6C65_6467  # "findings" evaluation, for pg_advisory_xact_lock
LATE_DATA_HOURS = 48  # rewritten minutes older than this are not re-evaluated (docs/findings.md)


@dataclass(frozen=True)
class EvaluateStats:
    """What one evaluation pass did."""

    window_start: datetime | None = None  # the earliest minute replayed
    window_end: datetime | None = None  # every minute before this is evaluated
    gpus: int = 0
    nodes: int = 0
    steps: int = 0
    opened: int = 0  # findings created
    updated: int = 0  # findings changed (times, state, evidence or cost)
    resolved: int = 0  # of which turned from open to resolved
    deleted: int = 0  # findings that late data showed never happened
    dirty: int = 0  # rewritten (node, minute) keys read
    seconds: float = 0.0
    open_by_kind: dict[str, int] = field(default_factory=dict)  # open after the pass, per kind


def evaluate(session: Session, *, now: datetime) -> EvaluateStats:
    """Evaluate every GPU and node up to the last whole minute before ``now``."""
    began = time.perf_counter()
    end = floor_minute(utc(now))
    if session.get_bind().dialect.name == "postgresql":
        # One pass at a time (a slow pass and the next beat); SQLite's write lock does this.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    until = dirty.cursor(session)
    if until is not None and end <= until:
        return EvaluateStats(window_end=until)  # evaluated already: the cursor never goes back
    earliest, keys = dirty.claim(session)
    if until is None:
        first = repository.earliest_minute(session)
        if first is None:
            _set_cursor(session, end, now)
            return EvaluateStats(window_end=end)
        until = max(
            floor_minute(first), end - timedelta(hours=settings.findings_initial_lookback_hours)
        )
    late_floor = end - timedelta(hours=LATE_DATA_HOURS)
    nodes, gpus = repository.nodes_and_gpus(session)
    starts: dict[datetime, list[int]] = defaultdict(list)
    for node in nodes:
        begin = until
        if node.node_id in earliest:
            begin = min(begin, max(earliest[node.node_id], late_floor))
        if begin < end:
            starts[begin].append(node.node_id)
    infos = node_infos(session)
    lookback = lookback_minutes()
    totals = StepStats()
    window_start: datetime | None = None
    steps = 0
    for begin, node_ids in sorted(starts.items()):
        wanted = set(node_ids)
        group_nodes = [n for n in nodes if n.node_id in wanted]
        group_gpus = [g for g in gpus if g.node_id in wanted]
        cursor = begin
        while cursor < end:
            stop = min(end, cursor + timedelta(minutes=settings.findings_window_minutes))
            # Hours no later pass can replay (late data older than the horizon is not re-read).
            fold_before = (
                floor_hour(stop - timedelta(hours=LATE_DATA_HOURS, minutes=lookback)) - HOUR
            )
            step = Step(
                nodes=group_nodes, gpus=group_gpus, infos=infos, begin=cursor, end=stop,
                fold_before=fold_before, now=utc(now),
            )  # fmt: skip
            stats = evaluate_step(session, step)
            totals = totals + stats
            window_start = min(filter(None, [window_start, stats.window_start]))
            cursor = stop
            steps += 1
    dirty.clear(session, keys)
    _set_cursor(session, end, now)
    session.flush()
    return EvaluateStats(
        window_start=window_start,
        window_end=end,
        gpus=len(gpus),
        nodes=len(nodes),
        steps=steps,
        opened=totals.opened,
        updated=totals.updated,
        resolved=totals.resolved,
        deleted=totals.deleted,
        dirty=len(keys),
        seconds=round(time.perf_counter() - began, 3),
        open_by_kind=_open_by_kind(session),
    )


def _open_by_kind(session: Session) -> dict[str, int]:
    stmt = select(Finding.kind, func.count()).where(Finding.state == OPEN).group_by(Finding.kind)
    return {kind: int(n) for kind, n in session.execute(stmt)}


def _set_cursor(session: Session, end: datetime, now: datetime) -> None:
    row = session.get(FindingCursor, dirty.CURSOR)
    if row is None:
        session.add(FindingCursor(name=dirty.CURSOR, evaluated_until=end, updated_at=utc(now)))
    elif row.evaluated_until != end:
        row.evaluated_until = end
        row.updated_at = utc(now)
