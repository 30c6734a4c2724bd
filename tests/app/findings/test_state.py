"""The state machine alone: minimum duration, gaps, hysteresis, reopening, split runs."""

from __future__ import annotations

import numpy as np

from app.findings.state import NONE, Seeds, Spell, run_machine

CODES = {".": 0, "C": 1, "R": 2}  # unknown, condition holds, condition clears


def _run(pattern: str, *, minutes: int = 5, gap: int = 2, resolve: int = 2, quiet: int = 3,
         seeds: Seeds | None = None) -> list[Spell]:  # fmt: skip
    verdicts = np.array([[CODES[c] for c in pattern]], dtype=np.int8)
    t = verdicts.shape[1]
    timing = {
        name: np.full((1, t), value, dtype=np.int64)
        for name, value in (("minutes", minutes), ("gap_minutes", gap),
                            ("resolve_minutes", resolve), ("quiet_minutes", quiet))
    }  # fmt: skip
    return run_machine(verdicts, timing, seeds or Seeds.idle(1)).spells


def test_opens_after_the_minimum_duration_and_resolves_after_a_clear_streak() -> None:
    (spell,) = _run("CCCCCCCRRRR")
    assert (spell.start, spell.opened, spell.last, spell.open) == (0, 5, 6, False)


def test_a_run_shorter_than_the_minimum_never_opens() -> None:
    assert _run("CCCCRRRRCCCCRRRR") == []


def test_a_gap_shorter_than_gap_minutes_does_not_break_a_run() -> None:
    (spell,) = _run("CCCRCCCCRR")
    assert (spell.start, spell.opened) == (0, 5)


def test_a_gap_of_gap_minutes_starts_the_run_again() -> None:
    (spell,) = _run("CCCRRCCCCCRR")
    assert (spell.start, spell.opened, spell.last) == (5, 10, 9)


def test_one_clearing_minute_inside_an_open_finding_is_not_enough_to_resolve() -> None:
    (spell,) = _run("CCCCCCRCCCC")
    assert (spell.last, spell.open) == (10, True)


def test_without_evidence_either_way_it_resolves_after_the_minimum_duration() -> None:
    (spell,) = _run("CCCCCC.....CC")
    assert (spell.last, spell.open) == (5, False)  # resolved_at = the end of minute 5


def test_a_recurrence_within_the_quiet_period_reopens_the_same_finding() -> None:
    first, second = _run("CCCCCCRRCCCCCC", quiet=5)
    assert first.key == second.key
    assert (first.open, second.open, second.new) == (False, True, False)


def test_a_recurrence_after_the_quiet_period_is_a_new_finding() -> None:
    first, second = _run("CCCCCCRRRRCCCCCCRR", quiet=3)
    assert first.key != second.key
    assert second.new


def test_running_in_pieces_with_the_state_carried_gives_the_same_spells() -> None:
    pattern = "CCCCCCRCCCRRRRCCC.CCCCRR"
    whole = _run(pattern)
    seeds = Seeds.idle(1, activate=11)
    # The state after column 10 of the pattern: open since 5, last held 9, one clear.
    seeds.finding[0], seeds.open[0], seeds.last_held[0] = 0, True, 9
    seeds.clear_streak[0], seeds.spell_start[0], seeds.spell_opened[0] = 1, 0, 5
    seeds.next_key = 1
    tail = _run(pattern, seeds=seeds)
    assert len(whole) == 2
    assert [(s.start, s.opened, s.last, s.open) for s in tail] == [
        (s.start, s.opened, s.last, s.open) for s in whole
    ]
    assert seeds.run_start[0] == NONE
