"""GPU instance prices from the providers' public price lists, as price book entries.

Parsers are pure (decoded JSON in, entries out; the price date is a parameter):
AWS Price List Bulk API offer files (``AmazonEC2``, one per region), Azure Retail Prices API pages
and Cloud Billing Catalog API pages of Compute Engine SKUs. ``refresh`` reads them over HTTP
(httpx, paging as each API does) or from saved responses, for ``gpuledger pricebook refresh``.

A price list names prices, not always GPUs: Azure never does, AWS only counts them, GCP prices an
accelerator-optimized machine as parts. The GPU model (and count, where the list has none) comes
from the shipped price book; a GPU type it does not know is reported, never guessed.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from app.billing.catalog import PRICEBOOK_COLUMNS, PriceEntry, check_entry, gpu_spec

PROVIDERS = ("aws", "azure", "gcp")
# The region whose price stands for an instance type's other regions (PriceBook.find falls back
# to a type's first entry): the provider's first region, or the source's first for a type not there.
REFERENCE_REGIONS = {"aws": "us-east-1", "azure": "eastus", "gcp": "us-central1",
                     "oci": "us-ashburn-1"}  # fmt: skip
AWS_PRICING_URL = "https://pricing.us-east-1.amazonaws.com"
AWS_OFFER_PATH = "/offers/v1.0/aws/AmazonEC2/current/{region}/index.json"
AZURE_PRICES_URL = "https://prices.azure.com"
AZURE_PRICES_PATH = "/api/retail/prices"
AZURE_FILTER = "serviceName eq 'Virtual Machines' and priceType eq 'Consumption'"
GCP_BILLING_URL = "https://cloudbilling.googleapis.com"
GCP_SKUS_PATH = "/v1/services/6F81-5844-456A/skus"  # Compute Engine
FETCH_TIMEOUT_SECONDS = 120.0  # an EC2 offer file is hundreds of MB
MAX_PAGES = 100_000  # a NextPageLink that never ends is an error, not a hang

Spec = Callable[[str], PriceEntry | None]
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*")  # us-east-1, eastus, us-central1


class PriceListError(Exception):
    """A price list could not be read: unreachable, refused, or not the documented shape."""


@dataclass
class PriceList:
    """Entries priced from a price list, and what it priced but the price book cannot name."""

    entries: list[PriceEntry] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GcpShape:
    """A GCP accelerator-optimized machine type and the SKUs that price it.

    GCP bills these as GPUs plus vCPUs plus memory of the machine series ("A2 Instance Core",
    "A2 Instance Ram", "Nvidia Tesla A100 GPU"); the shape (vCPUs, GiB, GPUs) is the machine
    type's, as the skypilot-org/skypilot-catalog GCP catalogue lists it.
    """

    series: str  # the CPU/RAM SKUs' prefix, "A2" for "A2 Instance Core running in …"
    vcpus: int
    memory_gib: int
    gpu_model: str
    gpu_count: int
    gpu_skus: tuple[str, ...]  # "A100" for "Nvidia Tesla A100 GPU running in …"
    catalog_accelerator: str  # the catalogue's AcceleratorName for the machine's GPUs


def _shapes(prefix: str, series: str, model: str, skus: tuple[str, ...], accelerator: str,
            sizes: dict[str, tuple[int, int, int]]) -> dict[str, GcpShape]:  # fmt: skip
    return {f"{prefix}-{suffix}": GcpShape(series, cpu, mem, model, gpus, skus, accelerator)
            for suffix, (cpu, mem, gpus) in sizes.items()}  # fmt: skip


_A100, _A100_80, _H100 = ("A100",), ("A100 80GB",), ("H100 80GB",)
# H100 Mega SKUs read "H100 80GB Mega" in some regions and "H100 80GB Plus" in others.
_H100_MEGA = ("H100 80GB Mega", "H100 80GB Plus")
GCP_SHAPES: dict[str, GcpShape] = {
    **_shapes("a2-highgpu", "A2", "A100", _A100, "A100",
              {"1g": (12, 85, 1), "2g": (24, 170, 2), "4g": (48, 340, 4), "8g": (96, 680, 8)}),
    **_shapes("a2-megagpu", "A2", "A100", _A100, "A100", {"16g": (96, 1360, 16)}),
    **_shapes("a2-ultragpu", "A2", "A100-80GB", _A100_80, "A100-80GB",
              {"1g": (12, 170, 1), "2g": (24, 340, 2), "4g": (48, 680, 4), "8g": (96, 1360, 8)}),
    **_shapes("a3-highgpu", "A3", "H100", _H100, "H100",
              {"1g": (26, 234, 1), "2g": (52, 468, 2), "4g": (104, 936, 4), "8g": (208, 1872, 8)}),
    **_shapes("a3-edgegpu", "A3", "H100", _H100, "H100",
              {"8g": (208, 1872, 8), "8g-nolssd": (208, 1872, 8)}),
    **_shapes("a3-megagpu", "A3", "H100", _H100_MEGA, "H100-MEGA", {"8g": (208, 1872, 8)}),
    # Priced from the catalogue only: no GPU SKU description to match is documented for these.
    **_shapes("a3-ultragpu", "A3", "H200", (), "H200",
              {"8g": (224, 2952, 8), "8g-nolssd": (224, 2952, 8)}),
    **_shapes("g2-standard", "G2", "L4", ("L4",), "L4",
              {"4": (4, 16, 1), "8": (8, 32, 1), "12": (12, 48, 1), "16": (16, 64, 1),
               "24": (24, 96, 2), "32": (32, 128, 1), "48": (48, 192, 4), "96": (96, 384, 8)}),
}  # fmt: skip


def decimal_or_none(value: object) -> Decimal | None:
    """A finite number from a price list value ("1.0060000000", 3.673), or None."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _entry(provider: str, instance_type: str, region: str, model: str, count: int,
           price: Decimal, currency: str, source: str, price_date: date) -> PriceEntry:  # fmt: skip
    return check_entry(PriceEntry(
        provider=provider, instance_type=instance_type, region=region, gpu_model=model,
        gpu_count=count, hourly_price=price, currency=currency, hardware_cost=None,
        amortization_months=None, energy_price_kwh=None, pue=None, source=source,
        price_date=price_date,
    ))  # fmt: skip


# -- AWS: Price List Bulk API offer file -------------------------------------------------------
_AWS_ON_DEMAND_LINUX = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                        "capacitystatus": "Used"}  # fmt: skip
_AWS_ACCELERATED = ("GPU instance", "Machine Learning ASIC Instances")


def _aws_hourly(terms: Mapping[str, Any] | None) -> Decimal | None:
    for term in (terms or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if str(dimension.get("unit", "")).lower() in ("hrs", "hours"):
                return decimal_or_none((dimension.get("pricePerUnit") or {}).get("USD"))
    return None


def parse_aws_offer(offer: Mapping[str, Any], *, region: str, source: str, price_date: date,
                    spec: Spec = gpu_spec) -> PriceList:  # fmt: skip
    """GPU and accelerator instance types of an EC2 offer file (on-demand, Linux, shared).

    ``region`` stands in for a product without ``regionCode``; "{region}" in ``source`` becomes
    each entry's region (the offer file's URL).
    """
    on_demand = (offer.get("terms") or {}).get("OnDemand") or {}
    best: dict[tuple[str, str], PriceEntry] = {}
    unknown: set[str] = set()
    for sku, product in (offer.get("products") or {}).items():
        a = product.get("attributes") or {}
        itype = a.get("instanceType")
        if not itype or any(a.get(k) != v for k, v in _AWS_ON_DEMAND_LINUX.items()):
            continue
        gpus = a.get("gpu", "NA")
        count = int(gpus) if str(gpus).isdigit() and int(gpus) > 0 else None
        known = spec(itype)
        if count is None and known is None and a.get("instanceFamily") not in _AWS_ACCELERATED:
            continue  # a CPU instance type
        price = _aws_hourly(on_demand.get(sku))
        if price is None or price <= 0:
            continue
        if known is None or not known.gpu_model:
            unknown.add(f"aws {itype}: {gpus} GPUs, {a.get('gpuMemory', 'NA')} GPU memory, "
                        "no GPU model in the price book")  # fmt: skip
            continue
        where = a.get("regionCode") or region
        e = _entry("aws", itype, where, known.gpu_model, count or known.gpu_count, price, "USD",
                   source.replace("{region}", where), price_date)  # fmt: skip
        # Several SKUs can pass the filter (license variants); the lowest is the list price.
        old = best.get((itype, where))
        if old is None or (old.hourly_price or 0) > price:
            best[(itype, where)] = e
    return PriceList(list(best.values()), sorted(unknown))


# -- Azure: Retail Prices API ------------------------------------------------------------------
def parse_azure_items(items: Iterable[Mapping[str, Any]], *, source: str, price_date: date,
                      spec: Spec = gpu_spec) -> PriceList:  # fmt: skip
    """N-series (GPU) VM sizes of Retail Prices items: Linux pay-as-you-go, per hour."""
    best: dict[tuple[str, str], tuple[bool, PriceEntry]] = {}
    unknown: set[str] = set()
    for item in items:
        sku = str(item.get("armSkuName") or "")
        meter = f"{item.get('skuName', '')} {item.get('meterName', '')}"
        if (not sku.startswith("Standard_N") or item.get("unitOfMeasure") != "1 Hour"
                or item.get("type", "Consumption") != "Consumption"
                or "windows" in str(item.get("productName", "")).lower()
                or "spot" in meter.lower() or "low priority" in meter.lower()):  # fmt: skip
            continue
        price = decimal_or_none(item.get("retailPrice"))
        if price is None or price <= 0:
            continue
        known = spec(sku)
        if known is None or not known.gpu_model:
            unknown.add(f"azure {sku}: no GPU model or count in the price book")
            continue
        region = str(item.get("armRegionName") or "")
        e = _entry("azure", sku, region, known.gpu_model, known.gpu_count, price,
                   str(item.get("currencyCode") or "USD"), source, price_date)  # fmt: skip
        primary = bool(item.get("isPrimaryMeterRegion", True))
        old = best.get((sku, region))
        if old is None or (primary, -price) > (old[0], -(old[1].hourly_price or 0)):
            best[(sku, region)] = (primary, e)
    return PriceList([e for _, e in best.values()], sorted(unknown))


# -- GCP: Cloud Billing Catalog API ------------------------------------------------------------
_GCP_HOST = re.compile(r"^(?P<series>[A-Z]\d[A-Za-z]*) Instance (?P<kind>Core|Ram) running in ")
_GCP_GPU = re.compile(r"^Nvidia (?:Tesla )?(?P<name>.+?) GPU running in ")


def _gcp_price(sku: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    try:
        rates = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"]
        unit = min(rates, key=lambda r: float(r.get("startUsageAmount", 0)))["unitPrice"]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    price = Decimal(str(unit.get("units") or 0)) + Decimal(int(unit.get("nanos") or 0)) / 10**9
    return price, str(unit.get("currencyCode") or "USD")


def parse_gcp_skus(skus: Iterable[Mapping[str, Any]], *, source: str, price_date: date,
                   shapes: Mapping[str, GcpShape] = GCP_SHAPES) -> PriceList:  # fmt: skip
    """Accelerator-optimized machine types priced as GPUs + vCPUs + GiB of their series."""
    host: dict[tuple[str, str, str], tuple[Decimal, str]] = {}
    gpu: dict[tuple[str, str], tuple[Decimal, str]] = {}
    for sku in skus:
        category = sku.get("category") or {}
        if category.get("usageType", "OnDemand") != "OnDemand":
            continue
        description, price = str(sku.get("description") or ""), _gcp_price(sku)
        h, g = _GCP_HOST.match(description), _GCP_GPU.match(description)
        if price is None or not (h or g):
            continue
        for region in sku.get("serviceRegions") or []:
            if h and category.get("resourceGroup") in ("CPU", "RAM"):
                host[(h["series"], h["kind"], region)] = price
            elif g and category.get("resourceGroup") == "GPU":
                gpu[(g["name"], region)] = price
    entries = []
    for itype, shape in shapes.items():
        for (name, region), (gpu_price, currency) in sorted(gpu.items()):
            core, ram = (
                host.get((shape.series, "Core", region)),
                host.get((shape.series, "Ram", region)),
            )
            if name not in shape.gpu_skus or core is None or ram is None:
                continue
            total = gpu_price * shape.gpu_count + core[0] * shape.vcpus + ram[0] * shape.memory_gib
            entries.append(_entry("gcp", itype, region, shape.gpu_model, shape.gpu_count,
                                  total, currency, source, price_date))  # fmt: skip
    priced = {n for s in shapes.values() for n in s.gpu_skus}
    unknown = sorted({f"gcp {n} GPU: no machine type in the shape table (an N1 attachment "
                      "or a new series)" for n, _ in gpu if n not in priced})  # fmt: skip
    return PriceList(entries, unknown)


# -- Order, write ------------------------------------------------------------------------------
def natural_key(text: str) -> tuple[tuple[int, str | int], ...]:
    """ "g5.2xlarge" before "g5.12xlarge": digit runs compare as numbers."""
    return tuple(
        (1, int(p)) if p.isdigit() else (0, p) for p in re.split(r"(\d+)", text.lower()) if p
    )


def reference_first(entries: Iterable[PriceEntry], *, collapse: bool = False) -> list[PriceEntry]:
    """Entries grouped by type in natural order, the reference region first in each group.

    The reference is REFERENCE_REGIONS' region, else the type's first region in input order.
    ``collapse`` drops regions priced as the reference (the shipped file lists only differences).
    """
    groups: dict[tuple[str, str], list[PriceEntry]] = {}
    for e in entries:
        groups.setdefault((e.provider, e.instance_type), []).append(e)
    out: list[PriceEntry] = []
    for provider, itype in sorted(groups, key=lambda k: (k[0], natural_key(k[1]))):
        group = groups[(provider, itype)]
        ref = next((e for e in group if e.region == REFERENCE_REGIONS.get(provider)), group[0])
        rest = sorted((e for e in group if e is not ref), key=lambda e: e.region)
        same = (ref.hourly_price, ref.currency)
        out.append(ref)
        out.extend(e for e in rest if not (collapse and (e.hourly_price, e.currency) == same))
    return out


def format_number(value: Decimal | int | None) -> str:
    if value is None:
        return ""
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def entry_row(e: PriceEntry) -> list[str]:
    """An entry as a row of PRICEBOOK_COLUMNS (the shipped file's and ``pricebook import``'s)."""
    values = {name: getattr(e, name) for name in PRICEBOOK_COLUMNS}
    return [format_number(v) if isinstance(v, Decimal | int) else
            (v.isoformat() if isinstance(v, date) else (v or "")) for v in values.values()]  # fmt: skip


def write_pricebook(out: IO[str], entries: Iterable[PriceEntry]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PRICEBOOK_COLUMNS)
    count = 0
    for e in entries:
        writer.writerow(entry_row(e))
        count += 1
    return count


# -- Fetch -------------------------------------------------------------------------------------
def get_json(client: httpx.Client, url: str, params: Mapping[str, str] | None = None) -> Any:
    """One GET, decoded; any failure is a PriceListError with a one-line message."""
    try:
        response = client.get(url, params=params)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPStatusError as e:
        raise PriceListError(f"{urlsplit(url).netloc} answered HTTP {e.response.status_code} "
                             f"for {urlsplit(url).path}") from e  # fmt: skip
    except httpx.TransportError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PriceListError(f"cannot reach {urlsplit(url).netloc}: {reason}") from e
    except ValueError as e:
        raise PriceListError(f"{urlsplit(url).netloc} did not answer JSON for "
                             f"{urlsplit(url).path}") from e  # fmt: skip


def _saved(path: Path) -> Iterator[Any]:
    """Saved responses: a JSON file, or every *.json in a folder in name order."""
    for p in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        try:
            yield json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PriceListError(f"{p}: not a readable JSON price list ({e})") from e


def _azure_pages(client: httpx.Client, base: str, regions: list[str]) -> Iterator[Any]:
    query = AZURE_FILTER
    if regions:
        query += " and (" + " or ".join(f"armRegionName eq '{r}'" for r in regions) + ")"
    url: str | None = base + AZURE_PRICES_PATH
    params: dict[str, str] | None = {"$filter": query}
    for _ in range(MAX_PAGES):
        if not url:
            return
        page = get_json(client, url, params)
        yield page
        url, params = page.get("NextPageLink"), None  # the link carries the query
    raise PriceListError(f"{urlsplit(base).netloc}: more than {MAX_PAGES} pages")


def _gcp_pages(client: httpx.Client, base: str, api_key: str) -> Iterator[Any]:
    token = ""
    for _ in range(MAX_PAGES):
        params = {"key": api_key, "currencyCode": "USD", "pageSize": "5000"}
        if token:
            params["pageToken"] = token
        page = get_json(client, base + GCP_SKUS_PATH, params)
        yield page
        token = page.get("nextPageToken") or ""
        if not token:
            return
    raise PriceListError(f"{urlsplit(base).netloc}: more than {MAX_PAGES} pages")


def refresh(provider: str, *, price_date: date, regions: Iterable[str] = (),
            saved: Path | None = None, base_url: str | None = None, api_key: str | None = None,
            client: httpx.Client | None = None, spec: Spec = gpu_spec) -> PriceList:  # fmt: skip
    """A provider's GPU prices, from its API (``base_url`` or the public one) or saved responses.

    AWS reads one offer file per region (default: the reference region only, as each is large).
    """
    wanted = list(regions)
    if bad := [r for r in wanted if not _REGION.fullmatch(r)]:
        raise PriceListError(f"not a region name: {bad[0]!r}")
    base = (base_url or {"aws": AWS_PRICING_URL, "azure": AZURE_PRICES_URL,
                         "gcp": GCP_BILLING_URL}[provider]).rstrip("/")  # fmt: skip
    if provider == "gcp" and saved is None and not api_key:
        raise PriceListError(
            "the Cloud Billing Catalog API needs an API key (--api-key or --api-key-file)"
        )
    own = client is None
    http = client or httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True)
    result = PriceList()
    try:
        if provider == "aws":
            source = base + AWS_OFFER_PATH
            if saved is not None:
                offers: Iterable[tuple[str, Any]] = (("", o) for o in _saved(saved))
            else:
                offers = ((r, get_json(http, source.replace("{region}", r)))
                          for r in wanted or [REFERENCE_REGIONS["aws"]])  # fmt: skip
            for region, offer in offers:
                part = parse_aws_offer(offer, region=region, source=source,
                                       price_date=price_date, spec=spec)  # fmt: skip
                result.entries += part.entries
                result.unknown += part.unknown
        elif provider == "azure":
            pages = _saved(saved) if saved else _azure_pages(http, base, wanted)
            items = (item for page in pages for item in page.get("Items") or [])
            result = parse_azure_items(items, source=base + AZURE_PRICES_PATH,
                                       price_date=price_date, spec=spec)  # fmt: skip
        else:
            pages = _saved(saved) if saved else _gcp_pages(http, base, api_key or "")
            skus = (sku for page in pages for sku in page.get("skus") or [])
            result = parse_gcp_skus(skus, source=base + GCP_SKUS_PATH, price_date=price_date)
    except (AttributeError, TypeError) as e:
        raise PriceListError(f"{provider} price list is not in the documented shape: {e}") from e
    finally:
        if own:
            http.close()
    if wanted:
        result.entries = [e for e in result.entries if e.region in wanted]
    result.entries = reference_first(result.entries)
    result.unknown = sorted(set(result.unknown))
    return result
