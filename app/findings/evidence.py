"""Write a replay's outcome: each finding's times, state, evidence and cost from its spells,
its hours (from the frame and the stored timeline) and the cost ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.findings import repository
from app.findings.frames import Frame, holder_label
from app.findings.repository import at_minute
from app.findings.rules import (
    DATA_STARVATION,
    ENERGY_WASTE,
    IDLE_UNALLOCATED,
    STALE_AGENT,
    KindParams,
)
from app.findings.state import Spell
from app.findings.timeline import FIELDS, HourSums, Timeline, cost_of, price_hour
from app.models import Finding
from app.models.findings import OPEN, RESOLVED

MINUTE = timedelta(minutes=1)
HOW = {DATA_STARVATION: "unused", ENERGY_WASTE: "energy"}  # else: the idle time's price
NO_COST = "none"  # cost_source of kinds that carry no cost (stale_agent)


@dataclass(frozen=True)
class Planned:
    row: int
    finding: Finding | None  # None: a new finding
    kept: list[tuple[int, int, int]]  # stored spells before the replay (frame columns)
    replayed: list[Spell]
    key: int  # the machine's key of its replayed minutes


@dataclass
class Plan:
    create: list[Planned] = field(default_factory=list)
    update: list[Planned] = field(default_factory=list)
    delete: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    deleted: int = 0


def _round(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


@dataclass
class Writer:
    session: Session
    frame: Frame
    kind: str
    params: KindParams
    first: int  # epoch minute of column 0
    p: int  # the replay's first column (an hour boundary)
    fold_before: int  # epoch hour
    now: datetime

    def apply(self, plan: Plan, sums: dict[tuple[int, int], list[float]]) -> Outcome:
        """Delete, update and create the planned findings; counts of what changed."""
        for gone in plan.delete:
            self.session.delete(gone)
        if plan.delete:
            self.session.flush()  # a retracted open finding frees its subject first
        items = plan.update + plan.create
        by_key: dict[int, list[tuple[int, list[float]]]] = {}
        for (key, hour), values in sums.items():
            by_key.setdefault(key, []).append((hour, values))
        timelines = [self._timeline(item, by_key.get(item.key, [])) for item in items]
        self._price(items, timelines)
        opened = updated = resolved = 0
        new_rows: list[Finding] = []
        for item, timeline in zip(items, timelines, strict=True):
            timeline.fold(self.fold_before)
            fields = self._values(item, timeline)
            f = item.finding
            if f is None:
                new_rows.append(Finding(**fields, updated_at=self.now))
                opened += 1
                continue
            changed = {k: v for k, v in fields.items() if getattr(f, k) != v}
            if changed:
                if changed.get("state") == RESOLVED:
                    resolved += 1
                for k, v in changed.items():
                    setattr(f, k, v)
                f.updated_at = self.now
                updated += 1
        self.session.flush()  # resolutions before new open findings of the same subject
        self.session.add_all(new_rows)
        self.session.flush()
        return Outcome(opened, updated, resolved, len(plan.delete))

    def _timeline(self, item: Planned, sums: list[tuple[int, list[float]]]) -> Timeline:
        raw = None if item.finding is None else item.finding.timeline
        timeline = Timeline.from_json(raw)
        spells = sorted(item.kept + [(s.start, s.opened, s.last) for s in item.replayed])
        timeline.spells = [[a + self.first, b + self.first, c + self.first] for a, b, c in spells]
        replay_hour = (self.first + self.p) // 60
        timeline.hours = {h: s for h, s in timeline.hours.items() if h < replay_hour}
        for hour, values in sums:
            timeline.hours[hour] = HourSums(values)
        return timeline

    def _price(self, items: list[Planned], timelines: list[Timeline]) -> None:
        if self.kind == STALE_AGENT:
            return
        replay_hour = (self.first + self.p) // 60
        wanted: list[tuple[int, int, HourSums]] = []
        for item, timeline in zip(items, timelines, strict=True):
            gpu_id = self.frame.gpus[item.row].gpu_id
            for hour, sums in timeline.hours.items():
                if hour >= replay_hour or sums.source is None:
                    wanted.append((gpu_id, hour, sums))
        ledger = repository.ledger_hours(
            self.session, {(g, at_minute(h * 60)) for g, h, _ in wanted}
        )
        how = HOW.get(self.kind, "time")
        for gpu_id, hour, sums in wanted:
            price_hour(sums, ledger.get((gpu_id, at_minute(hour * 60))), how=how)

    def _identity(self, item: Planned) -> tuple[str, str, dict[str, Any]]:
        """Team, owner and the names evidence shows, from the minute the finding opened."""
        f = item.finding
        first = min([*item.kept, *[(s.start, s.opened, s.last) for s in item.replayed]])
        col = first[1] - 1
        fr = self.frame
        if self.kind == STALE_AGENT:
            node = fr.nodes[item.row]
            team = fr.teams[int(fr.host.team[item.row])]
            return team, "", {"node": node.name, "gpu": None}
        gpu = fr.gpus[item.row]
        node = fr.nodes[int(fr.gpu.node[item.row])]
        names: dict[str, Any] = {
            "node": node.name,
            "gpu": {"uuid": gpu.uuid, "index": gpu.index, "model": gpu.model},
        }
        if f is not None and (col < 0 or col >= fr.columns):
            old = f.evidence or {}
            names["holder"] = old.get("holder")
            return f.team, f.owner, names
        team = fr.teams[int(fr.gpu.team[item.row, col])]
        holder = int(fr.holder[item.row, col])
        owner = ""
        if holder >= 0 and self.kind != IDLE_UNALLOCATED:
            key = fr.holders[holder]
            owner = holder_label(key)
            names["holder"] = {
                k: v
                for k, v in zip(("user", "namespace", "pod", "job", "account"), key, strict=True)
                if v
            }
        else:
            names["holder"] = None
        return team, owner[:255], names

    def _values(self, item: Planned, timeline: Timeline) -> dict[str, Any]:
        spells = timeline.spells
        f = item.finding
        started = (
            at_minute(spells[0][0]) if f is None or not timeline.folded_spells else f.started_at
        )
        opened = at_minute(spells[0][1]) if f is None or not timeline.folded_spells else f.opened_at
        last = at_minute(spells[-1][2])
        is_open = any(s.open for s in item.replayed)  # an open spell is the latest one
        team, owner, names = self._identity(item)
        cost = cost_of(timeline, how=HOW.get(self.kind, "time"))
        evidence = self._evidence(timeline, started, last, team, owner, names, item)
        values: dict[str, Any] = {
            "kind": self.kind,
            "state": OPEN if is_open else RESOLVED,
            "gpu_id": None if self.kind == STALE_AGENT else self.frame.gpus[item.row].gpu_id,
            "node_id": (
                self.frame.nodes[item.row].node_id
                if self.kind == STALE_AGENT
                else self.frame.gpus[item.row].node_id
            ),
            "team": team[:255],
            "owner": owner,
            "started_at": started,
            "opened_at": opened,
            "last_seen_at": last,
            "resolved_at": None if is_open else last + MINUTE,
            "evidence": evidence,
            "timeline": timeline.to_json(),
        }
        if self.kind == STALE_AGENT:
            values.update(cost_per_hour=None, cost_so_far=None, currency=None, cost_source=NO_COST)
        else:
            values.update(
                cost_per_hour=cost.per_hour,
                cost_so_far=cost.so_far,
                currency=cost.currency,
                cost_source=cost.source,
            )
        return values

    def _evidence(
        self,
        timeline: Timeline,
        started: datetime,
        last: datetime,
        team: str,
        owner: str,
        names: dict[str, Any],
        item: Planned,
    ) -> dict[str, Any]:
        t = dict(zip(FIELDS, timeline.totals(), strict=True))
        minutes = t["minutes"] or 1.0
        seconds = t["seconds"] or 1.0
        out: dict[str, Any] = {
            "window": {"start": started.isoformat(), "end": (last + MINUTE).isoformat()},
            "minutes": int(t["minutes"]),
            "spells": len(timeline.spells) + timeline.folded_spells,
            "team": team,
            "owner": owner,
            **names,
            "thresholds": self._thresholds(item),
        }
        if self.kind == STALE_AGENT:
            out["silent_minutes"] = int(t["minutes"])
            return out
        out.update(
            utilization_mean_percent=_round(t["util"] / minutes, 3),
            power_mean_watts=_round(t["power"] / minutes, 3),
            memory_max_bytes=int(t["memory"]),
            observed_hours=_round(t["seconds"] / 3600),
        )
        if self.kind == DATA_STARVATION:
            out.update(
                io_wait_mean_ratio=_round(t["io"] / minutes),
                disk_read_mean_bytes_per_second=_round(t["disk"] / minutes, 1),
                unused_share=_round(t["unused"] / seconds),
            )
        elif self.kind == ENERGY_WASTE:
            out.update(
                idle_floor_watts=_round(t["floor"] / seconds, 3),
                energy_kwh=_round(t["energy"] / 3.6e6, 9),
                excess_energy_kwh=_round(max(t["energy"] - t["floor"], 0.0) / 3.6e6, 9),
            )
        cost = cost_of(timeline, how=HOW.get(self.kind, "time"))
        out["cost"] = {
            "priced_hours": cost.priced_hours,
            "unpriced_hours": cost.unpriced_hours,
            "basis": _basis(self.kind),
        }
        return out

    def _thresholds(self, item: Planned) -> dict[str, float]:
        fr = self.frame
        if self.kind == STALE_AGENT:
            team = int(fr.host.team[item.row])
        else:
            first = min([*item.kept, *[(s.start, s.opened, s.last) for s in item.replayed]])
            col = min(max(first[1] - 1, 0), fr.columns - 1)
            team = int(fr.gpu.team[item.row, col]) if fr.columns else 0
        return {k: float(v[team]) for k, v in sorted(self.params.values.items())}


def _basis(kind: str) -> str:
    if kind == DATA_STARVATION:
        return "the unused share (1 - utilization) of the GPU's price for the starved minutes"
    if kind == ENERGY_WASTE:
        return "on-prem: the energy x $/kWh x PUE; cloud: the GPU's price for those minutes"
    return "the GPU's price for the idle minutes (cost ledger)"
