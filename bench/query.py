"""Query cost vs. range: fleet summary and GPU series over 30 days vs. 1 day, PostgreSQL.

    python -m bench.query [--quick] [--gpus 1000] [--days 30] [--interval 600] [--dense-days 1]

The data goes through the rollup path, one UTC day at a time: synthetic raw samples of every
GPU (every ``--interval`` seconds; every 60 s in the last ``--dense-days``) are COPYed into
``gpu_samples``, the real rollup (``usage.service.rollup_buckets``: minute buckets, hours
combined from minutes, fleet hours) runs over that day, and the raw partition of the day before is dropped (raw retention) so
the scratch database never holds more than two days of samples. Then each query runs
``--repeat`` times through the service functions (a fresh session each) and the median is
printed. The last line is JSON; its ``ratio`` is the 30-day ÷ 1-day time of the slower query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.db import make_engine
from app.usage import partitions, query
from app.usage import service as usage_service
from bench.ingest import _drop_pg_db, _pg_db

GPUS_PER_NODE = 8


def _inventory(session: Session, gpus: int, last_seen: datetime) -> None:
    nodes = (gpus + GPUS_PER_NODE - 1) // GPUS_PER_NODE
    session.execute(text("INSERT INTO clusters (id, name, created_at) VALUES (1, 'bench', now())"))
    session.execute(
        text(
            "INSERT INTO nodes (id, name, cluster_id, labels, last_seen, created_at) "
            "SELECT n, 'bench-' || lpad(n::text, 5, '0'), 1, '{}', :seen, now() "
            "FROM generate_series(1, :n) n"
        ),
        {"n": nodes, "seen": last_seen},
    )
    session.execute(
        text(
            "INSERT INTO gpus (id, uuid, node_id, index, model, status, last_seen, created_at) "
            "SELECT g, 'GPU-bench-' || g, (g - 1) / 8 + 1, (g - 1) % 8, 'NVIDIA H100', 'ok', "
            ":seen, now() FROM generate_series(1, :n) g"
        ),
        {"n": gpus, "seen": last_seen},
    )


def _day_rows(gpus: int, day: datetime, interval: int) -> list[tuple[Any, ...]]:
    """One day of samples per GPU: a utilization pattern, power, a rising energy counter."""
    rows: list[tuple[Any, ...]] = []
    steps = 86400 // interval
    base = int(day.timestamp()) // interval
    for k in range(steps):
        ts = day + timedelta(seconds=k * interval)
        for g in range(1, gpus + 1):
            util = float((k * 7 + g * 13) % 100)
            power = 100.0 + 3.0 * util
            energy = (base + k) * interval * 400_000 + g  # mJ, 400 W average
            rows.append((g, ts, util, 20 * 1024**3, power, energy, "ok"))
    return rows


def generate(
    factory: sessionmaker[Session], gpus: int, days: int, interval: int, dense_days: int
) -> float:
    """Load ``days`` days ending at the last whole hour, one day per rollup; returns seconds.

    The last ``dense_days`` days are sampled every 60 s so that the minute rollups, which
    ranges up to 3 days read, have every minute as in production; older days (read as hour
    rollups, whose row count does not depend on the sample rate) use ``interval``.
    """
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first_day = (end - timedelta(days=days)).replace(hour=0)
    with factory() as s, s.begin():
        _inventory(s, gpus, end)
    cols = "gpu_id, ts, utilization_gpu, memory_used_bytes, power_watts, energy_mj, status"
    t0 = time.perf_counter()
    day = first_day
    while day < end:
        step = 60 if day >= end - timedelta(days=dense_days) - timedelta(days=1) else interval
        rows = [r for r in _day_rows(gpus, day, step) if r[1] < end]
        with factory() as s, s.begin():
            partitions.ensure_days(s, [day.date()])
            raw: Any = s.connection().connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY gpu_samples ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        minutes: dict[int, set[datetime]] = {}
        for g, ts, *_ in rows:
            minutes.setdefault(g, set()).add(ts.replace(second=0))
        with factory() as s, s.begin():
            stats = usage_service.rollup_buckets(s, gpu=minutes, host={})
            # Raw retention: the day before is no longer needed as the look-back of this one.
            dropped = partitions.drop_before(s, day.date())
        print(
            f"  {day:%Y-%m-%d}: {len(rows):,} samples -> {stats.gpu_minutes:,} minute, "
            f"{stats.gpu_hours:,} hour rollups; dropped {len(dropped)} raw partitions "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        day += timedelta(days=1)
    return time.perf_counter() - t0


def _median_ms(factory: sessionmaker[Session], call: Callable[[Session], object], n: int) -> float:
    times: list[float] = []
    for _ in range(n):
        with factory() as s:
            t0 = time.perf_counter()
            call(s)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(factory: sessionmaker[Session], gpus: int, repeat: int) -> dict[str, float]:
    """Median milliseconds of the fleet summary and of one GPU's series, 30 days and 1 day."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    uuid = f"GPU-bench-{gpus // 2 + 1}"
    out: dict[str, float] = {}
    for label, span in (("30d", timedelta(days=30)), ("1d", timedelta(days=1))):
        start = end - span

        def summary(s: Session, start: datetime = start) -> object:
            return query.fleet_summary(s, start=start, end=end)

        def series(s: Session, start: datetime = start) -> object:
            return query.gpu_series(s, uuid=uuid, metric="utilization", start=start, end=end)

        summary(factory())  # warm the plan and page caches once
        out[f"summary_{label}_ms"] = _median_ms(factory, summary, repeat)
        out[f"series_{label}_ms"] = _median_ms(factory, series, repeat)
        with factory() as s:
            got = query.gpu_series(s, uuid=uuid, metric="utilization", start=start, end=end)
        out[f"series_{label}_points"] = len(got.points)
        out[f"series_{label}_resolution"] = got.resolution  # type: ignore[assignment]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 GPUs instead of 1,000")
    p.add_argument("--gpus", type=int, default=None, help="GPUs (default 1000, quick 100)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--interval", type=int, default=None, help="seconds between raw samples")
    p.add_argument("--dense-days", type=int, default=1, help="last days sampled every 60 s")
    p.add_argument("--repeat", type=int, default=7, help="runs per query (median)")
    args = p.parse_args()
    gpus = args.gpus or (100 if args.quick else 1000)
    interval = args.interval or 600
    url = _pg_db(f"gpuledger_bench_query_{os.getpid()}")
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        print(
            f"generating {gpus} GPUs x {args.days} days through the rollup: every {interval} s, "
            f"the last {args.dense_days} days every 60 s"
        )
        load_s = generate(factory, gpus, args.days, interval, args.dense_days)
        with factory() as s:
            counts = {
                t: s.scalar(text(f"SELECT count(*) FROM {t}"))  # noqa: S608 (fixed names)
                for t in ("gpu_minute_rollups", "gpu_hour_rollups", "fleet_hour_rollups")
            }
        print(f"loaded in {load_s:.0f} s: {counts}")
        m = measure(factory, gpus, args.repeat)
    finally:
        engine.dispose()
        _drop_pg_db(url)
    for what in ("summary", "series"):
        print(
            f"{what}: 30 days {m[f'{what}_30d_ms']:.2f} ms, 1 day {m[f'{what}_1d_ms']:.2f} ms "
            f"(median of {args.repeat})"
        )
    print(
        f"series points: 30 days {m['series_30d_points']:.0f} ({m['series_30d_resolution']}), "
        f"1 day {m['series_1d_points']:.0f} ({m['series_1d_resolution']})"
    )
    slower = max(("summary", "series"), key=lambda w: m[f"{w}_30d_ms"])
    ratio = m[f"{slower}_30d_ms"] / m[f"{slower}_1d_ms"]
    print(json.dumps({
        "bench": "query", "ratio": round(ratio, 2), "slower": slower, "gpus": gpus,
        "days": args.days, "interval_s": interval, "dense_days": args.dense_days, "repeat": args.repeat,
        "load_s": round(load_s, 1), **{k: round(v, 2) if isinstance(v, float) else v for k, v in m.items()},
        **{f"{t}_rows": c for t, c in counts.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
