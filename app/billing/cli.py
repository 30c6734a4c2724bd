"""``gpuledger billing import`` and ``gpuledger pricebook``: parsers and commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.billing.formats import Format


def add_parsers(sub: Any) -> None:
    """Register the billing and pricebook command groups on the gpuledger parser."""
    billing = sub.add_parser("billing", help="import cloud bills (FOCUS, AWS CUR, GCP, Azure)")
    # ``sub`` is app.cli._Sub: nested groups get the common options (--data-dir) the same way.
    actions = type(sub)(
        billing.add_subparsers(dest="billing_command", required=True, metavar="ACTION"), sub.common
    )
    imp = actions.add_parser(
        "import",
        help="import billing files; each is accepted whole or not",
        description="Import billing files. Each FILE is accepted whole or not at all. An AWS "
        "manifest (<report>-Manifest.json of a CUR, or of a Data Exports export) imports the "
        "files it lists, found under its folder, as one delivery: all of them or none, "
        "replacing the previous run (assembly or execution) of that report and month.",
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE",
                     help="bills (CSV, CSV.gz, Parquet, JSONL) or AWS manifests")  # fmt: skip
    imp.add_argument("--format", choices=[f.value for f in Format], help="skip detection")
    imp.add_argument("--dataset", choices=["actual", "amortized"], help="Azure cost dataset")
    imp.add_argument("--currency", help="reporting currency (default: the file's first)")
    imp.add_argument("--rate", action="append", default=[], metavar="CUR=RATE",
                     help="exchange rate into the reporting currency (repeatable)")  # fmt: skip
    imp.add_argument("--delivery", metavar="NAME",
                     help="the files are one delivery (e.g. a CUR month's assembly): they never "
                          "replace each other, and replace an earlier run of NAME; default: "
                          "each file is its own delivery, so a re-export of a file replaces "
                          "only that file's rows")  # fmt: skip
    imp.add_argument("--replace", action="store_true",
                     help="replace every earlier import of the same source, dataset, account "
                          "and billing period")  # fmt: skip
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    book = sub.add_parser("pricebook", help="the price book for estimates and on-prem nodes")
    book_actions = type(sub)(
        book.add_subparsers(dest="pricebook_command", required=True, metavar="ACTION"), sub.common
    )
    book_actions.add_parser("list", help="print the merged price book as CSV")
    load = book_actions.add_parser("import", help="load a price book CSV (shipped columns)")
    load.add_argument("file", type=Path)
    _add_refresh_parser(book_actions)


def _add_refresh_parser(book_actions: Any) -> None:
    ref = book_actions.add_parser(
        "refresh",
        help="price GPU instance types from a provider's public price list",
        description="Read the provider's public price list (AWS Price List Bulk API, Azure "
        "Retail Prices API, GCP Cloud Billing Catalog API) and write its GPU instance prices "
        "as a price book CSV, or upsert them into the price book. See docs/pricebook.md.",
    )
    ref.add_argument("--provider", required=True, choices=["aws", "azure", "gcp"])
    ref.add_argument("--region", action="append", default=[], metavar="R",
                     help="only this region (repeatable); AWS reads one offer file per region, "
                          "us-east-1 by default")  # fmt: skip
    ref.add_argument("--from", dest="saved", type=Path, metavar="FILE_OR_DIR",
                     help="saved API responses (a JSON file or a folder of them), no network")  # fmt: skip
    ref.add_argument("--url", metavar="BASE", help="API base URL (default: the public one)")
    ref.add_argument("--api-key", help="GCP: a Cloud Billing API key")
    ref.add_argument("--api-key-file", type=Path, metavar="FILE",
                     help="GCP: a file holding the API key (keeps it out of the process list)")  # fmt: skip
    ref.add_argument("--date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                     help="price_date of the entries (default: today, UTC)")  # fmt: skip
    out = ref.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", type=Path, metavar="FILE.csv", help="write a price book CSV")
    out.add_argument("--apply", action="store_true", help="upsert into the price book")


class _Bar:
    def __init__(self, name: str) -> None:
        self.name = name
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, rows: int) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 2.0) and done < total:
            return
        self.last = now
        pct = 100 * done / total if total else 100.0
        bar = "#" * int(pct / 4)
        end = "\r" if self.tty else "\n"
        print(f"{self.name}: [{bar:<25}] {pct:5.1f}% {rows:,} rows", end=end, file=sys.stderr)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _rates(values: list[str]) -> dict[str, Decimal]:
    out = {}
    for value in values:
        cur, _, rate = value.partition("=")
        try:
            out[cur.strip().upper()] = Decimal(rate)
        except InvalidOperation:
            raise SystemExit(f"--rate {value!r}: expected CUR=NUMBER") from None
    return out


def _units(args: argparse.Namespace) -> list[tuple[list[Path], str | None, str | None]]:
    """The command's files grouped into deliveries: (files, delivery, run) each.

    A manifest is one delivery (its name and run from the manifest); with ``--delivery`` the
    other files are one delivery run; without it each file is its own.
    """
    from app.billing.manifests import is_manifest, read_manifest

    units: list[tuple[list[Path], str | None, str | None]] = []
    loose: list[Path] = []
    for path in args.files:
        if is_manifest(path):
            m = read_manifest(path)
            units.append((m.files, args.delivery or m.delivery, m.run))
        else:
            loose.append(path)
    if args.delivery and loose:
        units.append((loose, args.delivery, f"cli-{uuid.uuid4().hex[:16]}"))
    else:
        units.extend(([path], None, None) for path in loose)
    return units


def _rejected(name: str, errors: list[dict[str, Any]], count: int) -> dict[str, Any]:
    return {"file_name": name, "status": "rejected", "error_count": count, "errors": errors}


def run_billing(args: argparse.Namespace) -> int:
    from app.billing import service
    from app.billing.rows import BillingFileError
    from app.db import session_scope

    options = {"format": Format(args.format) if args.format else None, "dataset": args.dataset,
               "currency": args.currency, "rates": _rates(args.rate),
               "replace_scope": args.replace}  # fmt: skip
    results: list[dict[str, Any]] = []
    bars: list[_Bar] = []

    def bar(path: Path) -> _Bar:
        bars.append(_Bar(path.name))
        return bars[-1]

    try:
        units = _units(args)
    except BillingFileError as e:  # an incomplete manifest: nothing is imported
        units = []
        results.append(_rejected(e.file_name, [x.as_dict() for x in e.errors], e.error_count))
    for files, delivery, run in units:
        try:
            with session_scope() as session:
                if delivery is None:
                    summaries = [service.import_file(session, path=files[0], progress=bar(files[0]),
                                                     **options)]  # fmt: skip
                else:
                    summaries = service.import_delivery(session, files, delivery=delivery,
                                                        run=run or delivery, progress=bar,
                                                        **options)  # fmt: skip
            results.extend(s.as_dict() for s in summaries)
        except BillingFileError as e:
            results.append(_rejected(e.file_name, [x.as_dict() for x in e.errors], e.error_count))
            results.extend(_rejected(f.name, [{"row": None, "column": None, "message":
                           f"not imported: delivery {delivery} is imported whole and "
                           f"{e.file_name} was rejected"}], 1)
                           for f in files if f.name != e.file_name)  # fmt: skip
        except OSError as e:
            results.append(_rejected(str(files[0]), [{"row": None, "column": None,
                                                      "message": str(e)}], 1))  # fmt: skip
        finally:
            for b in bars:
                b.close()
            bars.clear()
    failed = sum(r["status"] == "rejected" for r in results)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        for r in results:
            _print(r)
    return 1 if failed else 0


def _print(r: dict[str, Any]) -> None:
    if r["status"] == "rejected":
        print(f"{r['file_name']}: REJECTED, {r['error_count']} error(s); nothing was imported")
        for e in r["errors"]:
            where = f"row {e['row']}" if e["row"] is not None else "file"
            col = f", column {e['column']}" if e["column"] else ""
            print(f"  {where}{col}: {e['message']}")
        return
    note = (
        f" (same file as import {r['duplicate_of']}: nothing changed)" if r["duplicate_of"] else ""
    )
    print(f"{r['file_name']}: {r['status']}{note}, format {r['format']}")
    print(f"  rows accepted {r['rows_accepted']:,}, matched to known nodes {r['rows_matched']:,}, "
          f"replaced from earlier exports {r['rows_replaced']:,}")  # fmt: skip
    for cur, t in r["totals"].items():
        print(f"  {cur}: " + "  ".join(f"{name} {value}" for name, value in t.items()))
    for w in r["warnings"]:
        print(f"  warning: {w}")


def run_pricebook(args: argparse.Namespace) -> int:
    import csv
    import dataclasses

    from app.billing import pricebook
    from app.billing.catalog import PRICEBOOK_COLUMNS
    from app.billing.errors import PriceEntryError
    from app.db import session_scope
    from app.kit.csvsafe import safe_cell

    if args.pricebook_command == "refresh":
        return run_refresh(args)
    with session_scope() as session:
        if args.pricebook_command == "import":
            try:
                count = pricebook.import_pricebook(session, args.file)
            except (PriceEntryError, OSError) as err:
                print(f"error: {err}; nothing was written", file=sys.stderr)
                return 1
            print(f"{count} price book entries written", file=sys.stderr)
            return 0
        writer = csv.writer(sys.stdout)
        writer.writerow(PRICEBOOK_COLUMNS)
        for e in pricebook.list_entries(session):
            d = dataclasses.asdict(e)
            writer.writerow(["" if d[c] is None else safe_cell(d[c]) for c in PRICEBOOK_COLUMNS])
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    from app.billing import pricebook, pricelists
    from app.db import session_scope

    try:
        key = args.api_key or (
            args.api_key_file.read_text(encoding="utf-8").strip() if args.api_key_file else None
        )
        found = pricelists.refresh(
            args.provider, price_date=args.date or datetime.now(UTC).date(), regions=args.region,
            saved=args.saved, base_url=args.url, api_key=key,
        )  # fmt: skip
    except (pricelists.PriceListError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for note in found.unknown:
        print(f"not priced: {note}", file=sys.stderr)
    if not found.entries:
        print(f"error: no GPU instance prices in the {args.provider} price list", file=sys.stderr)
        return 1
    if args.output:
        with args.output.open("w", newline="", encoding="utf-8") as f:
            count = pricelists.write_pricebook(f, found.entries)
        print(f"{count} price book entries written to {args.output}", file=sys.stderr)
        return 0
    with session_scope() as session:
        count = pricebook.upsert_entries(session, found.entries)
    print(f"{count} price book entries written", file=sys.stderr)
    return 0
