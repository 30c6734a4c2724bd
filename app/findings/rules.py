"""The finding kinds, their parameters (defaults from the settings) and per-team overrides."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.config import settings

IDLE_ALLOCATED = "idle_allocated"
IDLE_UNALLOCATED = "idle_unallocated"
DATA_STARVATION = "data_starvation"
ENERGY_WASTE = "energy_waste"
STALE_AGENT = "stale_agent"
GPU_KINDS = (IDLE_ALLOCATED, IDLE_UNALLOCATED, DATA_STARVATION, ENERGY_WASTE)
NODE_KINDS = (STALE_AGENT,)
EVALUATED_KINDS = GPU_KINDS + NODE_KINDS
# Named in the schema, not evaluated yet: they need clock-event reasons, XID and ECC counters
# from the raw samples (throttling, hardware) or a day of hourly memory peaks (oversized).
LATER_KINDS = ("oversized", "throttling", "hardware")
KINDS = EVALUATED_KINDS + LATER_KINDS

# Timing shared by every kind: minutes to open, resolve streak, tolerated gap, reopen quiet.
TIMING = ("minutes", "resolve_minutes", "gap_minutes", "quiet_minutes")
# stale_agent's minimum duration is intervals x the node's sampling interval (capped here, so
# that the evaluator's look-back stays bounded).
MAX_STALE_INTERVAL_SECONDS = 60.0


def _defaults() -> dict[str, dict[str, float]]:
    s = settings
    timing = {
        "resolve_minutes": s.findings_resolve_minutes,
        "gap_minutes": s.findings_gap_minutes,
        "quiet_minutes": s.findings_reopen_quiet_minutes,
    }
    idle = {
        "utilization_percent": s.findings_idle_utilization_percent,
        "resolve_utilization_percent": s.findings_idle_resolve_utilization_percent,
    }
    return {
        IDLE_ALLOCATED: {"minutes": s.findings_idle_allocated_minutes, **idle, **timing},
        IDLE_UNALLOCATED: {"minutes": s.findings_idle_unallocated_minutes, **idle, **timing},
        DATA_STARVATION: {
            "minutes": s.findings_starvation_minutes,
            "utilization_percent": s.findings_starvation_utilization_percent,
            "sawtooth_percent": s.findings_starvation_sawtooth_percent,
            "io_ratio": s.findings_starvation_io_ratio,
            "io_resolve_ratio": s.findings_starvation_io_resolve_ratio,
            "disk_ceiling_ratio": s.findings_starvation_disk_ceiling_ratio,
            "disk_min_bytes_per_second": s.findings_starvation_disk_min_bytes_per_second,
            **timing,
        },
        ENERGY_WASTE: {
            "minutes": s.findings_energy_minutes,
            "utilization_percent": s.findings_energy_utilization_percent,
            "resolve_utilization_percent": s.findings_idle_utilization_percent,
            "margin_watts": s.findings_energy_margin_watts,
            "margin_ratio": s.findings_energy_margin_ratio,
            **timing,
        },
        STALE_AGENT: {
            "intervals": s.findings_stale_intervals,
            "interval_seconds": s.findings_stale_interval_seconds,
            "resolve_minutes": 1,
            "gap_minutes": 1,
            "quiet_minutes": s.findings_reopen_quiet_minutes,
        },
    }


class BadOverride(ValueError):
    """``findings_overrides`` names a kind or a parameter that does not exist."""


@dataclass(frozen=True)
class KindParams:
    """One kind's parameters per team: ``values[name][team]`` and ``muted[team]``."""

    kind: str
    teams: tuple[str, ...]
    values: dict[str, npt.NDArray[np.float64]]
    muted: npt.NDArray[np.bool_]

    def of(self, name: str, team_index: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
        """The parameter for every cell of a (subject x minute) array of team indexes."""
        return self.values[name][team_index]

    def timing(self, team_index: npt.NDArray[np.int32]) -> dict[str, npt.NDArray[np.int64]]:
        """Minimum, resolve, gap and quiet minutes per cell (at least 1, quiet at least 0)."""
        out = {}
        for name in TIMING:
            if name == "minutes" and self.kind == STALE_AGENT:
                continue
            low = 0 if name == "quiet_minutes" else 1
            out[name] = np.maximum(np.rint(self.of(name, team_index)), low).astype(np.int64)
        return out

    def longest(self, name: str) -> int:
        """The largest value of a timing parameter over all teams (for the look-back)."""
        if name == "minutes" and self.kind == STALE_AGENT:
            # A node's measured interval may reach the cap, whatever the setting says.
            seconds = self.values["intervals"] * MAX_STALE_INTERVAL_SECONDS
            return math.ceil(float(np.max(seconds)) / 60)
        return math.ceil(float(np.max(self.values[name])))


def defaults(kind: str) -> dict[str, float]:
    """The settings' parameters of ``kind`` before any team override."""
    return dict(_defaults()[kind])


def check_overrides(overrides: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Raise ``BadOverride`` for a kind or parameter that GPU Ledger does not know."""
    table = _defaults()
    for team, kinds in overrides.items():
        for kind, params in kinds.items():
            if kind not in KINDS:
                raise BadOverride(f"findings_overrides[{team!r}]: unknown kind {kind!r}")
            known = set(table.get(kind, {})) | {"mute"}
            unknown = sorted(set(params) - known)
            if unknown:
                raise BadOverride(
                    f"findings_overrides[{team!r}][{kind!r}]: unknown {', '.join(unknown)}; "
                    f"one of {', '.join(sorted(known))}"
                )


def kind_params(
    kind: str,
    teams: Sequence[str],
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> KindParams:
    """``kind``'s parameters for each of ``teams``, the settings' overrides applied."""
    overrides = settings.findings_overrides if overrides is None else overrides
    check_overrides(overrides)
    base = _defaults()[kind]
    values = {name: np.full(len(teams), float(v)) for name, v in base.items()}
    muted = np.zeros(len(teams), dtype=bool)
    for i, team in enumerate(teams):
        for name, value in overrides.get(team, {}).get(kind, {}).items():
            if name == "mute":
                muted[i] = bool(value)
            else:
                values[name][i] = float(value)
    return KindParams(kind, tuple(teams), values, muted)
