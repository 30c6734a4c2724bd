"""A finding's own record (``Finding.timeline``): its last spells and its sums per hour.

Spells are [first minute, opening minute, last minute held] in minutes since the epoch. Hours
hold what the finding's minutes add up to in that hour, and their cost from the ledger. Hours
the evaluator can no longer revisit are folded, oldest first, into ``base`` so the record stays
small; folding in time order keeps the float sums the same however often evaluation ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from app.findings.repository import LedgerHour

SUMS = ("minutes", "seconds", "util", "power", "energy", "unused", "io", "disk", "floor")
MAX_FIELDS = ("memory",)
FIELDS = SUMS + MAX_FIELDS
KEEP_SPELLS = 2  # always kept: the evaluator seeds from the latest spells
QUANTUM = Decimal("1e-18")


@dataclass
class HourSums:
    values: list[float]
    cost: Decimal | None = None  # the finding's cost in this hour (None: not priced)
    currency: str | None = None
    source: str | None = None  # the ledger's source; "unpriced" when it has no price
    rate: Decimal | None = None  # the GPU's price per observed second
    energy_rate: Decimal | None = None  # money per joule (on-prem: $/kWh x PUE)

    def to_json(self) -> list[Any]:
        return [
            *self.values,
            None if self.cost is None else format(self.cost, "f"),
            self.currency,
            self.source,
            None if self.rate is None else format(self.rate, "f"),
            None if self.energy_rate is None else format(self.energy_rate, "f"),
        ]

    @classmethod
    def from_json(cls, raw: list[Any]) -> HourSums:
        n = len(FIELDS)
        values = [float(v) for v in raw[:n]]
        cost, currency, source, rate, energy_rate = (list(raw[n:]) + [None] * 5)[:5]
        return cls(
            values,
            None if cost is None else Decimal(cost),
            currency,
            source,
            None if rate is None else Decimal(rate),
            None if energy_rate is None else Decimal(energy_rate),
        )


@dataclass
class Timeline:
    spells: list[list[int]] = field(default_factory=list)
    folded_spells: int = 0
    hours: dict[int, HourSums] = field(default_factory=dict)  # epoch hour -> sums
    base: list[float] = field(default_factory=lambda: [0.0] * len(FIELDS))
    base_cost: dict[str, str] = field(default_factory=dict)  # currency -> exact sum
    base_priced: dict[str, int] = field(default_factory=dict)  # source -> hours
    base_last: HourSums | None = None  # the newest folded hour (its prices)

    def to_json(self) -> dict[str, Any]:
        return {
            "spells": self.spells,
            "folded_spells": self.folded_spells,
            "hours": {str(h): s.to_json() for h, s in sorted(self.hours.items())},
            "base": self.base,
            "base_cost": self.base_cost,
            "base_priced": self.base_priced,
            "base_last": None if self.base_last is None else self.base_last.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Timeline:
        raw = raw or {}
        last = raw.get("base_last")
        return cls(
            spells=[list(s) for s in raw.get("spells", [])],
            folded_spells=int(raw.get("folded_spells", 0)),
            hours={int(h): HourSums.from_json(v) for h, v in raw.get("hours", {}).items()},
            base=[float(v) for v in raw.get("base", [0.0] * len(FIELDS))],
            base_cost=dict(raw.get("base_cost", {})),
            base_priced={k: int(v) for k, v in raw.get("base_priced", {}).items()},
            base_last=None if last is None else HourSums.from_json(last),
        )

    def fold(self, before_hour: int) -> None:
        """Move hours before ``before_hour`` into ``base`` (oldest first) and drop old spells."""
        for hour in sorted(h for h in self.hours if h < before_hour):
            s = self.hours.pop(hour)
            self.base = _add(self.base, s.values)
            if s.cost is not None and s.currency is not None:
                total = Decimal(self.base_cost.get(s.currency, "0")) + s.cost
                self.base_cost[s.currency] = format(total, "f")
            key = s.source or "unpriced"
            self.base_priced[key] = self.base_priced.get(key, 0) + 1
            self.base_last = s
        keep = [
            s
            for i, s in enumerate(self.spells)
            if i >= len(self.spells) - KEEP_SPELLS or s[2] >= before_hour * 60
        ]
        self.folded_spells += len(self.spells) - len(keep)
        self.spells = keep

    def totals(self) -> list[float]:
        """Every hour's sums, base first then the hours in time order."""
        out = list(self.base)
        for hour in sorted(self.hours):
            out = _add(out, self.hours[hour].values)
        return out


def _add(a: list[float], b: list[float]) -> list[float]:
    n = len(SUMS)
    return [x + y for x, y in zip(a[:n], b[:n], strict=True)] + [
        max(x, y) for x, y in zip(a[n:], b[n:], strict=True)
    ]


def hour_sums(
    keys: npt.NDArray[np.int64],
    hours: npt.NDArray[np.int64],
    values: dict[str, npt.NDArray[np.float64]],
) -> dict[tuple[int, int], list[float]]:
    """Per (finding key, epoch hour): the sums and maxima of the given minute values."""
    if keys.size == 0:
        return {}
    pairs = np.stack([keys, hours], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    cols = [np.bincount(inverse, weights=values[name], minlength=len(uniq)) for name in SUMS]
    for name in MAX_FIELDS:
        top = np.full(len(uniq), 0.0)
        np.maximum.at(top, inverse, values[name])
        cols.append(top)
    table = np.stack(cols, axis=1)
    return {(int(k), int(h)): table[i].tolist() for i, (k, h) in enumerate(uniq)}


def price_hour(sums: HourSums, ledger: LedgerHour | None, *, how: str) -> None:
    """Set the hour's cost from the GPU's ledger hour: idle time at the GPU's price per
    second, the unused share of it (``unused``), or energy at the on-prem energy price."""
    if ledger is None:
        sums.cost = sums.currency = sums.source = sums.rate = sums.energy_rate = None
        return
    sums.currency, sums.source = ledger.currency, ledger.source
    if ledger.source == "unpriced" or ledger.gpu_seconds <= 0:
        sums.cost = sums.rate = sums.energy_rate = None
        sums.source = "unpriced"
        return
    v = dict(zip(FIELDS, sums.values, strict=True))
    sums.rate = ledger.cost / Decimal(repr(ledger.gpu_seconds))
    sums.energy_rate = (
        ledger.energy_cost / Decimal(repr(ledger.energy_joules))
        if ledger.energy_joules > 0 and ledger.energy_cost > 0
        else None
    )
    if how == "energy" and ledger.source == "onprem" and sums.energy_rate is not None:
        amount = sums.energy_rate * Decimal(repr(v["energy"]))
    elif how == "unused":
        amount = sums.rate * Decimal(repr(v["unused"]))
    else:
        amount = sums.rate * Decimal(repr(v["seconds"]))
    sums.cost = amount.quantize(QUANTUM)


@dataclass(frozen=True)
class Cost:
    per_hour: Decimal | None
    so_far: Decimal | None
    currency: str | None
    source: str
    priced_hours: int
    unpriced_hours: int


def cost_of(timeline: Timeline, *, how: str) -> Cost:
    """The finding's cost so far (its priced hours, in the newest hour's currency) and per
    hour now (the newest priced hour's price, times the episode's unused share or power)."""
    hours: list[HourSums] = [timeline.hours[h] for h in sorted(timeline.hours)]
    priced = [s for s in hours if s.cost is not None]
    latest = priced[-1] if priced else timeline.base_last
    if latest is not None and latest.cost is None:
        latest = None
    unpriced = sum(1 for s in hours if s.cost is None) + timeline.base_priced.get("unpriced", 0)
    folded_priced = sum(v for k, v in timeline.base_priced.items() if k != "unpriced")
    if latest is None or latest.currency is None or latest.rate is None:
        return Cost(None, None, None, "unpriced", 0, unpriced + folded_priced)
    currency = latest.currency
    so_far = Decimal(timeline.base_cost.get(currency, "0"))
    for s in priced:
        if s.currency == currency and s.cost is not None:
            so_far += s.cost
    t = dict(zip(FIELDS, timeline.totals(), strict=True))
    if how == "energy" and latest.source == "onprem" and latest.energy_rate is not None:
        watts = t["energy"] / t["seconds"] if t["seconds"] else 0.0
        per_hour = latest.energy_rate * Decimal(repr(watts * 3600))
    elif how == "unused":
        share = t["unused"] / t["seconds"] if t["seconds"] else 0.0
        per_hour = latest.rate * Decimal(repr(share * 3600))
    else:
        per_hour = latest.rate * 3600
    return Cost(
        per_hour.quantize(QUANTUM),
        so_far.quantize(QUANTUM),
        currency,
        latest.source or "unpriced",
        len(priced) + folded_priced,
        unpriced,
    )


def spells_of(raw: Iterable[list[int]]) -> list[tuple[int, int, int]]:
    return [(int(a), int(b), int(c)) for a, b, c in raw]
