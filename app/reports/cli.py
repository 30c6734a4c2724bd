"""``gpuledger report``: the GPU spend report as CSV, XLSX or JSON, to a file or stdout."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.costs.engine import GROUPS
from app.reports.period import PERIOD_HELP

FORMATS = ("csv", "xlsx", "json")
DESCRIPTION = """\
Write the GPU spend report: cost by group (billed, estimated, on-prem), the utilized, idle,
unused and unmeasured shares (unmeasured: time without a utilization reading, as on MIG GPUs),
energy, efficiency (utilized / measured cost) and the change against the previous period (the
month before a month, else the same length just before), with the bills' coverage, unpriced
nodes and the top idle owners.

Period: --period YYYY-MM (a calendar month), last-month, mtd, last-24h, last-7d or last-30d; or
--from and --to. A date given to --to is included (the report ends at the start of the next
day). Without any of them: the last full calendar month (last-month). Days and months are in
--tz (default UTC).

Rounded amounts add up: the lines to each currency's total, a group's days to its cost.
"""


def add_parsers(sub: Any) -> None:
    """Register ``report`` on the gpuledger parser (``sub`` is app.cli._Sub)."""
    p = sub.add_parser(
        "report",
        help="the GPU spend report (CSV, XLSX, JSON) for a month or a period",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--period", metavar="PERIOD", help=PERIOD_HELP)
    p.add_argument("--from", dest="start", metavar="WHEN",
                   help="start: YYYY-MM-DD (start of that day in --tz) or ISO 8601 with offset")  # fmt: skip
    p.add_argument("--to", dest="end", metavar="WHEN",
                   help="end: YYYY-MM-DD (that day included) or ISO 8601 with offset "
                        "(excluded); default now")  # fmt: skip
    p.add_argument("--tz", default="UTC", help="IANA time zone of days and months (default UTC)")
    p.add_argument("--group-by", default="team", metavar="GROUPS",
                   help=f"one or two comma-separated of {', '.join(GROUPS)} (default team)")  # fmt: skip
    p.add_argument("--format", choices=FORMATS,
                   help="default: from the -o file's extension, else csv")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write here (default stdout; XLSX needs a file or a pipe)")  # fmt: skip


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = args.output.suffix.lower().lstrip(".") if args.output else ""
    return suffix if suffix in FORMATS else "csv"


def run_report(args: argparse.Namespace) -> int:
    from app.db import session_scope
    from app.errors import AppError
    from app.reports import render
    from app.reports import service as reports_service
    from app.reports.period import parse_group_by, resolve_period

    fmt = _format(args)
    if fmt == "xlsx" and args.output is None and sys.stdout.isatty():
        sys.stderr.write("error: XLSX is binary: give -o FILE (or pipe stdout to a file)\n")
        return 2
    now = datetime.now(UTC)
    try:
        groups = parse_group_by(args.group_by)
        window = resolve_period(
            period=args.period, start=args.start, end=args.end, tz=args.tz, now=now
        )
    except AppError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return 2
    with session_scope() as session:
        report = reports_service.spend_report(
            session, start=window.start, end=window.end, tz=window.tz, label=window.label,
            group_by=groups, now=now,
        )  # fmt: skip
    if fmt == "xlsx":
        data = render.to_xlsx(report)
    elif fmt == "json":
        data = (json.dumps(render.to_json(report), indent=2) + "\n").encode()
    else:
        data = render.to_csv(report).encode()
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        args.output.write_bytes(data)
        sys.stderr.write(
            f"{args.output}: {report.label}, {fmt.upper()}, {len(report.lines)} lines\n"
        )
    return 0
