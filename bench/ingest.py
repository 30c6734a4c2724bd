"""Ingest throughput: raw COPY vs. the HTTP ingest API, PostgreSQL and embedded SQLite.

    python -m bench.ingest [--quick] [--workers 2] [--samples-per-batch 6] [--clients 2]

(a) COPY of N generated GPU-sample rows straight into ``gpu_samples``, with the process and
host samples that (b)'s requests carry COPYed into their own tables (the ceiling);
(b) the same rows as agent batches (gzip JSON, 8 GPUs per node, one batch per node per
``--samples-per-batch`` intervals: 48 samples at the default, an agent shipping every
minute) POSTed by ``--agents`` concurrent simulated agents to uvicorn with ``--workers``
processes, as production runs it; then catch-up batches (``--catchup-per-batch`` intervals,
2,000 samples: a spool flushed after an outage). The load generator runs in ``--clients``
separate processes; its CPU use is printed. The last line is JSON; its ``ratio`` is the
headline regime, agent batches; ``catchup_ratio`` is the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import migrate
from app.auth import service as auth_service
from app.db import make_engine

PG = os.environ.get("GPULEDGER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GPUS_PER_NODE = 8
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=6)


def _pg_db(name: str) -> str:
    admin = make_engine(str(make_url(PG).set(drivername="postgresql+psycopg")))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG).set(drivername="postgresql+psycopg", database=name).render_as_string(False)


def _drop_pg_db(url: str) -> None:
    admin = make_engine(str(make_url(url).set(database="postgres")))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def batches(
    nodes: int, intervals: int, per_batch: int, prefix: str = "bench"
) -> list[tuple[str, dict[str, Any]]]:
    """Agent batches in send order: per node, ``intervals`` samples per GPU at 10 s."""
    out: list[tuple[str, dict[str, Any]]] = []
    for first in range(0, intervals, per_batch):
        for n in range(nodes):
            name = f"{prefix}-{n:05d}"
            gpus = [{"uuid": f"GPU-{name}-{i}", "index": i, "model": "NVIDIA H100 80GB HBM3"}
                    for i in range(GPUS_PER_NODE)]  # fmt: skip
            samples: list[dict[str, Any]] = []
            host: list[dict[str, Any]] = []
            for k in range(first, min(first + per_batch, intervals)):
                ts = (START + timedelta(seconds=10 * k)).isoformat()
                host.append({"ts": ts, "iowait_ratio": 0.02, "disk_read_bytes_per_s": 1e6})
                samples.extend(
                    {
                        "gpu_uuid": g["uuid"], "ts": ts, "utilization_gpu": (k * 7 + n) % 100,
                        "memory_used_bytes": 20 * 1024**3, "power_watts": 350.0,
                        "energy_mj": 1_000_000 + k * 3_500_000, "temperature_c": 60.0,
                        "processes": [{"pid": 4242, "used_memory_bytes": 20 * 1024**3,
                                       "owner": {"user": "alice", "namespace": "ml"}}],
                    }
                    for g in gpus
                )  # fmt: skip
            out.append((name, {"schema_version": 1, "batch_id": f"{name}-{first}",
                               "node": {"name": name, "cluster": "bench"}, "gpus": gpus,
                               "samples": samples, "host_samples": host}))  # fmt: skip
    return out


def raw_copy(url: str, nodes: int, intervals: int) -> float:
    """GPU-sample rows/s of COPY of exactly the rows (b)'s requests carry, into the same tables.

    Per interval and node that is 8 GPU samples, their 8 process samples and one host sample
    (as ``batches`` generates them); the rate counts GPU-sample rows, as (b) does. Ingest's
    own extra work (dirty marks, ``last_seen``) is part of (b)'s cost, not (a)'s.
    """
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO clusters (id, name, created_at) VALUES (1, 'c', now())"))
        for n in range(nodes):
            conn.execute(
                text(
                    "INSERT INTO nodes (id, name, labels, created_at) VALUES (:i, :n, '{}', now())"
                ),
                {"i": n + 1, "n": f"copy-{n}"},
            )
        conn.execute(
            text(
                "INSERT INTO gpus (id, uuid, node_id, index, status, created_at) "
                "SELECT g, 'GPU-copy-' || g, (g - 1) / 8 + 1, (g - 1) % 8, 'ok', now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": nodes * GPUS_PER_NODE},
        )
        days = {(START + timedelta(seconds=10 * k)).date() for k in range(intervals)}
        from app.usage import partitions

        with Session(bind=conn) as s:
            partitions.ensure_days(s, days)
    gib20 = 20 * 1024**3
    gpu_ids = range(1, nodes * GPUS_PER_NODE + 1)
    times = [START + timedelta(seconds=10 * k) for k in range(intervals)]
    # The values ``batches`` sends (node n's GPUs are 8n+1 … 8n+8 here).
    tables: dict[str, list[tuple[Any, ...]]] = {
        "gpu_samples (gpu_id, ts, utilization_gpu, memory_used_bytes, power_watts, energy_mj, "
        "temperature_c, process_count, status)": [
            (g, ts, float((k * 7 + (g - 1) // 8) % 100), gib20, 350.0,
             1_000_000 + k * 3_500_000, 60.0, 1, "ok")
            for k, ts in enumerate(times) for g in gpu_ids
        ],
        "gpu_process_samples (gpu_id, ts, pid, used_memory_bytes, \"user\", namespace)": [
            (g, ts, 4242, gib20, "alice", "ml") for ts in times for g in gpu_ids
        ],
        "host_samples (node_id, ts, iowait_ratio, disk_read_bytes_per_s)": [
            (n, ts, 0.02, 1e6) for ts in times for n in range(1, nodes + 1)
        ],
    }  # fmt: skip
    raw: Any = engine.raw_connection()
    try:
        t0 = time.perf_counter()
        with raw.cursor() as cur:
            for target, rows in tables.items():
                with cur.copy(f"COPY {target} FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
        raw.commit()
        elapsed = time.perf_counter() - t0
    finally:
        raw.close()
        engine.dispose()
    return nodes * GPUS_PER_NODE * intervals / elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens(url: str, names: list[str]) -> dict[str, str]:
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        out = {n: auth_service.create_node_token(s, node_name=n).secret for n in names}
    engine.dispose()
    return out


async def _load(
    port: int, work: list[tuple[str, bytes]], tokens: dict[str, str], agents: int
) -> list[float]:
    """Each simulated agent owns some nodes and sends their batches one at a time."""
    by_agent: dict[int, list[tuple[str, bytes]]] = {}
    for name, body in work:
        by_agent.setdefault(zlib.crc32(name.encode()) % agents, []).append((name, body))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=agents, max_keepalive_connections=agents)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
    ) as c:

        async def agent(items: list[tuple[str, bytes]]) -> None:
            for name, body in items:
                headers = {"Authorization": f"Bearer {tokens[name]}", "Content-Encoding": "gzip",
                           "Content-Type": "application/json"}  # fmt: skip
                t0 = time.perf_counter()
                r = await c.post("/api/v1/ingest", content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:300]}")

        await asyncio.gather(*(agent(items) for items in by_agent.values()))
    return latencies


def _load_process(
    port: int, work: list[tuple[str, bytes]], tokens: dict[str, str], agents: int
) -> tuple[list[float], float]:
    """One load-generator process: its latencies and the CPU seconds it used."""
    cpu = time.process_time()
    latencies = asyncio.run(_load(port, work, tokens, agents))
    return latencies, time.process_time() - cpu


def _start_server(url: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "GPULEDGER_DATABASE_URL": url, "GPULEDGER_REDIS_URL": "redis://127.0.0.1:1/0",
           "GPULEDGER_DATA_DIR": tempfile.mkdtemp(prefix="gpuledger-bench-")}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return server, port


def http_ingest(
    url: str,
    work: list[tuple[str, dict[str, Any]]],
    workers: int,
    agents: int,
    clients: int = 2,
) -> dict[str, float]:
    """Rows/s and latency of the HTTP path against uvicorn with ``workers`` processes.

    The load comes from ``clients`` separate processes (asyncio + httpx), so that the
    generator is not one Python thread competing with itself; their CPU time is reported.
    """
    tokens = _tokens(url, sorted({n for n, _ in work}))
    bodies = [(n, gzip.compress(json.dumps(b).encode(), compresslevel=5)) for n, b in work]
    rows = sum(len(b["samples"]) for _, b in work)
    shares: list[list[tuple[str, bytes]]] = [[] for _ in range(clients)]
    for name, body in bodies:  # a node's batches stay in one process, in order
        shares[zlib.crc32(name.encode()) % clients].append((name, body))
    server, port = _start_server(url, workers)
    try:
        with ProcessPoolExecutor(clients) as pool:
            list(pool.map(time.sleep, [0.0] * clients))  # start the processes before timing
            t0 = time.perf_counter()
            futures = [
                pool.submit(_load_process, port, share, tokens, max(1, agents // clients))
                for share in shares
            ]
            results = [f.result() for f in futures]
            elapsed = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(x for lat, _ in results for x in lat)
    client_cpu = sum(cpu for _, cpu in results)
    return {
        "rows_per_s": rows / elapsed,
        "requests_per_s": len(bodies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "rows": rows,
        "rows_per_request": rows / len(bodies),
        "client_cpu_cores": client_cpu / elapsed,
    }


def _report(label: str, r: dict[str, float], copy_rate: float, workers: int, agents: int) -> None:
    print(
        f"(b) HTTP ingest, {label}: {workers} uvicorn workers, {agents} agents, "
        f"{r['rows_per_request']:.0f} samples/request: {r['rows_per_s']:,.0f} rows/s, "
        f"{r['requests_per_s']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"load generator {r['client_cpu_cores']:.2f} cores; ratio {r['rows_per_s'] / copy_rate:.3f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small run (well under a minute)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--agents", type=int, default=32, help="concurrent simulated agents")
    p.add_argument("--clients", type=int, default=2, help="load generator processes")
    p.add_argument("--samples-per-batch", type=int, default=6, help="intervals per batch")
    p.add_argument(
        "--catchup-per-batch", type=int, default=250, help="intervals per catch-up batch"
    )
    args = p.parse_args()
    nodes, intervals = (50, 60) if args.quick else (200, 180)
    # Catch-up: a spool flushing after an outage, coalesced into large batches.
    up_nodes, up_intervals = (16, 1000) if args.quick else (40, 2000)
    tag = os.getpid()
    copy_url = _pg_db(f"gpuledger_bench_copy_{tag}")
    http_url = _pg_db(f"gpuledger_bench_http_{tag}")
    sqlite_dir = tempfile.mkdtemp(prefix="gpuledger-bench-sqlite-")
    sqlite_url = f"sqlite:///{sqlite_dir}/bench.db"
    try:
        for url in (copy_url, http_url, sqlite_url):
            migrate.upgrade(url)
        copy_rate = raw_copy(copy_url, nodes, intervals)
        print(
            f"(a) COPY into gpu_samples + gpu_process_samples + host_samples: {copy_rate:,.0f} "
            f"GPU-sample rows/s ({nodes * 8 * intervals:,} GPU samples, as many process "
            f"samples, {nodes * intervals:,} host samples)"
        )
        work = batches(nodes, intervals, args.samples_per_batch)
        http = http_ingest(http_url, work, args.workers, args.agents, args.clients)
        _report("agent batches", http, copy_rate, args.workers, args.agents)
        up_work = batches(up_nodes, up_intervals, args.catchup_per_batch, prefix="catchup")
        up = http_ingest(http_url, up_work, args.workers, up_nodes, args.clients)
        _report("catch-up batches", up, copy_rate, args.workers, up_nodes)
        ratio = http["rows_per_s"] / copy_rate
        print(f"ratio (b)/(a), agent batches (headline): {ratio:.3f}")
        small = max(10, nodes // 4)
        lite_work = batches(small, intervals, args.samples_per_batch)
        lite = http_ingest(sqlite_url, lite_work, 1, 8, 1)
        print(
            f"SQLite (embedded, 1 worker): {lite['rows_per_s']:,.0f} rows/s, "
            f"p50 {lite['p50_ms']:.1f} ms, p99 {lite['p99_ms']:.1f} ms"
        )
    finally:
        _drop_pg_db(copy_url)
        _drop_pg_db(http_url)
    print(json.dumps({
        "bench": "ingest", "ratio": round(ratio, 3), "regime": "agent batches",
        "copy_rows_per_s": round(copy_rate),
        "http_rows_per_s": round(http["rows_per_s"]), "http_requests_per_s": round(http["requests_per_s"], 1),
        "p50_ms": round(http["p50_ms"], 1), "p99_ms": round(http["p99_ms"], 1),
        "samples_per_request": http["rows_per_request"], "workers": args.workers, "agents": args.agents,
        "client_cpu_cores": round(http["client_cpu_cores"], 2),
        "catchup_ratio": round(up["rows_per_s"] / copy_rate, 3), "catchup_rows_per_s": round(up["rows_per_s"]),
        "catchup_samples_per_request": up["rows_per_request"], "catchup_p50_ms": round(up["p50_ms"], 1),
        "catchup_p99_ms": round(up["p99_ms"], 1), "catchup_client_cpu_cores": round(up["client_cpu_cores"], 2),
        "sqlite_rows_per_s": round(lite["rows_per_s"]), "rows": http["rows"], "catchup_rows": up["rows"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
