"""Minute rollups as (subject x minute) arrays for the detectors, with holders and teams."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.config import settings
from app.costs.engine import DEFAULT_RULES, NodeInfo, owner_label, owner_team
from app.findings import repository
from app.findings.detectors import GpuMinutes, HostMinutes
from app.findings.repository import GpuInfo, NodeRow, minute_of
from app.usage.rollup import OWNER_FIELDS
from app.usage.types import OwnerShare

HELD_SHARE = 0.5  # a minute is held when holders covered at least half of its observed time
CEILING_DAYS = 7  # a node's disk ceiling: its highest read rate over this many days
FLOOR_HOURS = 24  # an unlisted model's idle floor: the GPU's lowest hourly mean power

OwnerKey = tuple[str | None, ...]


@dataclass
class Frame:
    """Everything one evaluation step reads, for the nodes of one group."""

    start: datetime  # column 0
    end: datetime  # exclusive
    nodes: list[NodeRow]
    gpus: list[GpuInfo]
    gpu: GpuMinutes
    host: HostMinutes
    teams: list[str]  # names of the team indexes
    holders: list[OwnerKey]  # names of the holder indexes
    holder: npt.NDArray[np.int32]  # per GPU cell, -1 for none
    io: npt.NDArray[np.float64]  # per GPU cell: the node's I/O wait (pressure, else iowait)
    node_index: dict[int, int]
    gpu_index: dict[int, int]

    @property
    def columns(self) -> int:
        return int(self.gpu.present.shape[1])


def idle_floor_watts(model: str | None, table: Mapping[str, float] | None = None) -> float | None:
    """The idle power of a GPU model from the settings' table (longest name that matches)."""
    table = settings.findings_idle_power_watts if table is None else table
    if not model:
        return None
    name = model.upper()
    matches = [(len(k), v) for k, v in table.items() if k.upper() in name]
    return max(matches)[1] if matches else None


def holder_share(owner: OwnerKey) -> OwnerShare:
    return OwnerShare(0.0, **dict(zip(OWNER_FIELDS, owner, strict=True)))


def holder_label(owner: OwnerKey) -> str:
    return owner_label(holder_share(owner))


def _parse_owners(text: str | None) -> tuple[float, OwnerKey | None]:
    if not text:
        return 0.0, None
    items: list[dict[str, Any]] = json.loads(text)
    if not items:
        return 0.0, None
    total = sum(float(i.get("seconds") or 0.0) for i in items)
    top = max(items, key=lambda i: float(i.get("seconds") or 0.0))
    return total, tuple(top.get(f) for f in OWNER_FIELDS)


def _cells(
    entity: npt.NDArray[np.float64],
    seconds: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
    first_minute: int,
    columns: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Row and column of each fetched rollup row (``ids`` sorted), and which are in range."""
    if entity.size == 0 or ids.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    ent = entity.astype(np.int64)
    row = np.minimum(np.searchsorted(ids, ent), len(ids) - 1)
    col = seconds.astype(np.int64) // 60 - first_minute
    ok = (col >= 0) & (col < columns) & (ids[row] == ent)
    return row, col, ok


def _floats(values: tuple[Any, ...]) -> npt.NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def _grid(shape: tuple[int, int], fill: float = np.nan) -> npt.NDArray[np.float64]:
    return np.full(shape, fill, dtype=np.float64)


def load_frame(
    session: Session,
    *,
    nodes: list[NodeRow],
    gpus: list[GpuInfo],
    infos: Mapping[int, NodeInfo],
    start: datetime,
    end: datetime,
) -> Frame:
    """The minute rollups of ``nodes`` and ``gpus`` over [start, end) as arrays."""
    first = minute_of(start)
    t = minute_of(end) - first
    node_ids = np.array([n.node_id for n in nodes], dtype=np.int64)
    gpu_ids = np.array(sorted(g.gpu_id for g in gpus), dtype=np.int64)
    gpus = sorted(gpus, key=lambda g: g.gpu_id)
    node_index = {n.node_id: i for i, n in enumerate(nodes)}
    n, m = len(gpus), len(nodes)
    gpu_node = np.array([node_index[g.node_id] for g in gpus], dtype=np.int32)

    teams: list[str] = []
    team_index: dict[str, int] = {}

    def team_of(name: str) -> int:
        if name not in team_index:
            team_index[name] = len(teams)
            teams.append(name)
        return team_index[name]

    node_team = np.array(
        [team_of(owner_team(None, infos[x.node_id], DEFAULT_RULES)) for x in nodes] if m else [],
        dtype=np.int32,
    )

    # GPUs.
    rows, owner_rows = repository.gpu_minutes(session, gpu_ids.tolist(), start, end)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 2 + len(repository.GPU_COLUMNS))
    row, col, ok = _cells(table[:, 0], table[:, 1], gpu_ids, first, t)
    present = np.zeros((n, t), dtype=bool)
    present[row[ok], col[ok]] = True
    grids = {}
    for i, name in enumerate(repository.GPU_COLUMNS, start=2):
        grid = _grid((n, t))
        grid[row[ok], col[ok]] = table[ok, i]
        grids[name] = grid
    holders: list[OwnerKey] = []
    holder_index: dict[OwnerKey, int] = {}
    parsed: dict[str | None, tuple[float, int]] = {}
    share = np.zeros(len(owner_rows))
    who = np.full(len(owner_rows), -1, dtype=np.int32)
    for k, (_, _, text) in enumerate(owner_rows):
        hit = parsed.get(text)
        if hit is None:
            seconds, owner = _parse_owners(text)
            idx = -1
            if owner is not None:
                idx = holder_index.setdefault(owner, len(holders))
                if idx == len(holders):
                    holders.append(owner)
            hit = parsed[text] = (seconds, idx)
        share[k], who[k] = hit
    observed = grids["observed_seconds"]
    held = np.zeros((n, t), dtype=bool)
    holder = np.full((n, t), -1, dtype=np.int32)
    if owner_rows:
        keys = np.array([(g, e) for g, e, _ in owner_rows], dtype=np.float64)
        orow, ocol, ook = _cells(keys[:, 0], keys[:, 1], gpu_ids, first, t)
        orow, ocol, share, who = orow[ook], ocol[ook], share[ook], who[ook]
        obs = np.nan_to_num(observed[orow, ocol], nan=0.0)
        is_held = (who >= 0) & (share > 0) & (share >= HELD_SHARE * obs)
        held[orow, ocol] = is_held
        holder[orow, ocol] = np.where(is_held, who, -1)
    team = np.repeat(node_team[gpu_node][:, None], t, axis=1) if n else np.zeros((0, t), np.int32)
    if held.any():
        pair_node = np.broadcast_to(gpu_node[:, None], (n, t))[held]
        codes = holder[held].astype(np.int64) * max(m, 1) + pair_node
        uniq, inverse = np.unique(codes, return_inverse=True)
        names = [
            team_of(
                owner_team(
                    holder_share(holders[int(c) // max(m, 1)]),
                    infos[nodes[int(c) % max(m, 1)].node_id],
                    DEFAULT_RULES,
                )
            )
            for c in uniq
        ]
        team[held] = np.array(names, dtype=np.int32)[inverse]

    # Hosts: present when the node sent anything (host or GPU samples) for the minute.
    hrows = repository.host_minutes(session, node_ids.tolist(), start, end)
    order = np.argsort(node_ids) if m else np.zeros(0, dtype=np.int64)
    sorted_ids = node_ids[order]
    htable = np.array(hrows, dtype=np.float64).reshape(len(hrows), 2 + len(repository.HOST_COLUMNS))
    hrow, hcol, hok = _cells(htable[:, 0], htable[:, 1], sorted_ids, first, t)
    hrow = order[hrow[hok]] if m else hrow[hok]
    hcol = hcol[hok]
    host_present = np.zeros((m, t), dtype=bool)
    host_present[hrow, hcol] = True
    if n:
        np.logical_or.at(host_present, (np.broadcast_to(gpu_node[:, None], (n, t))[present],
                                        np.nonzero(present)[1]), True)  # fmt: skip
    hgrids = {}
    for i, name in enumerate(repository.HOST_COLUMNS, start=2):
        grid = _grid((m, t))
        grid[hrow, hcol] = htable[hok, i]
        hgrids[name] = grid
    with np.errstate(divide="ignore", invalid="ignore"):
        interval = _ffill(np.where(hgrids["samples"] > 0, 60.0 / hgrids["samples"], np.nan))
    # Minutes ingested but not rolled up yet: the node did report in them.
    gpu_node_id = {g.gpu_id: g.node_id for g in gpus}
    for kind, entity, seconds in repository.unrolled_minutes(
        session, gpu_ids.tolist(), node_ids.tolist(), start
    ):
        node_id = gpu_node_id.get(entity) if kind == "gpu" else entity
        c = seconds // 60 - first
        if node_id is not None and 0 <= c < t:
            host_present[node_index[node_id], c] = True
    known = np.maximum.accumulate(host_present, axis=1) if t else host_present.copy()
    for i, x in enumerate(nodes):
        if x.last_seen is not None and x.last_seen < start:
            known[i, :] = True  # silent since before the frame, and it had reported
    ceiling = _disk_ceiling(session, node_ids, start, end, first, t)
    floor = _idle_floor(session, gpus, start, end, first, t)
    pressure, iowait = hgrids["io_pressure_some_mean"], hgrids["iowait_mean"]
    io_node = np.where(np.isnan(pressure), iowait, pressure)
    host = HostMinutes(
        start=start, present=host_present, known=known, iowait=iowait, pressure=pressure,
        disk_read=hgrids["disk_read_bytes_per_s_max"], disk_ceiling=ceiling, interval=interval,
        team=node_team,
    )  # fmt: skip
    gpu = GpuMinutes(
        start=start, present=present, utilization=grids["utilization_mean"],
        utilization_max=grids["utilization_max"], power=grids["power_mean_watts"],
        memory=grids["memory_used_max_bytes"], energy=grids["energy_joules"], observed=observed,
        held=held, team=team, node=gpu_node, idle_floor=floor,
    )  # fmt: skip
    return Frame(
        start=start, end=end, nodes=nodes, gpus=gpus, gpu=gpu, host=host, teams=teams,
        holders=holders, holder=holder, io=io_node[gpu_node] if n else _grid((0, t)),
        node_index=node_index, gpu_index={g.gpu_id: i for i, g in enumerate(gpus)},
    )  # fmt: skip


def _ffill(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Carry each row's last value forward over NaN (the value as last seen)."""
    if values.size == 0:
        return values
    ok = ~np.isnan(values)
    idx = np.where(ok, np.arange(values.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = values[np.arange(values.shape[0])[:, None], idx]
    out[~np.maximum.accumulate(ok, axis=1)] = np.nan
    return out


def _hourly_to_minutes(
    per_hour: npt.NDArray[np.float64], first_hour: int, first: int, t: int
) -> npt.NDArray[np.float64]:
    """Spread (rows x hours since ``first_hour``) values over minute columns."""
    hours = (first + np.arange(t)) // 60 - first_hour
    return per_hour[:, hours]


def _trailing(
    rows: Sequence[tuple[int, int, float]],
    ids: npt.NDArray[np.int64],
    *,
    start: datetime,
    end: datetime,
    first: int,
    t: int,
    hours: int,
    how: str,
) -> npt.NDArray[np.float64]:
    """Per row and minute: max or min of the hourly values of the ``hours`` before its hour."""
    first_hour = minute_of(start) // 60 - hours
    last_hour = (minute_of(end) - 1) // 60
    width = last_hour - first_hour + 1
    values = _grid((len(ids), width))
    if rows:
        order = np.argsort(ids)
        ent = np.array([r[0] for r in rows], dtype=np.int64)
        pos = np.searchsorted(ids[order], ent)
        pos = np.minimum(pos, len(ids) - 1)
        found = ids[order][pos] == ent
        col = np.array([r[1] for r in rows], dtype=np.int64) // 3600 - first_hour
        val = np.array([r[2] for r in rows], dtype=np.float64)
        keep = found & (col >= 0) & (col < width)
        values[order[pos[keep]], col[keep]] = val[keep]
    out = _grid((len(ids), width))
    reduce = np.fmax.reduce if how == "max" else np.fmin.reduce
    for h in range(hours, width):
        window = values[:, h - hours : h]
        out[:, h] = reduce(window, axis=1) if window.shape[1] else np.nan
    return _hourly_to_minutes(out, first_hour, first, t)


def _disk_ceiling(
    session: Session,
    node_ids: npt.NDArray[np.int64],
    start: datetime,
    end: datetime,
    first: int,
    t: int,
) -> npt.NDArray[np.float64]:
    hours = CEILING_DAYS * 24
    since = start.replace(minute=0) - timedelta(hours=hours)
    rows = repository.host_hour_disk(session, node_ids.tolist(), since, end)
    return _trailing(rows, node_ids, start=start, end=end, first=first, t=t, hours=hours, how="max")


def _idle_floor(
    session: Session, gpus: list[GpuInfo], start: datetime, end: datetime, first: int, t: int
) -> npt.NDArray[np.float64]:
    listed = np.array(
        [np.nan if (w := idle_floor_watts(g.model)) is None else w for g in gpus],
        dtype=np.float64,
    )
    out = np.repeat(listed[:, None], t, axis=1) if gpus else _grid((0, t))
    unlisted = [i for i, g in enumerate(gpus) if np.isnan(listed[i])]
    if unlisted:
        ids = np.array([gpus[i].gpu_id for i in unlisted], dtype=np.int64)
        since = start.replace(minute=0) - timedelta(hours=FLOOR_HOURS)
        rows = repository.gpu_hour_power(session, ids.tolist(), since, end)
        out[unlisted] = _trailing(
            rows, ids, start=start, end=end, first=first, t=t, hours=FLOOR_HOURS, how="min"
        )
    return out
