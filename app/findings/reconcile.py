"""One evaluation step for a group of nodes: load a frame, replay each kind from its seeds and
write the findings the replay changes (new, continued, reopened, resolved or retracted)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.config import settings
from app.costs.engine import NodeInfo
from app.findings import evidence as ev
from app.findings import repository, seeds
from app.findings.detectors import (
    HOLDS,
    SAWTOOTH_MINUTES,
    Verdict,
    data_starvation,
    energy_waste,
    idle_allocated,
    idle_unallocated,
    stale_agent,
)
from app.findings.frames import Frame, load_frame
from app.findings.repository import GpuInfo, NodeRow, minute_of
from app.findings.rules import (
    DATA_STARVATION,
    ENERGY_WASTE,
    EVALUATED_KINDS,
    IDLE_ALLOCATED,
    IDLE_UNALLOCATED,
    STALE_AGENT,
    KindParams,
    kind_params,
)
from app.findings.state import Spell, run_machine
from app.findings.timeline import hour_sums
from app.kit.timebuckets import HOUR, floor_hour
from app.models import Finding


@dataclass(frozen=True)
class Step:
    nodes: list[NodeRow]
    gpus: list[GpuInfo]
    infos: Mapping[int, NodeInfo]
    begin: datetime  # the first minute not evaluated (or rewritten) for these nodes
    end: datetime  # evaluate every minute before this
    fold_before: datetime  # hours before this are folded into the findings' base sums
    now: datetime  # updated_at of what changes


@dataclass(frozen=True)
class StepStats:
    window_start: datetime | None = None
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    deleted: int = 0

    def __add__(self, other: StepStats) -> StepStats:
        starts = [t for t in (self.window_start, other.window_start) if t is not None]
        return StepStats(
            min(starts) if starts else None,
            self.opened + other.opened,
            self.updated + other.updated,
            self.resolved + other.resolved,
            self.deleted + other.deleted,
        )


def lookback_minutes() -> int:
    """Minutes a replay starts before the first unread minute: the longest minimum duration
    plus gap of any kind and team (a run pending there is then recorded in a stored spell)."""
    teams = [*settings.findings_overrides, ""]
    longest = 0
    for kind in EVALUATED_KINDS:
        params = kind_params(kind, teams)
        longest = max(longest, params.longest("minutes") + params.longest("gap_minutes"))
    return longest


def quiet_minutes() -> int:
    teams = [*settings.findings_overrides, ""]
    return max(kind_params(k, teams).longest("quiet_minutes") for k in EVALUATED_KINDS)


def _verdict(kind: str, frame: Frame, params: KindParams) -> Verdict:
    if kind == IDLE_ALLOCATED:
        return idle_allocated(frame.gpu, params)
    if kind == IDLE_UNALLOCATED:
        return idle_unallocated(frame.gpu, params)
    if kind == DATA_STARVATION:
        return data_starvation(frame.gpu, frame.host, params)
    if kind == ENERGY_WASTE:
        return energy_waste(frame.gpu, params)
    return stale_agent(frame.host, params)


def evaluate_step(session: Session, step: Step) -> StepStats:
    """Replay every kind over the step's frame and write what changed."""
    lookback = lookback_minutes()
    replay = floor_hour(step.begin - timedelta(minutes=lookback))
    start = replay - timedelta(minutes=lookback + SAWTOOTH_MINUTES)
    frame = load_frame(
        session, nodes=step.nodes, gpus=step.gpus, infos=step.infos, start=start, end=step.end
    )
    first = minute_of(start)
    p = minute_of(replay) - first
    since = start - timedelta(minutes=quiet_minutes()) - HOUR
    stored = repository.findings_near(session, list(frame.node_index), EVALUATED_KINDS, since)
    stats = StepStats(window_start=replay)
    for kind in EVALUATED_KINDS:
        mine = [f for f in stored if f.kind == kind and (f.timeline or {}).get("spells")]
        stats = stats + _evaluate_kind(session, step, frame, kind, mine, p)
    return stats


def _row_of(frame: Frame, kind: str, finding: Finding) -> int | None:
    if kind == STALE_AGENT:
        return frame.node_index.get(finding.node_id) if finding.gpu_id is None else None
    return None if finding.gpu_id is None else frame.gpu_index.get(finding.gpu_id)


def _evaluate_kind(
    session: Session, step: Step, frame: Frame, kind: str, stored: list[Finding], p: int
) -> StepStats:
    first = minute_of(frame.start)
    rows = [(r, f) for f in stored if (r := _row_of(frame, kind, f)) is not None]
    ctx = seeds.context(rows, first, p)
    if kind == STALE_AGENT:
        for row, spells in ctx.spells.items():  # a stored silence began after a report
            frame.host.known[row, max(spells[0].start, 0) :] = True
    params = kind_params(kind, frame.teams)
    verdict = _verdict(kind, frame, params)
    seed, context = seeds.build(ctx, verdict.verdicts, p)
    result = run_machine(verdict.verdicts, verdict.timing, seed)
    by_key: dict[int, list[Spell]] = {}
    for s in result.spells:
        by_key.setdefault(s.key, []).append(s)
    sums = _accumulate(frame, kind, verdict, result.spells, p)
    plan = _plan(ctx, rows, context, by_key, p)
    writer = ev.Writer(
        session=session, frame=frame, kind=kind, params=params, first=first, p=p,
        fold_before=minute_of(step.fold_before) // 60, now=step.now,
    )  # fmt: skip
    out = writer.apply(plan, sums)
    return StepStats(None, out.opened, out.updated, out.resolved, out.deleted)


def _plan(
    ctx: seeds.Context,
    rows: list[tuple[int, Finding]],
    context: list[Finding],
    by_key: dict[int, list[Spell]],
    p: int,
) -> ev.Plan:
    """Which finding each replayed spell belongs to, what each stored finding keeps, and
    which stored findings the replay no longer produces."""
    keyed = {id(f): k for k, f in enumerate(context)}
    fresh = {k: spells for k, spells in by_key.items() if k >= len(context)}
    plan = ev.Plan()
    for row, f in sorted(rows, key=lambda rf: (rf[0], rf[1].started_at)):
        latest = ctx.latest.get(row)
        spells = [s for s in ctx.spells[row] if s.finding is f]
        kept = [
            (s.start, s.opened, s.last)
            for s in spells
            if s.start < p and not (row in ctx.replayed and latest and s.start == latest.start)
        ]
        key = keyed.get(id(f))
        if key is None and (spells[0].start >= p or (latest is not None and latest.finding is f)):
            # It began in the replayed span (or was pending at its start): the replayed finding
            # that overlaps it is the same one, moved by late data; none: it never happened.
            key = _overlapping(fresh, row, spells[0].start, spells[-1].last)
        if key is None:
            continue  # entirely before the replay: final
        replayed = fresh.pop(key, []) if key >= len(context) else by_key.get(key, [])
        if not kept and not replayed:
            plan.delete.append(f)
        else:
            plan.update.append(ev.Planned(row, f, kept, replayed, key))
    for key, new in sorted(fresh.items()):
        plan.create.append(ev.Planned(new[0].row, None, [], new, key))
    return plan


def _overlapping(fresh: dict[int, list[Spell]], row: int, start: int, last: int) -> int:
    """The earliest new finding of ``row`` whose span meets [start, last]; -1 for none."""
    for key, spells in sorted(fresh.items(), key=lambda kv: kv[1][0].start):
        if spells[0].row == row and spells[0].start <= last and spells[-1].last >= start:
            return key
    return -1


def _accumulate(
    frame: Frame, kind: str, verdict: Verdict, spells: list[Spell], p: int
) -> dict[tuple[int, int], list[float]]:
    """Per (machine key, epoch hour): the sums of the finding's minutes from column ``p``."""
    n, t = verdict.verdicts.shape
    owner = np.full((n, t), -1, dtype=np.int64)
    for s in spells:
        lo, hi = max(s.start, p), s.last + 1
        if hi > lo:
            owner[s.row, lo:hi] = s.key
    cells = (owner >= 0) & (verdict.verdicts == HOLDS)
    r, c = np.nonzero(cells)
    keys = owner[r, c]
    hours = (minute_of(frame.start) + c) // 60
    return hour_sums(keys, hours, _values(frame, kind, r, c))


def _values(
    frame: Frame, kind: str, r: npt.NDArray[np.int64], c: npt.NDArray[np.int64]
) -> dict[str, npt.NDArray[np.float64]]:
    zeros = np.zeros(len(r))
    if kind == STALE_AGENT:
        return {"minutes": np.ones(len(r)), "seconds": zeros + 60.0, "util": zeros,
                "power": zeros, "energy": zeros, "unused": zeros, "io": zeros, "disk": zeros,
                "floor": zeros, "memory": zeros}  # fmt: skip
    g = frame.gpu

    def cell(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.nan_to_num(a[r, c], nan=0.0)

    seconds = cell(g.observed)
    util = cell(g.utilization)
    out: dict[str, Any] = {
        "minutes": np.ones(len(r)),
        "seconds": seconds,
        "util": util,
        "power": cell(g.power),
        "energy": cell(g.energy),
        "unused": seconds * np.clip(1.0 - util / 100.0, 0.0, 1.0),
        "io": cell(frame.io),
        "disk": np.nan_to_num(frame.host.disk_read[g.node[r], c], nan=0.0),
        "floor": cell(g.idle_floor) * seconds,
        "memory": cell(g.memory),
    }
    return out
