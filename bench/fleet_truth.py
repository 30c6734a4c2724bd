"""A synthetic GPU fleet with labelled waste: the ground truth the detector benchmark scores.

    from bench.fleet_truth import generate
    fleet = generate(gpus=400, hours=72, seed=1)
    for node, batch in fleet.batches(): ...   # wire batches (``IngestBatch``), in time order
    fleet.labels                               # what was waste, when, and what it cost

Nodes are AWS p4d.24xlarge (A100 40 GB) or p5.48xlarge (H100) instances of 8 GPUs, priced by
the shipped price book. Each node's GPUs are split into gangs (one gang of 8, two of 4, ...);
a gang runs a sequence of jobs separated by free time, and each job is a sequence of phases
of what the workload does: training epochs, the gaps, checkpoints and evaluations between
them, and at most one incident. Labels come from the phases, never from a detector rule:

- ``stuck``: the job's process lives but stopped computing for 40-240 min (idle_allocated);
  ``probed``: the same, but a health probe wakes the GPU (8-20 %) for a minute every 12-21 min;
  ``stalled``: the same for 12-24 min, not labelled.
- ``reserved``: a job holds the GPUs and never starts a process, 45-300 min (idle_allocated);
  ``image_pull``: the holder has no process for 2-25 min while its container starts.
- ``unused_in_job``: a job holds one more GPU than it uses, for its whole life (idle_allocated).
- ``parked``: nobody holds the GPU for 90-360 min (idle_unallocated); ``turnaround``: 2-50 min
  between jobs.
- ``hot_stuck`` / ``hot_parked``: as stuck / parked, drawing 40-55 % of board power at 0 %
  utilization (energy_waste too).
- ``starved``: the job's input pipeline cannot keep up for 20-150 min: utilization
  saw-tooths between 20 and 60 % (a burst to 62-80 % one minute in 12), never 0, while the
  node waits on disk, iowait 25-50 %
  (data_starvation); ``io_stall``: the same for 3-7 min; ``io_busy``: the node waits on disk
  while the GPUs stay above 85 %.
- node silences of 20-60 min (stale_agent); ``agent_restart``: one sample missing.

Other hard cases that are not waste: ``epoch_gap`` (1-5 min at 0 %), ``checkpoint`` (2-8 min at
0 %, low power), ``eval`` (20-40 min at 10-30 %, no I/O wait), ``light`` jobs using 1.5-4 GiB
of memory, power lagging a minute behind a stop, ``cooldown`` (the job's process has exited and
the GPU draws a third of its board power at 0 % for 5-12 min), and nodes whose clock is off by
20-90 s (their sample timestamps; labels stay in true time). Starvation and I/O incidents only
happen to gangs that hold the whole node, so no other job shares the node's I/O wait.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.catalog import shipped_pricebook

START = datetime(2026, 11, 2, tzinfo=UTC)
STEP_SECONDS = 60
GPUS_PER_NODE = 8
GIB = 1024**3
PROVIDER, REGION = "aws", "us-east-1"
# instance type -> (GPU model, memory, board power W, idle power W)
INSTANCES = {
    "p4d.24xlarge": ("NVIDIA A100-SXM4-40GB", 40 * GIB, 400.0, 55.0),
    "p5.48xlarge": ("NVIDIA H100 80GB HBM3", 80 * GIB, 700.0, 75.0),
}
TEAMS = ("vision", "nlp", "research", "speech", "ads")
LAYOUTS = ((8,), (4, 4), (2, 2, 4), (1, 1, 2, 4))
LAYOUT_WEIGHTS = (0.45, 0.25, 0.15, 0.15)

# What each phase is: held by a job, a process on the GPU, and the labels it carries.
HELD_PHASES = {"busy", "light", "eval", "epoch_gap", "checkpoint", "stalled", "stuck", "probed",
               "hot_stuck", "starved", "io_stall", "io_busy", "image_pull", "reserved",
               "unused", "cooldown"}  # fmt: skip
PROCESS_PHASES = HELD_PHASES - {"image_pull", "reserved", "unused", "cooldown"}
HOT_PHASES = {"hot_stuck", "hot_parked", "cooldown"}  # clocks and power held up at 0 %
NEGATIVE_PHASES = {"epoch_gap", "checkpoint", "eval", "light", "stalled", "io_stall", "io_busy",
                   "cooldown", "image_pull", "turnaround"}  # fmt: skip
IO_PHASES = {"starved", "io_stall", "io_busy"}
LABELS = {
    "stuck": ("idle_allocated",),
    "probed": ("idle_allocated",),
    "hot_stuck": ("idle_allocated", "energy_waste"),
    "reserved": ("idle_allocated",),
    "unused": ("idle_allocated",),
    "parked": ("idle_unallocated",),
    "hot_parked": ("idle_unallocated", "energy_waste"),
    "starved": ("data_starvation",),
}
CASE_OF = {"unused": "unused_in_job"}
# The shortest a labelled case is drawn; one cut shorter by the window's end is undecided.
MIN_MINUTES = {"stuck": 40, "probed": 40, "hot_stuck": 40, "reserved": 45, "unused_in_job": 60,
               "parked": 90, "hot_parked": 90, "starved": 20, "agent_silent": 20}  # fmt: skip
KINDS = ("idle_allocated", "idle_unallocated", "data_starvation", "energy_waste", "stale_agent")
SILENCES_PER_NODE_DAY = 0.6
RESTARTS_PER_NODE_DAY = 1.0
DRIFTING_NODES = 0.2


@dataclass(frozen=True)
class Step:
    """``minutes`` of one phase of a gang; ``job`` is None while nobody holds the gang."""

    phase: str
    minutes: int
    job: int | None = None
    unused: int | None = None  # the gang member the job holds but never uses


@dataclass
class Gang:
    size: int
    steps: list[Step]


@dataclass
class NodePlan:
    name: str
    instance_type: str
    gangs: list[Gang]  # sizes add up to GPUS_PER_NODE
    team: str = "research"
    offset_seconds: int = 0  # the node clock's error: its timestamps are true time + this
    silences: list[tuple[int, int, str]] = field(default_factory=list)  # [start, end) minute, case


@dataclass(frozen=True)
class Label:
    """A waste episode in true time; ``gpu_uuid`` is None for a node-level kind."""

    kind: str
    node: str
    gpu_uuid: str | None
    start: datetime
    end: datetime
    case: str
    # USD of the wasted GPU time the agent reported, at list price (data_starvation: its
    # unused share); energy_waste also has the energy drawn above the model's idle power.
    expected_cost: Decimal | None = None
    excess_kwh: float | None = None


@dataclass(frozen=True)
class Episode:
    """A hard case that is not waste, or a node's clock error (for tests and reports)."""

    case: str
    node: str
    gpu_uuid: str | None
    start: datetime
    end: datetime


@dataclass
class GpuSeries:
    """One GPU's minutes: phase (index into ``Fleet.phases``), holder job (-1: none), readings."""

    uuid: str
    node: str
    index: int
    phase: array[int] = field(default_factory=lambda: array("b"))
    job: array[int] = field(default_factory=lambda: array("i"))
    util: array[float] = field(default_factory=lambda: array("d"))
    power: array[float] = field(default_factory=lambda: array("d"))
    memory: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class Fleet:
    start: datetime
    minutes: int
    nodes: list[NodePlan]
    gpus: list[GpuSeries] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    iowait: dict[str, array[float]] = field(default_factory=dict)
    silent: dict[str, array[int]] = field(default_factory=dict)  # 1: the node sent nothing
    jobs: dict[int, dict[str, str]] = field(default_factory=dict)  # job -> wire allocation
    labels: list[Label] = field(default_factory=list)
    negatives: list[Episode] = field(default_factory=list)
    # Labelled phases the window's end cuts below their shortest length: not scored either way.
    undecided: list[Label] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    def at(self, minute: int) -> datetime:
        return self.start + timedelta(minutes=minute)

    def minute(self, t: datetime) -> int:
        return math.floor((t - self.start).total_seconds() / STEP_SECONDS)

    def gpu(self, uuid: str) -> GpuSeries:
        return next(g for g in self.gpus if g.uuid == uuid)

    def phase_minutes(self, uuid: str, start: datetime, end: datetime) -> dict[str, int]:
        """How many minutes of each phase the GPU spent in [start, end) (true time)."""
        g = self.gpu(uuid)
        out: dict[str, int] = {}
        last = -(-(end - self.start).total_seconds() // STEP_SECONDS)  # the minute end falls in
        for k in range(max(0, self.minute(start)), min(self.minutes, int(last))):
            name = self.phases[g.phase[k]]
            out[name] = out.get(name, 0) + 1
        return out

    def batches(self, chunk_minutes: int = 60) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every node's wire batches of ``chunk_minutes`` of samples, in time order."""
        for chunk in self.chunks(chunk_minutes):
            yield from chunk

    def chunks(self, chunk_minutes: int = 60) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The batches of each ``chunk_minutes`` of the window: one per node that reported."""
        by_node: dict[str, list[GpuSeries]] = {}
        for g in self.gpus:
            by_node.setdefault(g.node, []).append(g)
        energy = {g.uuid: 4_000_000_000 + 7_919_000 * g.index for g in self.gpus}
        for first in range(0, self.minutes, chunk_minutes):
            out = []
            for plan in self.nodes:
                batch = self._batch(plan, by_node[plan.name], first, chunk_minutes, energy)
                if batch["samples"]:
                    out.append((plan.name, batch))
            yield out

    def _batch(self, plan: NodePlan, gpus: list[GpuSeries], first: int, count: int,
               energy: dict[str, int]) -> dict[str, Any]:  # fmt: skip
        model, total, tdp, _ = INSTANCES[plan.instance_type]
        samples: list[dict[str, Any]] = []
        hosts: list[dict[str, Any]] = []
        silent, iowait = self.silent[plan.name], self.iowait[plan.name]
        for k in range(first, min(first + count, self.minutes)):
            for g in gpus:  # the counter runs on while the agent is silent
                energy[g.uuid] += round(g.power[k] * STEP_SECONDS * 1000)
            if silent[k]:
                continue
            ts = (self.at(k) + timedelta(seconds=plan.offset_seconds)).isoformat()
            io = iowait[k]
            hosts.append({"ts": ts, "cpu_busy_ratio": 0.3, "iowait_ratio": round(io, 4),
                          "io_pressure_some_ratio": round(min(1.0, io * 1.4), 4),
                          "io_pressure_full_ratio": round(io * 0.7, 4),
                          "disk_read_bytes_per_s": 1.8e9 if io > 0.2 else 4.0e7})  # fmt: skip
            for g in gpus:
                phase, job, util, power = self.phases[g.phase[k]], g.job[k], g.util[k], g.power[k]
                sample: dict[str, Any] = {
                    "gpu_uuid": g.uuid, "ts": ts, "utilization_gpu": round(util, 1),
                    "utilization_memory": round(util * 0.6, 1), "memory_used_bytes": g.memory[k],
                    "memory_total_bytes": total, "power_watts": round(power, 1),
                    "power_limit_watts": tdp, "energy_mj": energy[g.uuid],
                    "temperature_c": round(30 + 45 * power / tdp),
                    "sm_clock_mhz": 1410 if util > 0 or phase in HOT_PHASES else 210,
                    "processes": [], "allocation": self.jobs[job] if job >= 0 else None,
                }  # fmt: skip
                if phase in PROCESS_PHASES:
                    sample["processes"] = [{"pid": 10_000 + job % 50_000,
                                            "used_memory_bytes": g.memory[k],
                                            "owner": _owner(self.jobs[job])}]  # fmt: skip
                samples.append(sample)
        ident = {"name": plan.name, "cluster": "truth", "provider": PROVIDER,
                 "instance_id": "i-" + plan.name.encode().hex()[-17:].rjust(17, "0"),
                 "instance_type": plan.instance_type, "region": REGION,
                 "labels": {"team": plan.team}}  # fmt: skip
        return {"schema_version": 1, "batch_id": f"{plan.name}-{first}", "node": ident,
                "gpus": [{"uuid": g.uuid, "index": g.index, "model": model,
                          "memory_total_bytes": total} for g in gpus],
                "samples": samples, "host_samples": hosts}  # fmt: skip


def gpu_hour_price(instance_type: str) -> Decimal:
    """The list price of one GPU-hour: the instance's hourly price / its GPUs (price book)."""
    for e in shipped_pricebook():
        key = (e.provider, e.instance_type, e.region)
        if key == (PROVIDER, instance_type, REGION) and e.hourly_price is not None:
            return e.hourly_price / e.gpu_count
    raise LookupError(f"{instance_type} in {REGION} has no price in the shipped price book")


def _owner(alloc: dict[str, str]) -> dict[str, str]:
    if "pod" in alloc:
        return {"user": alloc["user"], "pod_name": alloc["pod"], "namespace": alloc["namespace"]}
    return {"user": alloc["user"], "job_id": alloc["job_id"], "account": alloc["account"]}


def _allocation(job: int, team: str, rng: random.Random) -> dict[str, str]:
    """Odd jobs are Slurm jobs, even ones Kubernetes pods."""
    user = f"user{rng.randint(1, 40):02d}"
    if job % 2:
        return {"job_id": str(400_000 + job), "user": user, "account": team}
    return {"pod": f"train-{job}-0", "namespace": team, "container": "trainer", "user": user}


# -- rendering ---------------------------------------------------------------------------------
def build(plans: Sequence[NodePlan], *, minutes: int, seed: int = 0,
          start: datetime = START) -> Fleet:  # fmt: skip
    """Render node plans into per-minute series, with their labels and hard cases."""
    rng = random.Random(f"render-{seed}")
    fleet = Fleet(start, minutes, list(plans))
    index: dict[str, int] = {}
    for plan in plans:
        silent = array("b", [0] * minutes)
        for a, b, _ in plan.silences:
            for k in range(max(0, a), min(b, minutes)):
                silent[k] = 1
        fleet.silent[plan.name] = silent
        io_level = array("d", [0.0] * minutes)
        first = 0
        for gang in plan.gangs:
            _render_gang(fleet, plan, gang, first, rng, index, io_level)
            first += gang.size
        fleet.iowait[plan.name] = array("d", [
            lvl + rng.uniform(-0.02, 0.02) if lvl else rng.uniform(0.005, 0.04) for lvl in io_level
        ])  # fmt: skip
    fleet.phases = list(index)
    _derive(fleet)
    return fleet


def _render_gang(fleet: Fleet, plan: NodePlan, gang: Gang, first: int, rng: random.Random,
                 index: dict[str, int], io_level: array[float]) -> None:  # fmt: skip
    _, total, tdp, idle = INSTANCES[plan.instance_type]
    series = [
        GpuSeries(_uuid(plan.name, first + i), plan.name, first + i) for i in range(gang.size)
    ]
    steps = [*gang.steps, Step("turnaround", fleet.minutes)]  # a short plan ends in free time
    k = 0
    for step in steps:
        if step.job is not None and step.job not in fleet.jobs:
            fleet.jobs[step.job] = _allocation(step.job, plan.team, rng)
        light = step.phase == "light"
        mem = int((rng.uniform(1.5, 4.0) if light else rng.uniform(0.6, 0.95) * total / GIB) * GIB)
        hot, io, period = rng.uniform(0.4, 0.55) * tdp, rng.uniform(0.25, 0.5), rng.randint(4, 7)
        for _ in range(min(step.minutes, fleet.minutes - k)):
            if step.phase in IO_PHASES:
                io_level[k] = max(io_level[k], io)
            for i, g in enumerate(series):
                phase = "unused" if step.unused == i else step.phase
                util, power = _reading(phase, k, period, hot, tdp, idle, rng)
                if util == 0 and k and g.util[k - 1] >= 50 and phase not in HOT_PHASES:
                    power = (g.power[k - 1] + power) / 2  # the power drops a minute late
                g.phase.append(index.setdefault(phase, len(index)))
                g.job.append(-1 if step.job is None else step.job)
                g.util.append(util)
                g.power.append(power)
                g.memory.append(mem if phase in PROCESS_PHASES else 0)
            k += 1
    fleet.gpus.extend(series)


def _reading(phase: str, k: int, period: int, hot: float, tdp: float, idle: float,
             rng: random.Random) -> tuple[float, float]:  # fmt: skip
    """Utilization (%) and power (W) of one minute of ``phase``."""
    if phase in ("busy", "io_busy"):
        util = min(100.0, max(85.0, rng.gauss(94, 3)))
    elif phase == "light":
        util = rng.uniform(40, 80)
    elif phase == "eval":
        util = rng.uniform(10, 30)
    elif phase in ("starved", "io_stall"):  # saw-tooth: a batch arrives, is eaten, then wait
        util = min(60.0, max(20.0, 20 + 40 * (k % period) / (period - 1) - rng.uniform(0, 2)))
        if rng.random() < 0.08:  # a batch already in the page cache: a burst
            util = rng.uniform(62, 80)
    elif phase == "probed" and k % (3 * period) == 0:  # a health probe wakes it for a minute
        util = rng.uniform(8, 20)
    elif phase in ("hot_stuck", "hot_parked"):  # clocks held up with nothing to run
        return 0.0, hot + rng.uniform(-5, 5)
    elif phase == "cooldown":
        return 0.0, 0.8 * hot + rng.uniform(-5, 5)
    elif phase == "checkpoint":
        return 0.0, idle + rng.uniform(5, 20)
    else:  # waiting: epoch gaps, stalls, stuck, held and free GPUs
        return 0.0, idle + rng.uniform(-2, 4)
    return util, idle + (tdp - idle) * (0.2 + 0.75 * util / 100) + rng.uniform(-5, 5)


def _runs(values: Sequence[Any]) -> Iterator[tuple[Any, int, int]]:
    """(value, first, end) of each run of equal values."""
    first = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[first]:
            yield values[first], first, k
            first = k


def _derive(fleet: Fleet) -> None:
    """Labels from the labelled phases, hard cases from the others, in true time."""
    plans = {p.name: p for p in fleet.nodes}
    for g in fleet.gpus:
        plan, silent = plans[g.node], fleet.silent[g.node]
        price = gpu_hour_price(plan.instance_type) / 60
        idle_w = INSTANCES[plan.instance_type][3]
        for (p, _job), a, b in _runs(list(zip(g.phase, g.job, strict=True))):
            phase = fleet.phases[p]
            case = CASE_OF.get(phase, phase)
            seen = [k for k in range(a, b) if not silent[k]]
            if phase in NEGATIVE_PHASES:
                fleet.negatives.append(Episode(case, g.node, g.uuid, fleet.at(a), fleet.at(b)))
            if phase not in LABELS:
                continue
            if b - a < MIN_MINUTES[case]:  # cut short by the window's end: undecided yet
                fleet.undecided.extend(Label(kind, g.node, g.uuid, fleet.at(a), fleet.at(b), case)
                                       for kind in LABELS[phase])  # fmt: skip
                continue
            for kind in LABELS[phase]:
                cost: Decimal | None = price * len(seen)
                kwh = None
                if kind == "data_starvation":
                    cost = sum((price * Decimal(1 - g.util[k] / 100) for k in seen), Decimal(0))
                elif kind == "energy_waste":  # cloud: the energy is in the GPU's price
                    kwh = sum(g.power[k] - idle_w for k in seen) * STEP_SECONDS / 3.6e6
                fleet.labels.append(Label(kind, g.node, g.uuid, fleet.at(a), fleet.at(b), case,
                                          cost, kwh))  # fmt: skip
    for plan in fleet.nodes:
        for a, b, case in plan.silences:
            if case == "agent_silent":
                fleet.labels.append(Label("stale_agent", plan.name, None, fleet.at(a),
                                          fleet.at(b), case))  # fmt: skip
            else:
                fleet.negatives.append(Episode(case, plan.name, None, fleet.at(a), fleet.at(b)))
        if plan.offset_seconds:
            fleet.negatives.append(Episode("clock_offset", plan.name, None, fleet.start, fleet.end))


def _uuid(node: str, index: int) -> str:
    return f"GPU-{node}-{index}"


# -- random plans ------------------------------------------------------------------------------
def generate(gpus: int = 400, hours: int = 72, *, seed: int = 1, incident_rate: float = 0.5,
             start: datetime = START) -> Fleet:  # fmt: skip
    """A fleet of ``gpus`` GPUs (8 per node) over ``hours``, seeded and deterministic."""
    rng = random.Random(f"plan-{seed}")
    minutes = hours * 60
    jobs = iter(range(1, 10**9))
    plans = []
    for n in range(math.ceil(gpus / GPUS_PER_NODE)):
        layout = rng.choices(LAYOUTS, LAYOUT_WEIGHTS)[0]
        plan = NodePlan(
            name=f"truth-{n:03d}",
            instance_type=rng.choice(sorted(INSTANCES)),
            gangs=[Gang(size, draw_gang(rng, minutes, size, jobs, incident_rate))
                   for size in layout],
            team=TEAMS[n % len(TEAMS)],
            offset_seconds=(rng.choice((-1, 1)) * rng.randint(20, 90)
                            if rng.random() < DRIFTING_NODES else 0),
        )  # fmt: skip
        plan.silences = _draw_silences(rng, plan, minutes)
        plans.append(plan)
    return build(plans, minutes=minutes, seed=seed, start=start)


def draw_gang(rng: random.Random, minutes: int, size: int, jobs: Iterator[int],
              incident_rate: float = 0.5) -> list[Step]:  # fmt: skip
    """Free time and jobs until ``minutes`` are covered."""
    steps: list[Step] = []
    total = 0
    while total < minutes:
        if steps or rng.random() < 0.3:
            r = rng.random()
            if r < 0.10:
                steps.append(Step("parked", rng.randint(90, 360)))
            elif r < 0.14:  # after a cooldown the clocks did come down
                hot = not steps or steps[-1].phase != "cooldown"
                steps.append(Step("hot_parked" if hot else "parked", rng.randint(90, 300)))
            else:  # most turnarounds are quick; a third sit just under an hour
                steps.append(Step("turnaround", rng.randint(30, 50) if r < 0.45
                                  else rng.randint(2, 20)))  # fmt: skip
        job = next(jobs)
        if rng.random() < 0.07:
            steps.append(Step("reserved", rng.randint(45, 300), job))
        else:
            body = _job(rng, job, size, incident_rate)
            if rng.random() < 0.5:
                body.insert(0, Step("image_pull", rng.randint(2, 25), job))
            if rng.random() < 0.3:  # the process has exited, the clocks have not come down
                body.append(Step("cooldown", rng.randint(5, 12), job))
            io = any(s.phase in IO_PHASES for s in body)
            if size > 1 and not io and rng.random() < 0.15:  # asked for one GPU too many
                spare = rng.randrange(size)
                body = [Step(s.phase, s.minutes, job, spare) for s in body]
            steps.extend(body)
        total = sum(s.minutes for s in steps)
    return steps


def _job(rng: random.Random, job: int, size: int, incident_rate: float) -> list[Step]:
    """A job: busy stretches, separated by gaps, checkpoints, evaluations and one incident."""
    work = "light" if rng.random() < 0.12 else "busy"
    # (phase, shortest, longest minutes, weight)
    incidents = [("stuck", 40, 240, 2), ("probed", 40, 240, 1), ("stalled", 12, 24, 3),
                 ("hot_stuck", 40, 200, 1.5)]  # fmt: skip
    if size == GPUS_PER_NODE:  # only a job holding the whole node owns its I/O wait
        incidents += [("starved", 20, 150, 4), ("io_stall", 3, 7, 2), ("io_busy", 20, 90, 2)]
    incident = None
    if rng.random() < incident_rate:
        incident = rng.choices(incidents, [w for *_, w in incidents])[0][:3]
    length = rng.randint(90, 720)
    steps = [Step(work, rng.randint(15, 70), job)]
    done = steps[0].minutes
    while done < length or incident:
        if incident and (done >= length or rng.random() < 0.35):
            sep, incident = Step(incident[0], rng.randint(*incident[1:]), job), None
        else:
            name, lo, hi = rng.choices(SEPARATORS, (4, 3, 2))[0]
            sep = Step(name, rng.randint(lo, hi), job)
        steps += [sep, Step(work, rng.randint(15, 70), job)]
        done += sep.minutes + steps[-1].minutes
    return steps


SEPARATORS = (("epoch_gap", 1, 5), ("checkpoint", 2, 8), ("eval", 20, 40))


def _draw_silences(rng: random.Random, plan: NodePlan, minutes: int) -> list[tuple[int, int, str]]:
    """Agent silences away from the node's labelled episodes, and one-sample restarts."""
    busy: list[tuple[int, int]] = []  # labelled spans, with a margin
    for gang in plan.gangs:
        k = 0
        for s in gang.steps:
            if s.phase in LABELS or s.unused is not None:
                busy.append((k - 15, k + s.minutes + 15))
            k += s.minutes
    out: list[tuple[int, int, str]] = []
    days = minutes / 1440
    for case, rate, lo, hi in (("agent_silent", SILENCES_PER_NODE_DAY, 20, 60),
                               ("agent_restart", RESTARTS_PER_NODE_DAY, 1, 1)):  # fmt: skip
        for _ in range(int(rate * days) + (rng.random() < rate * days % 1)):
            for _try in range(30):
                length = rng.randint(lo, hi)
                a = rng.randint(30, max(30, minutes - length - 30))
                avoid = [(x - 5, y + 5) for x, y, _ in out]
                if case == "agent_silent":
                    avoid += busy
                if not any(x < a + length and a < y for x, y in avoid):
                    out.append((a, a + length, case))
                    break
    return sorted(out)
