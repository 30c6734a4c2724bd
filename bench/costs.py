"""Spend report time vs. period length, and the ledger's catch-up after a bill lands (PostgreSQL).

    python -m bench.costs [--quick] [--gpus 1000] [--days 30] [--repeat 7]

A scratch database gets ``--gpus`` GPUs (8 per node, AWS p4d/p5 instances, teams by node label,
one job per node and day holding its GPUs) and ``--days`` days of hourly GPU rollups written
directly (the rollup path itself is measured by ``bench.query``). Then, in order:

1. the ledger prices every GPU-hour from the price book (``costs.reprice`` draining its queue);
2. a CUR 2.0 bill for half of the instances over the whole period is imported, and the ledger
   re-prices what it touched: the billed hours, and the other half's estimates, whose
   effective/list ratio the bill changes (the "catch-up after a bill lands");
3. after ``ANALYZE`` (what autovacuum does within a minute of a bulk change), the spend report
   (by team, with its daily breakdown, previous period, coverage and top idle owners) runs
   ``--repeat`` times for the last day and for the whole period; medians.

The last line is JSON; ``ratio`` is the report's time for 30 days ÷ for 1 day (the same report
code, the same data, one session per run), the goal is ≤ 2. BENCH_PROFILE=1 prints a cProfile
of both reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.billing import service as billing_service
from app.costs import ledger
from app.db import make_engine
from app.reports import service as reports_service
from bench import billing_samples as samples
from bench.ingest import _drop_pg_db, _pg_db

GPUS_PER_NODE = 8
TEAMS = ("vision", "nlp", "research", "platform", "ads")
START = samples.START  # 2026-11-01, where the generated bills start


def _instance(node: int) -> str:
    return f"i-{node:017x}"


def _instance_type(node: int) -> str:
    # As bench.billing_samples picks the type from the id's last hex digit.
    return samples.GPU_TYPES[int(_instance(node)[-1], 16) % 2][0]


def generate(factory: sessionmaker[Session], gpus: int, days: int) -> dict[str, int]:
    """Inventory and ``days`` of hourly GPU rollups; returns row counts."""
    nodes = (gpus + GPUS_PER_NODE - 1) // GPUS_PER_NODE
    with factory() as s, s.begin():
        s.execute(text("INSERT INTO clusters (id, name, created_at) VALUES (1, 'bench', now())"))
        for n in range(1, nodes + 1):
            s.execute(
                text(
                    "INSERT INTO nodes (id, name, cluster_id, provider, instance_id, "
                    "instance_type, region, labels, created_at) VALUES (:n, :name, 1, 'aws', "
                    ":iid, :itype, 'us-east-1', CAST(:labels AS json), now())"
                ),
                {"n": n, "name": f"bench-{n:05d}", "iid": _instance(n), "itype": _instance_type(n),
                 "labels": json.dumps({"team": TEAMS[n % len(TEAMS)]})},
            )  # fmt: skip
        s.execute(
            text(
                "INSERT INTO gpus (id, uuid, node_id, index, model, status, created_at) "
                "SELECT g, 'GPU-bench-' || g, (g - 1) / 8 + 1, (g - 1) % 8, 'NVIDIA H100', 'ok', "
                "now() FROM generate_series(1, :n) g"
            ),
            {"n": gpus},
        )
        # Each node's GPUs are held by one job a day (busy, part-used or idle by GPU), except
        # every fifth node, which nobody holds.
        s.execute(
            text(
                "INSERT INTO gpu_hour_rollups (gpu_id, bucket, samples, observed_seconds, "
                "utilization_mean, utilization_max, memory_used_max_bytes, power_mean_watts, "
                "energy_joules, idle_seconds, low_util_seconds, busy_seconds, owners) "
                "SELECT g, b, 360, 3600, u, u, 20 * 1024.0 ^ 3, 100 + 3 * u, (100 + 3 * u) * 3600, "
                "CASE WHEN u < 5 THEN 3600 ELSE 0 END, CASE WHEN u >= 5 AND u < 30 THEN 3600 "
                "ELSE 0 END, CASE WHEN u >= 30 THEN 3600 ELSE 0 END, "
                "CASE WHEN ((g - 1) / 8 + 1) % 5 = 0 THEN NULL ELSE json_build_array("
                "json_build_object('job_id', 'job-' || ((g - 1) / 8 + 1) || '-' || "
                "extract(doy FROM b)::int, 'account', 'acct-' || ((g - 1) / 8 + 1) % 7, "
                "'seconds', 3600)) END "
                "FROM generate_series(1, :gpus) g, "
                "generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz) "
                "- interval '1 hour', interval '1 hour') b, "
                "LATERAL (SELECT ((g * 37 + extract(hour FROM b)::int * 11) % 100)::float AS u) x"
            ),
            {"gpus": gpus, "start": START, "end": START + timedelta(days=days)},
        )
        counts = {"nodes": nodes, "gpu_hours": int(s.scalar(text("SELECT count(*) FROM gpu_hour_rollups")) or 0)}  # fmt: skip
        s.execute(
            text(
                "INSERT INTO cost_dirty (node_id, hour, version) SELECT DISTINCT g.node_id, "
                "r.bucket, 1 FROM gpu_hour_rollups r JOIN gpus g ON g.id = r.gpu_id"
            )
        )
    return counts


def _timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _report_ms(factory: sessionmaker[Session], start: datetime, end: datetime, n: int) -> float:
    times = []
    for _ in range(n + 1):  # the first run warms plans and caches and is not counted
        with factory() as s:
            t0 = time.perf_counter()
            reports_service.spend_report(s, start=start, end=end, tz="UTC", label="bench",
                                         group_by=("team",), now=end)  # fmt: skip
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 GPUs instead of 1,000")
    p.add_argument("--gpus", type=int, default=None)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=7, help="report runs per period (median)")
    args = p.parse_args()
    gpus = args.gpus or (100 if args.quick else 1000)
    url = _pg_db(f"gpuledger_bench_costs_{os.getpid()}")
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        factory = sessionmaker(engine, expire_on_commit=False)

        def scope() -> Session:
            return _Scope(factory)  # type: ignore[return-value]

        t0 = time.perf_counter()
        counts = generate(factory, gpus, args.days)
        print(f"generated {counts} in {time.perf_counter() - t0:.1f} s", flush=True)
        initial_s = _timed(lambda: ledger.reprice_all(scope))
        with factory() as s:
            ledger_rows = int(s.scalar(text("SELECT count(*) FROM cost_ledger_hours")) or 0)
            day_rows = int(s.scalar(text("SELECT count(*) FROM cost_ledger_days")) or 0)
        print(f"ledger priced from the price book in {initial_s:.1f} s: {ledger_rows:,} hour "
              f"rows, {day_rows:,} day rows", flush=True)  # fmt: skip
        # Half the nodes of each instance type have a bill; the other half's estimates are
        # re-rated by it.
        billed = [_instance(n) for n in range(1, counts["nodes"] + 1) if n % 4 in (1, 2)]
        with tempfile.TemporaryDirectory() as tmp:
            bill = Path(tmp) / "cur2.csv"
            samples.write_cur2(bill, len(billed) * 24 * args.days, instances=billed)
            t0 = time.perf_counter()
            with factory() as s, s.begin():
                summary = billing_service.import_file(s, path=bill)
            import_s = time.perf_counter() - t0
        with factory() as s:
            stale = int(s.scalar(text("SELECT count(*) FROM cost_dirty")) or 0)
        catchup_s = _timed(lambda: ledger.reprice_all(scope))
        print(f"bill: {summary.rows_accepted:,} rows imported in {import_s:.1f} s; ledger caught "
              f"up on {stale:,} stale node-hours in {catchup_s:.1f} s", flush=True)  # fmt: skip
        # Planner statistics, as autovacuum's analyze gives them within a minute of a bulk
        # change; right after the load they still describe empty tables.
        with factory() as s, s.begin():
            s.execute(text("ANALYZE cost_ledger_days, cost_ledger_hours, billing_line_items"))
        end = START + timedelta(days=args.days)
        one_day = _report_ms(factory, end - timedelta(days=1), end, args.repeat)
        month = _report_ms(factory, START, end, args.repeat)
        if os.environ.get("BENCH_PROFILE"):
            _profile(factory, START, end)
    finally:
        engine.dispose()
        _drop_pg_db(url)
    ratio = month / one_day
    print(f"report by team: {args.days} days {month:.1f} ms, 1 day {one_day:.1f} ms "
          f"(median of {args.repeat}); ratio {ratio:.2f}")  # fmt: skip
    print(json.dumps({
        "bench": "costs", "ratio": round(ratio, 2), "baseline": "the same report over 1 day",
        "gpus": gpus, "days": args.days, "report_1d_ms": round(one_day, 1),
        f"report_{args.days}d_ms": round(month, 1), "initial_pricing_s": round(initial_s, 1),
        "ledger_hour_rows": ledger_rows, "ledger_day_rows": day_rows,
        "bill_rows": summary.rows_accepted, "bill_import_s": round(import_s, 1),
        "catchup_stale_node_hours": stale, "catchup_s": round(catchup_s, 1),
    }))  # fmt: skip


class _Scope:
    """``session_scope`` for the bench's engine: commit on success."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.session = factory()

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.close()


def _profile(factory: sessionmaker[Session], start: datetime, end: datetime) -> None:
    import cProfile
    import pstats

    for first in (end - timedelta(days=1), start):
        with factory() as s:
            prof = cProfile.Profile()
            prof.enable()
            reports_service.spend_report(s, start=first, end=end, tz="UTC", label="p",
                                         group_by=("team",), now=end)  # fmt: skip
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
