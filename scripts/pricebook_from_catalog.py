"""Regenerate app/billing/data/pricebook.csv from skypilot-org/skypilot-catalog (Apache-2.0).

The catalogue's ``catalogs/v<N>/<provider>/vms.csv`` files are generated from the providers' price
APIs (AWS Price List, Azure Retail Prices, Cloud Billing Catalog, OCI price list). This keeps
their GPU and accelerator instance types with an on-demand price, one row per region whose price
differs from the type's reference region (see docs/pricebook.md), and every row of the other
providers of ``--base`` (the on-prem examples) as it is.

    cd ~/skypilot-catalog && commit=$(git rev-parse HEAD) && day=$(git log -1 --format=%cs)
    cd - && python scripts/pricebook_from_catalog.py ~/skypilot-catalog --commit "$commit" --date "$day"

``--providers`` replaces only those providers' rows, so catalogues of different commits can be
combined by running once per commit, each run's output the next one's ``--base``.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path

from app.billing.catalog import PRICEBOOK_CSV, PriceEntry, check_entry, read_pricebook
from app.billing.pricelists import (
    GCP_SHAPES,
    decimal_or_none,
    reference_first,
    write_pricebook,
)

PROVIDERS = ("aws", "azure", "gcp", "oci")
PRICE_LISTS = {"aws": "AWS Price List API", "azure": "Azure Retail Prices API",
               "gcp": "Cloud Billing Catalog API", "oci": "OCI Price List API"}  # fmt: skip
# The catalogue's accelerator names as the price book names GPU models (app/billing/normalize.py):
# one name per model, the A100 with 80 GB apart, the 32 GB V100 with the V100 (as Azure's NDv2).
MODELS = {
    "A10": "A10", "A10G": "A10G", "A100": "A100", "A100-80GB": "A100-80GB", "B200": "B200",
    "B300": "B300", "GB200": "GB200", "H100": "H100", "H100-MEGA": "H100", "H200": "H200",
    "K80": "K80", "L4": "L4", "L40": "L40", "L40S": "L40S", "M60": "M60", "MI300X": "MI300X",
    "P100": "P100", "P4": "P4", "P40": "P40", "T4": "T4", "T4g": "T4G", "V100": "V100",
    "V100-32GB": "V100", "RTXPRO6000": "RTX PRO 6000", "Radeon Pro V520": "Radeon Pro V520",
    "Radeon MI25": "Radeon MI25", "Inferentia": "Inferentia", "Inferentia2": "Inferentia2",
    "Trainium": "Trainium", "Trainium2": "Trainium2",
}  # fmt: skip
# Sizes the catalogue counts as one GPU that are a slice of one (learn.microsoft.com/azure/
# virtual-machines/sizes/gpu-accelerated/nvv4-series): gpu_count is a whole number of GPUs.
FRACTIONAL = {"Standard_NV4as_v4", "Standard_NV8as_v4", "Standard_NV16as_v4"}
# The catalogue lists 12 GPUs for the ND H100 v5 size; it has 8 (learn.microsoft.com/azure/
# virtual-machines/sizes/gpu-accelerated/ndh100v5-series).
GPU_COUNT_FIXES = {("azure", "Standard_ND96isr_H100_v5"): 8}
# GPU instance types still billed that the catalogue does not list: their GPU model and count only
# (what bills need to count their rows as GPU spend), no price, so estimates for them stay unpriced.
HARDWARE_ONLY_SOURCE = ("https://aws.amazon.com/ec2/instance-types/g3/ (GPU model and count only: "
                        "no price in the catalogue)")  # fmt: skip
HARDWARE_ONLY = {("aws", "g3s.xlarge"): ("M60", 1), ("aws", "g3.4xlarge"): ("M60", 1),
                 ("aws", "g3.8xlarge"): ("M60", 2), ("aws", "g3.16xlarge"): ("M60", 4)}  # fmt: skip
HARDWARE_ONLY_DATE = date(2026, 12, 2)


def newest_catalogue(root: Path, provider: str) -> Path | None:
    """The highest ``catalogs/v<N>/<provider>/vms.csv`` under ``root`` (a catalogue checkout)."""
    found = [(int(m.group(1)), p) for p in root.glob(f"catalogs/v*/{provider}/vms.csv")
             if (m := re.fullmatch(r"v(\d+)", p.parent.parent.name))]  # fmt: skip
    return max(found)[1] if found else None


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _whole(text: str) -> int | None:
    count = decimal_or_none(text)
    return int(count) if count is not None and count >= 1 and count == int(count) else None


def provider_entries(provider: str, path: Path, *, source: str, price_date: date,
                     skipped: dict[str, str]) -> list[PriceEntry]:  # fmt: skip
    """The provider's GPU rows, one per (type, region) at its lowest zone price."""
    prices: dict[tuple[str, str], tuple[Decimal, str, int]] = {}
    if provider == "gcp":
        gpus = {(r["AcceleratorName"], _whole(r["AcceleratorCount"]), r["Region"]): p
                for r in _rows(path) if not r["InstanceType"] and r["AcceleratorName"]
                and (p := decimal_or_none(r["Price"])) is not None}  # fmt: skip
    for r in _rows(path):
        itype, region = r["InstanceType"], r["Region"]
        price = decimal_or_none(r["Price"])
        if provider == "gcp":
            shape = GCP_SHAPES.get(itype)
            if shape is None:
                continue
            gpu = gpus.get((shape.catalog_accelerator, shape.gpu_count, region))
            if not price or gpu is None:  # a machine's price is its host's plus its GPUs'
                skipped.setdefault(itype, "no host or no GPU price")
                continue
            model, count, price = shape.gpu_model, shape.gpu_count, price + gpu
        else:
            name, whole = r["AcceleratorName"], _whole(r["AcceleratorCount"])
            if not itype or not name:
                continue
            why = ("promotional meter" if itype.endswith("_Promo") else
                   "a fraction of a GPU" if itype in FRACTIONAL or whole is None else
                   f"accelerator {name!r} has no price book name" if name not in MODELS else
                   None)  # fmt: skip
            if why or not price or whole is None:
                skipped.setdefault(itype, why or "no on-demand price")
                continue
            model, count = MODELS[name], GPU_COUNT_FIXES.get((provider, itype), whole)
        old = prices.get((itype, region))
        if old is None or old[0] > price:
            prices[(itype, region)] = (price, model, count)
    for itype, _ in prices:  # priced somewhere: not skipped, whatever some zones lacked
        skipped.pop(itype, None)
    return [check_entry(PriceEntry(
        provider=provider, instance_type=itype, region=region, gpu_model=model, gpu_count=count,
        hourly_price=price, currency="USD", hardware_cost=None, amortization_months=None,
        energy_price_kwh=None, pue=None, source=source, price_date=price_date,
    )) for (itype, region), (price, model, count) in prices.items()]  # fmt: skip


def build(root: Path, *, commit: str, price_date: date, providers: Iterable[str],
          base: list[PriceEntry]) -> tuple[list[PriceEntry], dict[str, str]]:  # fmt: skip
    """The new price book: ``providers`` from the catalogue, other providers' rows from ``base``."""
    fresh: dict[str, list[PriceEntry]] = {}
    skipped: dict[str, str] = {}
    for provider in providers:
        path = newest_catalogue(root, provider)
        if path is None:
            raise SystemExit(f"error: no catalogs/v*/{provider}/vms.csv under {root}")
        where = path.relative_to(root).as_posix()
        source = (f"{PRICE_LISTS[provider]} via skypilot-org/skypilot-catalog@{commit[:7]} "
                  f"{where} (Apache-2.0)")  # fmt: skip
        rows = provider_entries(provider, path, source=source, price_date=price_date,
                                skipped=skipped)  # fmt: skip
        listed = {e.instance_type for e in rows}
        rows += [check_entry(PriceEntry(
            provider=provider, instance_type=itype, region="us-east-1", gpu_model=model,
            gpu_count=count, hourly_price=None, currency="USD", hardware_cost=None,
            amortization_months=None, energy_price_kwh=None, pue=None,
            source=HARDWARE_ONLY_SOURCE, price_date=HARDWARE_ONLY_DATE,
        )) for (p, itype), (model, count) in HARDWARE_ONLY.items()
            if p == provider and itype not in listed]  # fmt: skip
        fresh[provider] = reference_first(rows, collapse=True)
    kept: dict[str, list[PriceEntry]] = {}
    for e in base:
        if e.provider not in fresh:
            kept.setdefault(e.provider, []).append(e)
    order = [p for p in PROVIDERS if p in fresh or p in kept]
    order += [p for p in kept if p not in order]
    return [e for p in order for e in fresh.get(p) or kept.get(p, [])], skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("catalogue", type=Path, help="a skypilot-org/skypilot-catalog checkout")
    p.add_argument("--commit", required=True, help="the checkout's commit (recorded in source)")
    p.add_argument("--date", required=True, type=date.fromisoformat,
                   help="the commit's date (recorded in price_date)")  # fmt: skip
    p.add_argument(
        "--providers",
        default=",".join(PROVIDERS),
        help="comma-separated; others keep their --base rows (default: all four)",
    )
    p.add_argument(
        "--base",
        type=Path,
        default=PRICEBOOK_CSV,
        help="price book whose other rows are kept (default: the shipped one)",
    )
    p.add_argument("--output", type=Path, default=PRICEBOOK_CSV)
    args = p.parse_args(argv)
    providers = [x for x in args.providers.split(",") if x]
    if unknown := set(providers) - set(PROVIDERS):
        p.error(f"unknown providers: {', '.join(sorted(unknown))}")
    base = read_pricebook(args.base) if args.base.exists() else []
    entries, skipped = build(args.catalogue, commit=args.commit, price_date=args.date,
                             providers=providers, base=base)  # fmt: skip
    gone = sorted({(e.provider, e.instance_type) for e in base if e.provider in providers}
                  - {(e.provider, e.instance_type) for e in entries})  # fmt: skip
    with args.output.open("w", newline="", encoding="utf-8") as f:
        count = write_pricebook(f, entries)
    for itype, why in sorted(skipped.items()):
        sys.stderr.write(f"skipped {itype}: {why}\n")
    for provider, itype in gone:
        sys.stderr.write(f"warning: {provider} {itype} was in --base and is not in the catalogue\n")
    sys.stderr.write(f"{count} rows written to {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
