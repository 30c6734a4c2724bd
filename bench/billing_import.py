"""Billing import speed vs pandas.read_csv(engine="pyarrow") on the same generated file.

    python -m bench.billing_import [--quick] [--rows N] [--database-url URL]

Generates a CUR 2.0 CSV and a FOCUS CSV of N rows (1,000,000; --quick 100,000), imports each
into a fresh database (SQLite unless --database-url names PostgreSQL) and times pandas reading
the same file in the same run. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pandas_seconds(path: Path) -> float:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(path, engine="pyarrow")
    seconds = time.perf_counter() - start
    del frame
    return seconds


def _import_seconds(path: Path, url: str) -> tuple[float, int]:
    from app import migrate
    from app.billing import service
    from app.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM billing_line_items"))
        conn.execute(text("DELETE FROM billing_imports"))
    del migrate
    with Session(engine) as session:
        start = time.perf_counter()
        summary = service.import_file(session, path=path)
        session.commit()
        seconds = time.perf_counter() - start
    engine.dispose()
    return seconds, summary.rows_accepted


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


def main(argv: list[str] | None = None) -> int:
    from app import migrate
    from bench.billing_samples import write_cur2, write_focus

    p = argparse.ArgumentParser(prog="python -m bench.billing_import")
    p.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    p.add_argument("--rows", type=int)
    p.add_argument("--database-url", help="PostgreSQL server URL; the bench creates and drops "
                   "its own scratch database there (default: a temporary SQLite file)")  # fmt: skip
    args = p.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.database_url:
            url = _scratch_database(args.database_url, create=True)
        migrate.upgrade(url)
        results = {}
        for name, writer in (("cur2", write_cur2), ("focus", write_focus)):
            path = Path(tmp) / f"{name}.csv"
            writer(path, rows)
            size_mb = path.stat().st_size / 1e6
            pandas_s = _pandas_seconds(path)
            import_s, accepted = _import_seconds(path, url)
            if accepted != rows:
                raise SystemExit(f"{name}: imported {accepted} of {rows} rows")
            ratio = import_s / pandas_s
            results[name] = ratio
            print(f"{name}: {rows:,} rows, {size_mb:.0f} MB: import {import_s:.2f} s "
                  f"({rows / import_s:,.0f} rows/s), pandas.read_csv(pyarrow) {pandas_s:.2f} s, "
                  f"ratio {ratio:.2f}")  # fmt: skip
            path.unlink()
    if args.database_url:
        _scratch_database(args.database_url, create=False)
    rss = _peak_rss_mb()
    dialect = url.split(":", 1)[0]
    print(f"database {dialect}; peak RSS {rss:.0f} MB (includes the pandas frames)")
    print(json.dumps({"bench": "billing_import", "rows": rows, "database": dialect,
                      "ratio": round(max(results.values()), 2), "rss_mb": round(rss)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
