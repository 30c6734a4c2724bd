"""The state machine's state at the start of a replay, rebuilt from the stored findings.

A replay starts at column ``p`` (an hour boundary at least ``minutes + gap_minutes`` before the
first minute not read yet). Everything the machine did before ``p`` is in the stored spells,
and the frame's minutes before ``p`` give what the spells do not record (the last minute held).
For each subject, the latest stored spell that began before ``p``:

- opened at or after ``p``: the run was pending at ``p`` (seed the pending run);
- opened before ``p`` and still held at ``p - 1`` or later: open at ``p``; the machine starts
  right after its last minute held before ``p``;
- ended before ``p``: the machine starts right after its last minute (it replays the resolve
  decision), or, when that lies before the frame, the finding is quiet (it can still reopen).

A run pending at ``p`` that no stored spell records cannot have qualified before the first
unread minute, so starting it at ``p`` gives the same (non-)finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.findings.state import HOLDS, Seeds
from app.findings.timeline import spells_of
from app.models import Finding


@dataclass(frozen=True)
class StoredSpell:
    start: int  # columns of the frame
    opened: int
    last: int
    finding: Finding
    index: int  # position among the finding's kept spells


@dataclass
class Context:
    """Per subject row: its stored spells, and the latest one that began before ``p``."""

    spells: dict[int, list[StoredSpell]]
    latest: dict[int, StoredSpell]
    replayed: set[int] = field(default_factory=set)  # rows whose latest spell the machine redoes


def context(stored: Sequence[tuple[int, Finding]], first_minute: int, p: int) -> Context:
    """Stored spells per subject row (``stored``: (row, finding)), as frame columns."""
    by_row: dict[int, list[StoredSpell]] = {}
    for row, finding in stored:
        raw = spells_of((finding.timeline or {}).get("spells", []))
        for i, (a, b, c) in enumerate(raw):
            spell = StoredSpell(a - first_minute, b - first_minute, c - first_minute, finding, i)
            by_row.setdefault(row, []).append(spell)
    latest = {}
    for row, spells in by_row.items():
        spells.sort(key=lambda s: s.start)
        before = [s for s in spells if s.start < p]
        if before:
            latest[row] = before[-1]
    return Context(by_row, latest)


def _last_held(held: npt.NDArray[np.bool_], lo: int, hi: int) -> int | None:
    lo = max(lo, 0)
    if hi <= lo:
        return None
    found = np.flatnonzero(held[lo:hi])
    return int(lo + found[-1]) if found.size else None


def build(ctx: Context, verdicts: npt.NDArray[np.int8], p: int) -> tuple[Seeds, list[Finding]]:
    """Seeds for every row, and the stored findings the seeds refer to (key = position)."""
    n = verdicts.shape[0]
    seeds = Seeds.idle(n, activate=p)
    findings: list[Finding] = []
    keys: dict[int, int] = {}

    def key_of(f: Finding) -> int:
        if id(f) not in keys:
            keys[id(f)] = len(findings)
            findings.append(f)
        return keys[id(f)]

    for row, s in ctx.latest.items():
        held = verdicts[row] == HOLDS
        if s.opened > p:  # pending at p
            previous = [x for x in ctx.spells[row] if x.finding is s.finding and x.start < s.start]
            if previous:
                seeds.finding[row] = key_of(s.finding)
                seeds.resolved[row] = previous[-1].last + 1
            seeds.run_start[row] = s.start
            ctx.replayed.add(row)
            last = _last_held(held, s.start, p)
            seeds.run_last[row] = s.start if last is None else last
            continue
        seeds.finding[row] = key_of(s.finding)
        seeds.spell_start[row] = s.start
        seeds.spell_opened[row] = s.opened
        if s.last >= p - 1:  # open at p
            last = _last_held(held, s.opened - 1, p)
            last = p - 1 if last is None else last
        elif s.last >= 0:  # ended before p: replay from its last minute
            last = s.last
        else:  # ended before the frame: resolved long enough ago
            seeds.resolved[row] = s.last + 1
            continue
        ctx.replayed.add(row)
        seeds.open[row] = True
        seeds.last_held[row] = last
        seeds.activate[row] = last + 1
    seeds.next_key = len(findings)
    return seeds, findings
