"""Scoring detector findings against a labelled fleet (``bench.fleet_truth``): pure functions.

A finding matches a label of its kind on the same GPU (node, for stale_agent) when their
intervals overlap. ``score`` counts per kind; ``summarize`` adds misses by the label's case and
false findings by what the fleet was doing.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.fleet_truth import KINDS, Fleet, Label

MAIN_KINDS = ("idle_allocated", "idle_unallocated", "data_starvation", "energy_waste")


@dataclass(frozen=True)
class FoundEpisode:
    """A finding as the scorer needs it; times are the node's (``end``: exclusive)."""

    kind: str
    node: str
    gpu_uuid: str | None
    start: datetime
    opened_at: datetime
    end: datetime
    cost: Decimal | None = None
    excess_kwh: float | None = None  # energy_waste: the evidence's energy above the idle floor


@dataclass
class KindScore:
    findings: int = 0
    labels: int = 0
    matched_findings: int = 0
    matched_labels: int = 0
    detect_minutes: list[float] = field(default_factory=list)
    found_cost: Decimal = Decimal(0)
    expected_cost: Decimal = Decimal(0)
    matched_found_cost: Decimal = Decimal(0)
    matched_expected_cost: Decimal = Decimal(0)
    # label case -> [cost of the matched findings, expected cost of the matched labels]
    case_costs: dict[str, list[Decimal]] = field(default_factory=dict)
    matched_found_kwh: float = 0.0
    matched_expected_kwh: float = 0.0
    costed: bool = False
    undecided: int = 0  # findings on episodes the window's end leaves undecided (not scored)
    merged: int = 0  # findings that match more than one label (episodes joined into one)
    missed: list[Label] = field(default_factory=list)
    false: list[FoundEpisode] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.matched_findings / self.findings if self.findings else None

    @property
    def recall(self) -> float | None:
        return self.matched_labels / self.labels if self.labels else None

    @property
    def median_detect_min(self) -> float | None:
        return statistics.median(self.detect_minutes) if self.detect_minutes else None

    @property
    def dollar_error(self) -> float | None:
        """Over all findings and labels of the kind: what a report of the waste would be off by."""
        if not self.costed or not self.expected_cost:
            return None
        return float(abs(self.found_cost - self.expected_cost) / self.expected_cost)

    @property
    def matched_dollar_error(self) -> float | None:
        """Over matched findings and labels only: the costing, apart from what was missed."""
        if not self.costed or not self.matched_expected_cost:
            return None
        return float(
            abs(self.matched_found_cost - self.matched_expected_cost) / self.matched_expected_cost
        )

    @property
    def kwh_error(self) -> float | None:
        """Signed error of the matched findings' excess energy (energy_waste)."""
        if not self.matched_expected_kwh:
            return None
        return (self.matched_found_kwh - self.matched_expected_kwh) / self.matched_expected_kwh

    @property
    def dollar_error_by_case(self) -> dict[str, float]:
        """Signed (found - expected) / expected of the matched pairs, by the label's case."""
        return {case: float((found - expected) / expected)
                for case, (found, expected) in sorted(self.case_costs.items()) if expected}  # fmt: skip


def _subject(kind: str, node: str, gpu_uuid: str | None) -> tuple[str, str]:
    return (kind, node if kind == "stale_agent" else gpu_uuid or "")


def score(
    found: Iterable[FoundEpisode],
    labels: Iterable[Label],
    kinds: Sequence[str] = KINDS,
    undecided: Iterable[Label] = (),
) -> dict[str, KindScore]:
    """Match findings to labels (same kind and GPU, or node for stale_agent; overlapping).

    A finding that matches no label but overlaps an ``undecided`` one (an episode still too
    short when the window ends) is not scored: it is counted in ``undecided`` only."""
    out = {k: KindScore() for k in kinds}
    pending: dict[tuple[str, str], list[Label]] = {}
    for lb in undecided:
        pending.setdefault(_subject(lb.kind, lb.node, lb.gpu_uuid), []).append(lb)
    by_subject: dict[tuple[str, str], list[Label]] = {}
    for label in labels:
        if label.kind not in out:
            continue
        s = out[label.kind]
        s.labels += 1
        if label.expected_cost is not None:
            s.costed = True
            s.expected_cost += label.expected_cost
        by_subject.setdefault(_subject(label.kind, label.node, label.gpu_uuid), []).append(label)
    first_open: dict[int, datetime] = {}  # id(label) -> earliest opened_at of its findings
    matched_by: dict[int, Label] = {}
    for f in found:
        if f.kind not in out:
            continue
        s = out[f.kind]
        subject = _subject(f.kind, f.node, f.gpu_uuid)
        hits = [lb for lb in by_subject.get(subject, []) if f.start < lb.end and lb.start < f.end]
        if not hits and any(
            f.start < lb.end and lb.start < f.end for lb in pending.get(subject, [])
        ):
            s.undecided += 1
            continue
        s.findings += 1
        s.found_cost += f.cost or 0
        if not hits:
            s.false.append(f)
            continue
        s.matched_findings += 1
        s.matched_found_cost += f.cost or 0
        s.merged += len(hits) > 1
        # A finding spanning several labels: its cost goes to their cases by expected cost.
        weights = [lb.expected_cost or Decimal(0) for lb in hits]
        total = sum(weights, Decimal(0))
        for lb, w in zip(hits, weights, strict=True):
            share = w / total if total else Decimal(1) / len(hits)
            s.case_costs.setdefault(lb.case, [Decimal(0), Decimal(0)])[0] += (f.cost or 0) * share
        s.matched_found_kwh += f.excess_kwh or 0.0
        for lb in hits:
            matched_by[id(lb)] = lb
            if id(lb) not in first_open or f.opened_at < first_open[id(lb)]:
                first_open[id(lb)] = f.opened_at
    for subject_labels in by_subject.values():
        for lb in subject_labels:
            s = out[lb.kind]
            if id(lb) not in matched_by:
                s.missed.append(lb)
                continue
            s.matched_labels += 1
            s.matched_expected_cost += lb.expected_cost or 0
            s.case_costs.setdefault(lb.case, [Decimal(0), Decimal(0)])[1] += lb.expected_cost or 0
            s.matched_expected_kwh += lb.excess_kwh or 0.0
            # A label that an open finding already covered counts as detected at once.
            s.detect_minutes.append(max(0.0, (first_open[id(lb)] - lb.start).total_seconds() / 60))
    return out


def false_case(fleet: Fleet, f: FoundEpisode) -> str:
    """What the fleet was doing during a false finding: the GPU's commonest phase (true time),
    or for a node, its hard case (an agent restart, a clock offset) or "reporting"."""
    offset = timedelta(seconds=next(p.offset_seconds for p in fleet.nodes if p.name == f.node))
    start, end = f.start - offset, f.end - offset
    if f.gpu_uuid is None:
        cases = [
            e.case
            for e in fleet.negatives
            if e.node == f.node and e.gpu_uuid is None and e.start < end and start < e.end
        ]
        return sorted(cases, key=lambda c: c == "clock_offset")[0] if cases else "reporting"
    mix = fleet.phase_minutes(f.gpu_uuid, start, end)
    return max(mix, key=lambda p: mix[p]) if mix else "outside the window"


def summarize(fleet: Fleet, scores: dict[str, KindScore]) -> dict[str, dict[str, Any]]:
    """Per kind: the figures, plus misses by label case and false findings by phase."""
    out: dict[str, dict[str, Any]] = {}
    for kind, s in scores.items():
        out[kind] = {
            "precision": _round(s.precision, 3),
            "recall": _round(s.recall, 3),
            "median_detect_min": _round(s.median_detect_min, 1),
            "dollar_error": _round(s.dollar_error, 3),
            "matched_dollar_error": _round(s.matched_dollar_error, 3),
            "dollar_error_by_case": {c: round(e, 3) for c, e in s.dollar_error_by_case.items()},
            "excess_kwh_error": _round(s.kwh_error, 3),
            "findings": s.findings,
            "labels": s.labels,
            "undecided": s.undecided,
            "merged": s.merged,
            "missed": dict(Counter(lb.case for lb in s.missed).most_common()),
            "false": dict(Counter(false_case(fleet, f) for f in s.false).most_common()),
        }
    return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def phase_mix(fleet: Fleet, f: FoundEpisode) -> str:
    if f.gpu_uuid is None:
        return false_case(fleet, f)
    offset = timedelta(seconds=next(p.offset_seconds for p in fleet.nodes if p.name == f.node))
    mix = fleet.phase_minutes(f.gpu_uuid, f.start - offset, f.end - offset)
    return ", ".join(f"{phase} {n} min" for phase, n in sorted(mix.items(), key=lambda kv: -kv[1]))
