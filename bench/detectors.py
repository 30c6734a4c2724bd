"""Detector precision, recall, time to detect and dollar error against a labelled fleet.

    python -m bench.detectors [--quick] [--gpus 400] [--hours 72] [--seed 1]
                              [--database-url postgresql://…] [--sqlite]

``bench.fleet_truth`` generates a fleet (default 400 GPUs on 50 nodes over 3 days, one sample a
minute; ``--quick``: 64 GPUs over 12 hours) with labelled waste episodes and hard cases that are
not waste. Its batches go through ``ingest_batch`` into a scratch database (PostgreSQL on the
local server, created and dropped by the bench; ``--sqlite``: a temporary SQLite file), rolled
up every 6 hours of data and at the end, priced (``reprice_pending``), then ``evaluate(now=end)``
runs once, its first-pass look-back set to cover the whole period.

A finding matches a label of its kind on the same GPU (node, for stale_agent) when their
intervals overlap; one that matches none but overlaps an episode the window's end cut short
(``Fleet.undecided``) is not scored. Per kind: precision = matched findings / findings, recall =
matched labels / labels, median minutes from a label's start to the first matching finding's
``opened_at``, and dollar error = |sum of cost_so_far - expected waste| / expected waste
(expected: the labelled time the agent reported x the GPU's list price from the shipped price
book; data starvation counts the unused share of it), also signed per label case over matched
pairs, and for energy_waste the excess kWh against the evidence's. Misses are listed by the
label's case and false findings by what the GPU was doing (``bench.fleet_truth`` phases).

Speed: the median of 3 first ``evaluate`` passes (1 with ``--quick``) over 2 hours of minute
and hour rollups, priced, written directly for 1,000 and for 10,000 GPUs (``--quick``: 1,000
and 4,000); ``ratio`` = (time at the larger size / time at 1,000) / (size ratio), 1.0 being
linear, the 1,000-GPU pass of the same run the baseline. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, literal, select, text
from sqlalchemy.orm import Session

from app import migrate
from app.auth import service as auth_service
from app.config import configure, settings
from app.costs import dirty as cost_dirty
from app.costs import ledger as cost_ledger
from app.db import UTCDateTime, make_engine
from app.findings import service as findings_service
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.kit.timebuckets import MINUTE, utc
from app.models import (
    Cluster,
    Gpu,
    GpuHourRollup,
    GpuMinuteRollup,
    HostHourRollup,
    HostMinuteRollup,
    Node,
)
from app.models.findings import Finding
from app.usage import service as usage_service
from bench.billing_import import DEFAULT_SERVER, _scratch_database, _server_answers
from bench.fleet_truth import GPUS_PER_NODE, Fleet, generate
from bench.truth_score import FoundEpisode, KindScore, phase_mix, score, summarize


def _nothing() -> None:
    return None


# -- the pipeline ------------------------------------------------------------------------------
def push(
    session: Session, fleet: Fleet, *, commit: Callable[[], None] = _nothing, rollup_hours: int = 6
) -> int:
    """The fleet's batches through ``ingest_batch``, as its nodes' agents send them, an hour at
    a time, rolled up every ``rollup_hours`` (a bounded queue, as the scheduler keeps it);
    returns the GPU samples stored."""
    tokens = {p.name: auth_service.create_node_token(session, node_name=p.name).secret
              for p in fleet.nodes}  # fmt: skip
    commit()
    rows = 0
    for hour, chunk in enumerate(fleet.chunks(), start=1):
        for node, batch in chunk:
            state = ingest_service.authenticate(session, tokens[node])
            result = ingest_service.ingest_batch(
                session, token=state, batch=IngestBatch.model_validate(batch)
            )
            rows += result.inserted
        commit()
        while hour % rollup_hours == 0 and usage_service.rollup_pending(session).dirty:
            commit()
    commit()
    return rows


def derive(session: Session, *, commit: Callable[[], None] = _nothing) -> None:
    """Rollups and the cost ledger until nothing is pending."""
    while usage_service.rollup_pending(session).dirty:
        commit()
    while cost_ledger.reprice_pending(session).keys:
        commit()
    commit()


def found_episodes(session: Session, *, now: datetime) -> list[FoundEpisode]:
    """Every finding, open or resolved, as the scorer reads it."""
    rows = session.execute(
        select(Finding, Node.name, Gpu.uuid)
        .join(Node, Node.id == Finding.node_id)
        .outerjoin(Gpu, Gpu.id == Finding.gpu_id)
        .order_by(Finding.id)
    ).all()
    out = []
    for f, node, uuid in rows:
        end = f.resolved_at or min(utc(f.last_seen_at) + MINUTE, utc(now))
        kwh = (f.evidence or {}).get("excess_energy_kwh")
        out.append(FoundEpisode(f.kind, node, uuid, utc(f.started_at), utc(f.opened_at),
                                utc(end), f.cost_so_far, kwh))  # fmt: skip
    return out


def run_truth(session: Session, fleet: Fleet, *, commit: Callable[[], None] = _nothing
              ) -> dict[str, KindScore]:  # fmt: skip
    """Ingest, roll up, price, evaluate once at the fleet's end, and score the findings."""
    push(session, fleet, commit=commit)
    derive(session, commit=commit)
    findings_service.evaluate(session, now=fleet.end)
    commit()
    return score(found_episodes(session, now=fleet.end), fleet.labels, undecided=fleet.undecided)


# -- speed -------------------------------------------------------------------------------------
SPEED_START = datetime(2026, 12, 7, tzinfo=UTC)
SPEED_MINUTES = 120


def write_window(session: Session, gpus: int, minutes: int = SPEED_MINUTES) -> datetime:
    """Inventory and ``minutes`` of minute rollups for ``gpus`` GPUs (8 a node), written
    directly: most GPUs busy, some held idle, free, starved (their whole node) or idle at high
    power. Returns the window's end."""
    nodes = -(-gpus // GPUS_PER_NODE)
    end = SPEED_START + timedelta(minutes=minutes)
    now = SPEED_START
    session.execute(insert(Cluster), [{"id": 1, "name": "speed", "created_at": now}])
    session.execute(insert(Node), [
        {"id": n, "name": f"speed-{n:05d}", "cluster_id": 1, "provider": "aws",
         "instance_type": "p4d.24xlarge", "region": "us-east-1", "labels": {"team": "speed"},
         "created_at": now, "last_seen": end - MINUTE} for n in range(1, nodes + 1)
    ])  # fmt: skip
    session.execute(insert(Gpu), [
        {"id": g, "uuid": f"GPU-speed-{g}", "node_id": (g - 1) // GPUS_PER_NODE + 1,
         "index": (g - 1) % GPUS_PER_NODE, "model": "NVIDIA A100-SXM4-40GB",
         "memory_total_bytes": 40 * 1024**3, "status": "ok", "created_at": now,
         "last_seen": end - MINUTE} for g in range(1, gpus + 1)
    ])  # fmt: skip
    period = 6  # the starved GPUs' saw-tooth: written once, then copied minute by minute
    first = [_window_rows(gpus, nodes, m) for m in range(period)]
    for gpu_rows, host_rows in first:
        session.execute(insert(GpuMinuteRollup), gpu_rows)
        session.execute(insert(HostMinuteRollup), host_rows)
    # The hours: what the rollup makes of 60 such minutes (10 saw-tooth periods).
    for h in range(-(-minutes // 60)):
        hour = SPEED_START + timedelta(hours=h)
        for hours, i in ((GpuHourRollup, 0), (HostHourRollup, 1)):
            session.execute(insert(hours), [_hour_row([m[i][r] for m in first], hour)
                                            for r in range(len(first[0][i]))])  # fmt: skip
        cost_dirty.mark(session, [(n, hour) for n in range(1, nodes + 1)])
    for table in (GpuMinuteRollup, HostMinuteRollup):
        cols = [c for c in table.__table__.columns if c.name != "bucket"]
        for m in range(period, minutes):
            bucket = literal(SPEED_START + timedelta(minutes=m), UTCDateTime()).label("bucket")
            source = select(bucket, *cols).where(
                table.bucket == SPEED_START + timedelta(minutes=m % period)
            )
            session.execute(insert(table).from_select(["bucket", *(c.name for c in cols)], source))
    return end


def _window_rows(
    gpus: int, nodes: int, m: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bucket = SPEED_START + timedelta(minutes=m)
    holder = [{"job_id": "1", "user": "u", "account": "speed", "seconds": 60.0}]
    host_rows = []
    for n in range(1, nodes + 1):
        io = 0.35 if n % 10 == 0 else 0.02
        host_rows.append({"node_id": n, "bucket": bucket, "samples": 1, "observed_seconds": 60.0,
                          "cpu_busy_mean": 0.3, "iowait_mean": io, "iowait_max": io + 0.05,
                          "io_pressure_some_mean": io * 1.4, "io_pressure_full_mean": io * 0.7,
                          "disk_read_bytes": 1.0e11 if io > 0.2 else 2.0e9,
                          "disk_read_bytes_per_s_max": 1.8e9 if io > 0.2 else 4.0e7})  # fmt: skip
    gpu_rows = []
    for g in range(1, gpus + 1):
        state = "starved" if ((g - 1) // GPUS_PER_NODE + 1) % 10 == 0 else SPEED_MIX[g % 20]
        util, power = {"busy": (93.0, 330.0), "idle": (0.0, 55.0), "free": (0.0, 55.0),
                       "hot": (0.0, 190.0), "starved": (20 + 8.0 * m, 150.0)}[state]  # fmt: skip
        gpu_rows.append({"gpu_id": g, "bucket": bucket, "samples": 1, "observed_seconds": 60.0,
                         "utilization_mean": util, "utilization_max": util,
                         "memory_used_max_bytes": 0 if state == "free" else 30 * 1024**3,
                         "power_mean_watts": power, "energy_joules": power * 60,
                         "idle_seconds": 60.0 if util < 5 else 0.0,
                         "low_util_seconds": 60.0 if 5 <= util < 30 else 0.0,
                         "busy_seconds": 60.0 if util >= 30 else 0.0,
                         "owners": None if state == "free" else holder})  # fmt: skip
    return gpu_rows, host_rows


def _hour_row(minutes: list[dict[str, Any]], hour: datetime) -> dict[str, Any]:
    """An hour of these minutes repeated: sums and means x 60 / len(minutes)."""
    times = 60 / len(minutes)
    row: dict[str, Any] = {**minutes[0], "bucket": hour}
    for name in minutes[0]:
        values = [m[name] for m in minutes]
        if name.endswith(("_seconds", "_bytes", "_joules", "samples")) and "max" not in name:
            row[name] = sum(values) * times
        elif name.endswith("_max") or "_max_" in name:
            row[name] = max(values)
        elif name.endswith("_mean") or name.endswith("_watts"):
            row[name] = sum(values) / len(values)
    if row.get("owners"):
        row["owners"] = [{**row["owners"][0], "seconds": 3600.0}]
    return row


# Per GPU (by id mod 20): 14 busy, 3 held idle, 2 free, 1 idle at high power.
SPEED_MIX = ["busy"] * 14 + ["idle"] * 3 + ["free"] * 2 + ["hot"]


def evaluate_seconds(url: str, gpus: int, repeat: int = 3) -> float:
    """The median of ``repeat`` first ``evaluate`` passes (no findings, no cursor) over the
    same window of ``gpus`` GPUs, in seconds."""
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            _empty(s, WINDOW_TABLES)
            end = write_window(s, gpus)
            while cost_ledger.reprice_pending(s).keys:
                s.commit()
            s.commit()
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        times = []
        for _ in range(repeat):
            with Session(engine) as s:
                _empty(s, FINDING_TABLES)
                s.commit()
                t0 = time.perf_counter()
                findings_service.evaluate(s, now=end)
                s.commit()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        engine.dispose()


FINDING_TABLES = ("findings", "finding_dirty", "finding_cursors")
WINDOW_TABLES = (*FINDING_TABLES, "cost_dirty", "cost_ledger_days", "cost_ledger_hours",
                 "gpu_minute_rollups", "host_minute_rollups", "gpu_hour_rollups",
                 "host_hour_rollups", "fleet_hour_rollups", "gpus", "nodes", "clusters")  # fmt: skip


def _empty(session: Session, tables: Sequence[str]) -> None:
    for table in tables:
        session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed table names)


# -- the command -------------------------------------------------------------------------------
def _table(fleet: Fleet, scores: dict[str, KindScore]) -> list[str]:
    lines = [f"{'kind':<17} {'labels':>6} {'found':>6} {'precision':>9} {'recall':>6} "
             f"{'detect min':>10} {'expected $':>11} {'found $':>11} {'$ error':>7}"]  # fmt: skip
    for kind, s in scores.items():
        lines.append(
            f"{kind:<17} {s.labels:>6} {s.findings:>6} {_fmt(s.precision, 3):>9} "
            f"{_fmt(s.recall, 3):>6} {_fmt(s.median_detect_min, 1):>10} "
            f"{_fmt(s.expected_cost if s.costed else None, 2):>11} "
            f"{_fmt(s.found_cost if s.findings else None, 2):>11} {_fmt(s.dollar_error, 3):>7}"
        )
    summary = summarize(fleet, scores)
    for kind, row in summary.items():
        s = scores[kind]
        if s.merged:
            lines.append(f"  {kind}: {s.merged} findings each span more than one labelled episode")
        if row["excess_kwh_error"] is not None:
            lines.append(f"  {kind} excess energy of matched episodes: found "
                         f"{s.matched_found_kwh:,.1f} kWh, expected {s.matched_expected_kwh:,.1f} "
                         f"kWh ({s.kwh_error:+.1%}; idle floors differ by model)")  # fmt: skip
        if row["dollar_error_by_case"]:
            lines.append(f"  {kind} found $ vs expected $ of matched episodes, by case: "
                         + ", ".join(f"{c} {e:+.1%}" for c, e in s.dollar_error_by_case.items()))  # fmt: skip
        if row["missed"]:
            lines.append(f"  {kind} missed, by case: {_counts(row['missed'])}")
            lines.extend(f"    e.g. {lb.gpu_uuid or lb.node} {lb.start:%d %H:%M}-{lb.end:%H:%M} "
                         f"{lb.case}" for lb in s.missed[:EXAMPLES])  # fmt: skip
        if row["false"]:
            lines.append(
                f"  {kind} false findings, by what the GPU/node did: {_counts(row['false'])}"
            )
            lines.extend(f"    e.g. {f.gpu_uuid or f.node} {f.start:%d %H:%M}-{f.end:%H:%M} "
                         f"{phase_mix(fleet, f)}" for f in s.false[:EXAMPLES])  # fmt: skip
    return lines


EXAMPLES = 5


def _fmt(value: float | Decimal | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{case} {n}" for case, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.detectors", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="64 GPUs over 12 hours; speed at 1k/4k")
    p.add_argument("--gpus", type=int, help="fleet size (default 400; --quick 64)")
    p.add_argument("--hours", type=int, help="fleet period (default 72; --quick 12)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database-url", help="PostgreSQL server URL; the bench creates and drops "
                   f"its own scratch database there (default {DEFAULT_SERVER})")  # fmt: skip
    p.add_argument("--sqlite", action="store_true", help="a temporary SQLite file instead")
    args = p.parse_args(argv)
    gpus = args.gpus or (64 if args.quick else 400)
    hours = args.hours or (12 if args.quick else 72)
    sizes = (1000, 4000) if args.quick else (1000, 10000)
    t0 = time.perf_counter()
    fleet = generate(gpus, hours, seed=args.seed)
    print(f"fleet: {gpus} GPUs on {len(fleet.nodes)} nodes over {hours} h, seed {args.seed}: "
          f"{len(fleet.labels)} labels, {len(fleet.negatives)} hard cases "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    # One pass at the end evaluates the whole period, as running it every minute would have.
    if settings.findings_initial_lookback_hours < hours + 1:
        configure(findings_initial_lookback_hours=hours + 1)
    with _database(args) as url:
        rows, timings, scores = _truth_run(url, fleet)
        print(f"{rows:,} GPU samples; " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        print("\n".join(_table(fleet, scores)), flush=True)
    with _database(args) as url:  # a fresh one: the speed windows alone
        migrate.upgrade(url)
        speed = {n: evaluate_seconds(url, n, repeat=1 if args.quick else 3) for n in sizes}
    small, large = sizes
    ratio = speed[large] / speed[small] / (large / small)
    print(f"evaluate over {SPEED_MINUTES} min of minute rollups: {small:,} GPUs {speed[small]:.2f} s, "
          f"{large:,} GPUs {speed[large]:.2f} s; ratio {ratio:.2f} (1.0 = linear; baseline: the "
          f"{small:,}-GPU pass in this run)")  # fmt: skip
    days = hours // 24 if hours % 24 == 0 else round(hours / 24, 2)
    out: dict[str, Any] = {"bench": "detectors", "gpus": gpus, "days": days, "seed": args.seed,
                           "database": "sqlite" if args.sqlite else "postgresql"}  # fmt: skip
    out.update(summarize(fleet, scores))
    out.update({f"pass_seconds_{small // 1000}k": round(speed[small], 3),
                f"pass_seconds_{large // 1000}k": round(speed[large], 3),
                "ratio": round(ratio, 2)})  # fmt: skip
    print(json.dumps(out))
    return 0


def _truth_run(url: str, fleet: Fleet) -> tuple[int, dict[str, float], dict[str, KindScore]]:
    """The fleet through ingest (rolled up hourly), pricing and one evaluation; scored."""
    migrate.upgrade(url)
    engine = make_engine(url)
    timings = {}
    try:
        with Session(engine) as s:
            t0 = time.perf_counter()
            rows = push(s, fleet, commit=s.commit)
            timings["ingest and hourly rollups"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            derive(s, commit=s.commit)
            timings["pricing"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            findings_service.evaluate(s, now=fleet.end)
            s.commit()
            timings["evaluate"] = time.perf_counter() - t0
            found = found_episodes(s, now=fleet.end)
    finally:
        engine.dispose()
    return rows, timings, score(found, fleet.labels, undecided=fleet.undecided)


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    """A scratch database: on the PostgreSQL server (dropped after), or a temporary SQLite file."""
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="gpuledger-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    server = args.database_url or DEFAULT_SERVER
    if not _server_answers(server):
        raise SystemExit(f"no PostgreSQL server answers at {server} (--sqlite runs without one)")
    try:
        yield _scratch_database(server, create=True)
    finally:
        _scratch_database(server, create=False)


if __name__ == "__main__":
    sys.exit(main())
