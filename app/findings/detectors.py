"""Detectors: pure functions from minute series to per-minute verdicts, and to intervals.

Every detector reads (subject x minute) arrays, column 0 being the first minute of the frame,
and says for each minute whether its condition holds (``HOLDS``), clearly does not (``CLEARS``:
the evidence that resolves a finding, e.g. utilization back above the resolve threshold) or
neither (``UNKNOWN``: no data, or in the hysteresis band). The state machine
(``app.findings.state``) turns verdicts into episodes: minimum duration, tolerated gaps,
resolve streaks, reopening. Every verdict depends only on the minute and the minutes before it,
so evaluating a longer or a shorter window gives the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from app.findings.rules import (
    DATA_STARVATION,
    ENERGY_WASTE,
    IDLE_ALLOCATED,
    IDLE_UNALLOCATED,
    MAX_STALE_INTERVAL_SECONDS,
    STALE_AGENT,
    KindParams,
)
from app.findings.state import Seeds, Spell, run_machine

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int32]
Verdicts = npt.NDArray[np.int8]

UNKNOWN, HOLDS, CLEARS = 0, 1, 2
SAWTOOTH_MINUTES = 5  # the trailing window whose spread of minute means shows a saw-tooth


@dataclass
class GpuMinutes:
    """Per GPU (rows) and minute (columns): the minute rollups, NaN/False where none."""

    start: datetime  # the minute of column 0
    present: Bools  # the GPU reported in the minute (it has a minute rollup)
    utilization: Floats  # mean percent
    utilization_max: Floats
    power: Floats  # mean watts
    memory: Floats  # max bytes used
    energy: Floats  # joules
    observed: Floats  # seconds covered by samples
    held: Bools  # a job, pod or process held the GPU for most of the minute
    team: Ints  # index into the frame's team names
    node: Ints  # per GPU (1-D): its node's row in ``HostMinutes``
    idle_floor: Floats  # the GPU model's idle power, watts (NaN: unknown)


@dataclass
class HostMinutes:
    """Per node (rows) and minute (columns): the host minute rollups, NaN/False where none."""

    start: datetime
    present: Bools  # the node sent anything for the minute (host or GPU samples)
    known: Bools  # the node had reported at or before the minute
    iowait: Floats  # ratio 0-1, mean
    pressure: Floats  # PSI "some" for I/O, ratio 0-1, mean (NaN where not reported)
    disk_read: Floats  # bytes/s, the minute's highest rate
    disk_ceiling: Floats  # bytes/s, the node's highest rate in the week before the hour
    interval: Floats  # seconds between the node's samples, as last seen
    team: Ints  # index into the frame's team names


@dataclass
class Verdict:
    """One kind's verdicts for a frame, with the timing the state machine needs per cell."""

    kind: str
    verdicts: Verdicts
    timing: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)


def _mute(verdicts: Verdicts, params: KindParams, team: Ints) -> Verdicts:
    # A muted kind clears: an open finding of a team that mutes the kind resolves.
    return np.where(params.muted[team], np.int8(CLEARS), verdicts).astype(np.int8)


def _verdicts(present: Bools, holds: Bools, clears: Bools) -> Verdicts:
    out = np.zeros(present.shape, dtype=np.int8)
    out[present & clears] = CLEARS
    out[present & holds] = HOLDS
    return out


def idle_allocated(gpu: GpuMinutes, params: KindParams) -> Verdict:
    """Held (job, pod or process) and utilization below the threshold."""
    util = gpu.utilization
    with np.errstate(invalid="ignore"):
        holds = gpu.held & (util < params.of("utilization_percent", gpu.team))
        clears = ~gpu.held | (util >= params.of("resolve_utilization_percent", gpu.team))
    out = _mute(_verdicts(gpu.present, holds, clears), params, gpu.team)
    return Verdict(IDLE_ALLOCATED, out, params.timing(gpu.team))


def idle_unallocated(gpu: GpuMinutes, params: KindParams) -> Verdict:
    """Reporting (powered), no holder and no process, not computing."""
    util = gpu.utilization
    with np.errstate(invalid="ignore"):
        busy = util >= params.of("utilization_percent", gpu.team)
        holds = ~gpu.held & ~busy
        clears = gpu.held | (util >= params.of("resolve_utilization_percent", gpu.team))
    out = _mute(_verdicts(gpu.present, holds, clears), params, gpu.team)
    return Verdict(IDLE_UNALLOCATED, out, params.timing(gpu.team))


def trailing_spread(values: Floats, minutes: int = SAWTOOTH_MINUTES) -> Floats:
    """Standard deviation of each cell and the ``minutes - 1`` before it (NaN-aware; NaN
    where fewer than three values): how much the minute means swing."""
    n, t = values.shape
    ok = ~np.isnan(values)
    x = np.where(ok, values, 0.0)
    pad = np.zeros((n, 1))
    c1 = np.concatenate([pad, np.cumsum(x, axis=1)], axis=1)
    c2 = np.concatenate([pad, np.cumsum(x * x, axis=1)], axis=1)
    cn = np.concatenate([pad, np.cumsum(ok, axis=1)], axis=1)
    hi = np.arange(1, t + 1)
    lo = np.maximum(hi - minutes, 0)
    count = cn[:, hi] - cn[:, lo]
    s1 = c1[:, hi] - c1[:, lo]
    s2 = c2[:, hi] - c2[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        var = np.maximum(s2 / count - mean * mean, 0.0)
    return np.where(count >= 3, np.sqrt(var), np.nan)


def io_bound(host: HostMinutes, params: KindParams, team: Ints, node: Ints) -> tuple[Bools, Bools]:
    """Per GPU cell: the node waits on I/O (pressure where reported, else iowait, or disk reads
    at the node's ceiling), and the node clearly does not."""
    pressure, iowait = host.pressure[node], host.iowait[node]
    io = np.where(np.isnan(pressure), iowait, pressure)
    read, ceiling = host.disk_read[node], host.disk_ceiling[node]
    with np.errstate(invalid="ignore"):
        at_ceiling = (ceiling >= params.of("disk_min_bytes_per_second", team)) & (
            read >= params.of("disk_ceiling_ratio", team) * ceiling
        )
        high = (io >= params.of("io_ratio", team)) | at_ceiling
        low = (io < params.of("io_resolve_ratio", team)) & ~at_ceiling
    return high, low


def data_starvation(gpu: GpuMinutes, host: HostMinutes, params: KindParams) -> Verdict:
    """Held, utilization below the threshold or saw-toothed, while the node waits on I/O."""
    util = gpu.utilization
    high, low = io_bound(host, params, gpu.team, gpu.node)
    with np.errstate(invalid="ignore"):
        sawtooth = trailing_spread(util) >= params.of("sawtooth_percent", gpu.team)
        low_util = util < params.of("utilization_percent", gpu.team)
        holds = gpu.held & ~np.isnan(util) & (low_util | sawtooth) & high
        working = (util >= params.of("utilization_percent", gpu.team)) & ~sawtooth
        clears = ~gpu.held | low | working
    out = _mute(_verdicts(gpu.present, holds, clears), params, gpu.team)
    return Verdict(DATA_STARVATION, out, params.timing(gpu.team))


def energy_threshold(floor: Floats, params: KindParams, team: Ints) -> Floats:
    """Watts above which a GPU at ~0 % wastes energy: its idle floor plus a margin."""
    margin = np.maximum(params.of("margin_watts", team), params.of("margin_ratio", team) * floor)
    return floor + margin


def energy_waste(gpu: GpuMinutes, params: KindParams) -> Verdict:
    """Utilization ~0 while drawing well above the model's idle floor."""
    util, power = gpu.utilization, gpu.power
    limit = energy_threshold(gpu.idle_floor, params, gpu.team)
    with np.errstate(invalid="ignore"):
        holds = (util <= params.of("utilization_percent", gpu.team)) & (power >= limit)
        cooled = power < (gpu.idle_floor + limit) / 2
        clears = (util >= params.of("resolve_utilization_percent", gpu.team)) | cooled
    out = _mute(_verdicts(gpu.present, holds, clears), params, gpu.team)
    return Verdict(ENERGY_WASTE, out, params.timing(gpu.team))


def _node_team(host: HostMinutes) -> Ints:
    return np.repeat(host.team[:, None], host.present.shape[1], axis=1)


def stale_minutes(host: HostMinutes, params: KindParams) -> npt.NDArray[np.int64]:
    """Silent minutes before a node is stale: intervals x its usual sampling interval."""
    team = _node_team(host)
    interval = np.where(np.isnan(host.interval), params.of("interval_seconds", team), host.interval)
    interval = np.clip(interval, 1.0, MAX_STALE_INTERVAL_SECONDS)
    seconds = params.of("intervals", team) * interval
    return np.maximum(np.ceil(seconds / 60.0), 1).astype(np.int64)


def stale_agent(host: HostMinutes, params: KindParams) -> Verdict:
    """A node that has reported before sends nothing for a whole minute."""
    everywhere = np.ones(host.present.shape, dtype=bool)
    holds = host.known & ~host.present
    team = _node_team(host)
    out = _mute(_verdicts(everywhere, holds, host.present), params, team)
    timing = params.timing(team)
    timing["minutes"] = stale_minutes(host, params)
    return Verdict(STALE_AGENT, out, timing)


def condition_intervals(verdict: Verdict) -> list[Spell]:
    """The episodes of ``verdict`` in its frame alone, from a clean start (tests, benches):
    spells (row, first minute, opening column, last minute held) in column indexes."""
    n = verdict.verdicts.shape[0]
    return run_machine(verdict.verdicts, verdict.timing, Seeds.idle(n)).spells
