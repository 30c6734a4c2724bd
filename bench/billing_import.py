"""Billing import speed vs pandas.read_csv(engine="pyarrow") on the same generated file.

    python -m bench.billing_import [--quick] [--rows N] [--database-url URL] [--sqlite-only]

Generates a CUR 2.0 CSV and a FOCUS CSV of N rows (1,000,000; --quick 100,000) and imports each
on PostgreSQL (the production database: a scratch database the bench creates and drops on the
server at --database-url, default the local server when it answers) and on SQLite (a temporary
file), timing pandas reading the same file in the same run. Each import runs in a subprocess
whose peak RSS (VmHWM) is the importer's own. The last line is one JSON object; its "ratio" is
the worse format on PostgreSQL (SQLite when no server answers), "rss_mb" the largest import RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pandas_seconds(path: Path) -> float:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(path, engine="pyarrow")
    seconds = time.perf_counter() - start
    del frame
    return seconds


def _vm_hwm_mb() -> float:
    """Peak resident set of this process, from /proc (VmHWM, kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _child(url: str, path: Path) -> None:
    """Import one file into an emptied database; print seconds, rows and peak RSS as JSON."""
    from app.billing import service
    from app.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM billing_line_items"))
        conn.execute(text("DELETE FROM billing_imports"))
    with Session(engine) as session:
        start = time.perf_counter()
        summary = service.import_file(session, path=path)
        session.commit()
        seconds = time.perf_counter() - start
    engine.dispose()
    print(json.dumps({"seconds": seconds, "rows": summary.rows_accepted, "rss_mb": _vm_hwm_mb()}))


def _import(url: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.billing_import", "--child", url, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _scratch_database(server_url: str, *, create: bool) -> str:
    """Create (or drop) a bench-only database on the server; never touches the named database."""
    from sqlalchemy.engine import make_url

    from app.db import make_engine

    base = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"gpuledger_bench_{os.getpid()}"
    admin = make_engine(base.render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _server_answers(url: str) -> bool:
    try:
        _scratch_database(url, create=False)
    except OperationalError:
        return False
    return True


def _run(label: str, url: str, files: dict[str, Path]) -> tuple[float, float]:
    """Import each file on one database; returns the worst ratio and the largest RSS."""
    from app import migrate

    migrate.upgrade(url)
    ratios, rss = [], 0.0
    for name, path in files.items():
        pandas_s = _pandas_seconds(path)
        got = _import(url, path)
        rows = int(got["rows"])
        ratio = got["seconds"] / pandas_s
        ratios.append(ratio)
        rss = max(rss, got["rss_mb"])
        print(f"{label} {name}: {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB: import "
              f"{got['seconds']:.2f} s ({rows / got['seconds']:,.0f} rows/s, peak RSS "
              f"{got['rss_mb']:.0f} MB), pandas.read_csv(pyarrow) {pandas_s:.2f} s, "
              f"ratio {ratio:.2f}")  # fmt: skip
    return max(ratios), rss


def main(argv: list[str] | None = None) -> int:
    from bench.billing_samples import write_cur2, write_focus

    p = argparse.ArgumentParser(prog="python -m bench.billing_import")
    p.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    p.add_argument("--rows", type=int)
    p.add_argument("--database-url", help="PostgreSQL server URL; the bench creates and drops "
                   f"its own scratch database there (default {DEFAULT_SERVER})")  # fmt: skip
    p.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    p.add_argument("--child", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    server = None if args.sqlite_only else args.database_url or DEFAULT_SERVER
    if server and not _server_answers(server):
        if args.database_url:
            raise SystemExit(f"no PostgreSQL server answers at {server}")
        print(f"no PostgreSQL at {server}: SQLite only")
        server = None
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"cur2": Path(tmp) / "cur2.csv", "focus": Path(tmp) / "focus.csv"}
        write_cur2(files["cur2"], rows)
        write_focus(files["focus"], rows)
        if server:
            try:
                results["postgresql"] = _run("postgresql", _scratch_database(server, create=True),
                                             files)  # fmt: skip
            finally:
                _scratch_database(server, create=False)
        results["sqlite"] = _run("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", files)
    database = "postgresql" if "postgresql" in results else "sqlite"
    ratio, _ = results[database]
    rss = max(r for _, r in results.values())
    print(json.dumps({"bench": "billing_import", "rows": rows, "database": database,
                      "ratio": round(ratio, 2), "rss_mb": round(rss),
                      "sqlite_ratio": round(results["sqlite"][0], 2)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
