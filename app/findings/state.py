"""The findings state machine: per-minute verdicts to episodes, for many subjects at once.

Per subject (a GPU or a node, for one kind), minute by minute:

- **pending**: a run of minutes where the condition holds, tolerating fewer than ``gap_minutes``
  minutes in a row without it; it dies at that many, and becomes a finding when it has lasted
  ``minutes`` (first to last minute held): ``opened`` = the minute after that.
- **open**: every minute where the condition holds extends it; it resolves at the end of its
  last such minute once ``resolve_minutes`` minutes in a row clear it (hysteresis) or once the
  condition has not held for ``minutes`` (no evidence either way, e.g. no data).
- **quiet**: a resolved finding whose next qualifying run begins less than ``quiet_minutes``
  after its resolution reopens it (the same finding, a new spell); a later one is a new finding.

Every transition depends only on the minutes before it, so running the machine over a frame in
one go or in pieces (with the state carried over) gives the same spells. Columns are minutes
since the frame's start; a seed may point before it (negative columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NONE = -(1 << 40)  # "no such column"
HOLDS, CLEARS = 1, 2
Cols = npt.NDArray[np.int64]


@dataclass
class Seeds:
    """Each subject's state when the machine starts on it, at column ``activate``."""

    activate: Cols
    finding: Cols  # key of the finding it is in (open or quiet), -1 for none
    open: npt.NDArray[np.bool_]
    last_held: Cols  # open: the last minute held
    clear_streak: Cols  # open: minutes in a row that cleared, up to now
    resolved: Cols  # quiet: the column of resolved_at
    run_start: Cols  # pending: first minute of the run
    run_last: Cols  # pending: its last minute held
    spell_start: Cols  # open: the open spell's first minute
    spell_opened: Cols  # and the column it opened at
    next_key: int = 0  # keys of new findings start here

    @classmethod
    def idle(cls, n: int, *, activate: int = 0, next_key: int = 0) -> Seeds:
        """Nothing pending, open or quiet, for ``n`` subjects."""

        def none() -> Cols:
            return np.full(n, NONE, dtype=np.int64)

        return cls(
            activate=np.full(n, activate, dtype=np.int64),
            finding=np.full(n, -1, dtype=np.int64),
            open=np.zeros(n, dtype=bool),
            last_held=none(),
            clear_streak=np.zeros(n, dtype=np.int64),
            resolved=none(),
            run_start=none(),
            run_last=none(),
            spell_start=none(),
            spell_opened=none(),
            next_key=next_key,
        )


@dataclass(frozen=True)
class Spell:
    """A stretch of a finding from the first minute of its run to its last minute held."""

    row: int
    key: int  # the finding
    start: int  # column of the run's first minute
    opened: int  # column at which it opened (the minute after it had lasted long enough)
    last: int  # column of the last minute held
    open: bool  # still open at the end of the frame
    new: bool  # this spell began the finding (not a continuation or a reopening)


@dataclass
class MachineResult:
    spells: list[Spell]
    new_findings: int  # keys next_key .. next_key + new_findings - 1 were handed out


def run_machine(
    verdicts: npt.NDArray[np.int8],
    timing: dict[str, Cols],
    seeds: Seeds,
) -> MachineResult:
    """Run every subject (row) over the frame's minutes (columns) from its seed."""
    n, t = verdicts.shape
    minutes, gap = timing["minutes"], timing["gap_minutes"]
    resolve, quiet = timing["resolve_minutes"], timing["quiet_minutes"]
    finding = seeds.finding.copy()
    is_open = seeds.open.copy()
    last_held = seeds.last_held.copy()
    streak = seeds.clear_streak.copy()
    resolved = seeds.resolved.copy()
    run_start = seeds.run_start.copy()
    run_last = seeds.run_last.copy()
    next_key = seeds.next_key
    # The open spell of each subject: [start, opened, last, new], closed into ``spells``.
    current: dict[int, list[int]] = {
        int(r): [int(seeds.spell_start[r]), int(seeds.spell_opened[r]), int(last_held[r]), 0]
        for r in np.flatnonzero(is_open)
    }
    spells: list[Spell] = []
    first = int(seeds.activate.min()) if n else t
    for i in range(max(first, 0), t):
        active = seeds.activate <= i
        v = verdicts[:, i]
        holds = active & (v == HOLDS)
        m_i, g_i, k_i, q_i = minutes[:, i], gap[:, i], resolve[:, i], quiet[:, i]
        # Open findings: a held minute extends, clearing minutes count towards resolving.
        was_open = is_open & active
        extend = was_open & holds
        last_held[extend] = i
        streak[extend] = 0
        streak[was_open & (v == CLEARS)] += 1
        streak[was_open & (v != HOLDS) & (v != CLEARS)] = 0
        ends = was_open & ~holds & ((streak >= k_i) | (i - last_held >= m_i))
        for r in np.flatnonzero(ends):
            s = current.pop(int(r))
            spells.append(Spell(int(r), int(finding[r]), s[0], s[1], s[2], False, bool(s[3])))
        for r in np.flatnonzero(extend):
            current[int(r)][2] = i
        is_open[ends] = False
        resolved[ends] = last_held[ends] + 1
        # Quiet findings end when nothing pending can reopen them any more.
        closed = active & ~is_open
        expire = closed & (finding >= 0) & (run_start == NONE) & (i >= resolved + q_i)
        finding[expire] = -1
        # Pending runs: start, extend, qualify or die.
        held = closed & holds
        run_start[held & (run_start == NONE)] = i
        run_last[held] = i
        qualify = held & (i - run_start + 1 >= m_i)
        for r in np.flatnonzero(qualify):
            new = bool(finding[r] < 0)
            if new:
                finding[r] = next_key
                next_key += 1
            current[int(r)] = [int(run_start[r]), i + 1, i, int(new)]
        is_open[qualify] = True
        last_held[qualify] = i
        streak[qualify] = 0
        run_start[qualify] = NONE
        die = closed & ~holds & (run_start != NONE) & (i - run_last >= g_i)
        run_start[die] = NONE
    for row, s in sorted(current.items()):
        spells.append(Spell(row, int(finding[row]), s[0], s[1], s[2], True, bool(s[3])))
    spells.sort(key=lambda s: (s.row, s.start))
    return MachineResult(spells, next_key - seeds.next_key)
