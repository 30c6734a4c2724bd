"""Price lists → price book entries: the parsers, the paging over HTTP, the CLI, the shipped file."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from app import cli
from app.billing import pricelists
from app.billing.catalog import PriceEntry, read_pricebook, shipped_pricebook
from app.billing.pricebook import load_pricebook, upsert_entries
from app.billing.pricelists import PriceListError, refresh
from app.db import reset_engine

FIXTURES = Path(__file__).parents[2] / "fixtures" / "billing" / "pricelists"
SCRIPT = Path(__file__).parents[3] / "scripts" / "pricebook_from_catalog.py"
DAY = date(2026, 12, 1)
AZURE_SOURCE = "https://prices.azure.com/api/retail/prices"
GCP_SOURCE = "https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _prices(entries: list[PriceEntry]) -> dict[tuple[str, str], Decimal | None]:
    return {(e.instance_type, e.region): e.hourly_price for e in entries}


# -- Parsers ------------------------------------------------------------------------------------
def test_aws_offer_keeps_on_demand_linux_gpu_types() -> None:
    got = pricelists.parse_aws_offer(_load("aws/us-east-1.json"), region="us-east-1",
                                     source="https://x/{region}/index.json", price_date=DAY)  # fmt: skip
    assert _prices(got.entries) == {
        ("g5.xlarge", "us-east-1"): Decimal("1.006"),
        ("inf2.xlarge", "us-east-1"): Decimal("0.7582"),
        ("p5.48xlarge", "us-east-1"): Decimal("55.04"),
    }
    by_type = {e.instance_type: e for e in got.entries}
    # The GPU count is the offer's; Inferentia has none there, so the price book's count stands.
    assert (by_type["p5.48xlarge"].gpu_model, by_type["p5.48xlarge"].gpu_count) == ("H100", 8)
    assert (by_type["inf2.xlarge"].gpu_model, by_type["inf2.xlarge"].gpu_count) == (
        "Inferentia2", 1)  # fmt: skip
    assert by_type["g5.xlarge"].source == "https://x/us-east-1/index.json"
    assert {e.price_date for e in got.entries} == {DAY}
    assert got.unknown == [
        "aws p9.48xlarge: 8 GPUs, 2304 GiB GPU memory, no GPU model in the price book"
    ]


def test_azure_items_keep_linux_pay_as_you_go_n_series() -> None:
    items = [i for page in ("azure/page-1.json", "azure/page-2.json")
             for i in _load(page)["Items"]]  # fmt: skip
    got = pricelists.parse_azure_items(items, source=AZURE_SOURCE, price_date=DAY)
    assert _prices(got.entries) == {
        ("Standard_NC24ads_A100_v4", "eastus"): Decimal("3.673"),
        ("Standard_NC24ads_A100_v4", "westus"): Decimal("4.775"),
        ("Standard_ND96isr_H100_v5", "eastus"): Decimal("98.32"),
        ("Standard_NC6s_v3", "eastus"): Decimal("3.06"),
    }
    nd = next(e for e in got.entries if e.instance_type == "Standard_ND96isr_H100_v5")
    assert (nd.gpu_model, nd.gpu_count, nd.currency) == ("H100", 8, "USD")
    assert got.unknown == ["azure Standard_NX99ads_v9: no GPU model or count in the price book"]


def test_gcp_machine_is_its_gpus_vcpus_and_memory() -> None:
    skus = [s for page in ("gcp/page-1.json", "gcp/page-2.json") for s in _load(page)["skus"]]
    got = pricelists.parse_gcp_skus(skus, source=GCP_SOURCE, price_date=DAY)
    prices = _prices(got.entries)
    a100, a2_core, a2_ram = Decimal("2.933908"), Decimal("0.031611"), Decimal("0.004237")
    assert prices[("a2-highgpu-1g", "us-central1")] == a100 + 12 * a2_core + 85 * a2_ram
    assert prices[("a2-highgpu-1g", "us-central1")] == Decimal("3.673385")
    assert prices[("a2-megagpu-16g", "us-central1")] == 16 * a100 + 96 * a2_core + 1360 * a2_ram
    l4, g2_core, g2_ram = Decimal("0.56004"), Decimal("0.024988"), Decimal("0.002928")
    assert prices[("g2-standard-24", "us-central1")] == 2 * l4 + 24 * g2_core + 96 * g2_ram
    # A2 cores are sold in us-east1 too, the A100 is not: no A2 machine there. No "A100 80GB"
    # SKU: no a2-ultragpu; no spot or commitment price anywhere.
    assert {t for t, _ in prices} == {
        *(f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)), "a2-megagpu-16g",
        *(f"g2-standard-{n}" for n in (4, 8, 12, 16, 24, 32, 48, 96)),
    }  # fmt: skip
    assert {r for _, r in prices} == {"us-central1"}
    g2 = next(e for e in got.entries if e.instance_type == "g2-standard-48")
    assert (g2.gpu_model, g2.gpu_count) == ("L4", 4)
    assert got.unknown == [
        "gcp T4 GPU: no machine type in the shape table (an N1 attachment or a new series)"
    ]


def test_refresh_from_saved_files_filters_regions_and_puts_the_reference_first() -> None:
    got = refresh("azure", price_date=DAY, saved=FIXTURES / "azure")
    assert [(e.instance_type, e.region) for e in got.entries] == [
        ("Standard_NC6s_v3", "eastus"),
        ("Standard_NC24ads_A100_v4", "eastus"),
        ("Standard_NC24ads_A100_v4", "westus"),
        ("Standard_ND96isr_H100_v5", "eastus"),
    ]
    assert {e.source for e in got.entries} == {AZURE_SOURCE}
    west = refresh("azure", price_date=DAY, saved=FIXTURES / "azure", regions=["westus"])
    assert _prices(west.entries) == {("Standard_NC24ads_A100_v4", "westus"): Decimal("4.775")}
    # A region goes into the Azure query: only region names pass.
    with pytest.raises(PriceListError, match="not a region name"):
        refresh("azure", price_date=DAY, saved=FIXTURES / "azure", regions=["x' or 1 eq 1"])


def test_a_file_that_is_not_a_price_list_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "page.json").write_text("[1, 2]")
    with pytest.raises(PriceListError, match="not in the documented shape"):
        refresh("azure", price_date=DAY, saved=tmp_path)
    (tmp_path / "page.json").write_text("{not json")
    with pytest.raises(PriceListError, match="not a readable JSON price list"):
        refresh("gcp", price_date=DAY, saved=tmp_path)


# -- Over HTTP: a real server on 127.0.0.1 --------------------------------------------------------
Answer = Callable[[str, dict[str, str], str], tuple[int, Any]]


class _Server(ThreadingHTTPServer):
    answer: Answer
    seen: list[tuple[str, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.seen.append((url.path, query))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        status, body = self.server.answer(url.path, query, base)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays clean
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[str, list[tuple[str, dict[str, str]]]]]]:
    servers: list[tuple[_Server, threading.Thread]] = []

    def start(answer: Answer) -> tuple[str, list[tuple[str, dict[str, str]]]]:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.answer, server.seen = answer, []
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}", server.seen

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def _azure_pages(path: str, query: dict[str, str], base: str) -> tuple[int, Any]:
    if path != "/api/retail/prices":
        return 404, {"error": path}
    if "$skip" not in query:
        page = _load("azure/page-1.json")
        # The real link names prices.azure.com; this server stands in for it.
        page["NextPageLink"] = page["NextPageLink"].replace("https://prices.azure.com:443", base)
        return 200, page
    return 200, _load("azure/page-2.json")


def _gcp_pages(path: str, query: dict[str, str], base: str) -> tuple[int, Any]:
    if query.get("key") != "test-key":
        return 403, {"error": {"code": 403, "message": "API key not valid."}}
    page = "gcp/page-2.json" if query.get("pageToken") == "page-2" else "gcp/page-1.json"
    return 200, _load(page)


def test_azure_follows_next_page_link(serve: Any) -> None:
    base, seen = serve(_azure_pages)
    got = refresh("azure", price_date=DAY, base_url=base, regions=["eastus", "westus"])
    assert len(seen) == 2
    first_filter = seen[0][1]["$filter"]
    assert first_filter.startswith(pricelists.AZURE_FILTER)
    assert "armRegionName eq 'eastus' or armRegionName eq 'westus'" in first_filter
    assert seen[1][1]["$skip"] == "1000"
    assert ("Standard_ND96isr_H100_v5", "eastus") in _prices(got.entries)  # from page 2
    assert {e.source for e in got.entries} == {base + "/api/retail/prices"}


def test_gcp_follows_next_page_token_with_the_key(serve: Any) -> None:
    base, seen = serve(_gcp_pages)
    got = refresh("gcp", price_date=DAY, base_url=base, api_key="test-key")
    assert [q.get("pageToken") for _, q in seen] == [None, "page-2"]
    assert all(q["key"] == "test-key" and q["currencyCode"] == "USD" for _, q in seen)
    prices = _prices(got.entries)
    assert prices[("a2-highgpu-1g", "us-central1")] == Decimal("3.673385")
    assert ("g2-standard-4", "us-central1") in prices  # from page 2
    with pytest.raises(PriceListError, match=r"answered HTTP 403 for /v1/services/"):
        refresh("gcp", price_date=DAY, base_url=base, api_key="wrong")
    with pytest.raises(PriceListError, match="needs an API key"):
        refresh("gcp", price_date=DAY, base_url=base)


def test_aws_reads_one_offer_file_per_region(serve: Any) -> None:
    offer = _load("aws/us-east-1.json")
    base, seen = serve(lambda path, q, b: (200, offer) if "/us-east-1/" in path else (404, {}))
    got = refresh("aws", price_date=DAY, base_url=base)
    assert [p for p, _ in seen] == ["/offers/v1.0/aws/AmazonEC2/current/us-east-1/index.json"]
    assert _prices(got.entries)[("g5.xlarge", "us-east-1")] == Decimal("1.006")
    with pytest.raises(PriceListError, match="answered HTTP 404"):
        refresh("aws", price_date=DAY, base_url=base, regions=["eu-west-1"])


def test_an_unreachable_price_list_is_one_line() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PriceListError) as caught:
        refresh("azure", price_date=DAY, base_url=f"http://127.0.0.1:{port}")
    assert str(caught.value).startswith(f"cannot reach 127.0.0.1:{port}: ")
    assert "\n" not in str(caught.value)


# -- The CLI, end to end ------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    reset_engine()  # the CLI opens its own embedded database in --data-dir
    yield tmp_path / "ledger"
    reset_engine()


def _listed(capsys: pytest.CaptureFixture[str], data_dir: Path) -> list[dict[str, str]]:
    capsys.readouterr()
    assert cli.main(["pricebook", "list", "--data-dir", str(data_dir)]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_cli_refresh_output_then_import(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "azure.csv"
    assert cli.main(["pricebook", "refresh", "--provider", "azure", "--from",
                     str(FIXTURES / "azure"), "--date", "2026-12-01", "--output", str(out),
                     "--data-dir", str(data_dir)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "4 price book entries written to" in err
    assert "not priced: azure Standard_NX99ads_v9" in err
    assert read_pricebook(out) == refresh("azure", price_date=DAY, saved=FIXTURES / "azure").entries
    assert cli.main(["pricebook", "import", str(out), "--data-dir", str(data_dir)]) == 0
    rows = [r for r in _listed(capsys, data_dir) if r["instance_type"] == "Standard_NC6s_v3"]
    east = next(r for r in rows if r["region"] == "eastus")
    assert (east["hourly_price"], east["source"], east["price_date"]) == (
        "3.06", AZURE_SOURCE, "2026-12-01")  # fmt: skip


def test_cli_refresh_apply_over_http(
    serve: Any, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = serve(_gcp_pages)
    key = tmp_path / "gcp.key"
    key.write_text("test-key\n")
    assert cli.main(["pricebook", "refresh", "--provider", "gcp", "--url", base,
                     "--api-key-file", str(key), "--date", "2026-12-01", "--apply",
                     "--data-dir", str(data_dir)]) == 0  # fmt: skip
    assert "13 price book entries written" in capsys.readouterr().err
    rows = {(r["instance_type"], r["region"]): r for r in _listed(capsys, data_dir)}
    a2 = rows[("a2-highgpu-1g", "us-central1")]
    assert (a2["hourly_price"], a2["source"], a2["price_date"]) == (
        "3.673385", base + pricelists.GCP_SKUS_PATH, "2026-12-01")  # fmt: skip


def test_cli_refresh_says_why_it_wrote_nothing(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = cli.main(["pricebook", "refresh", "--provider", "azure", "--url",
                     f"http://127.0.0.1:{port}", "--output", str(tmp_path / "x.csv"),
                     "--data-dir", str(data_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: cannot reach 127.0.0.1:{port}")
    assert "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


# -- --apply through the service, on both dialects ---------------------------------------------
def test_applied_prices_override_by_region_and_fall_back_to_the_reference(
    session: Session,
) -> None:
    got = refresh("azure", price_date=DAY, saved=FIXTURES / "azure")
    assert upsert_entries(session, got.entries) == 4
    book = load_pricebook(session)
    west = book.find("azure", "Standard_NC24ads_A100_v4", "westus")
    assert west is not None
    assert (west.hourly_price, west.source) == (Decimal("4.775"), AZURE_SOURCE)
    # A region the book has no row for is priced as the type's reference region (eastus).
    elsewhere = book.find("azure", "Standard_NC24ads_A100_v4", "norwayeast")
    assert elsewhere is not None
    assert (elsewhere.region, elsewhere.source) == ("eastus", AZURE_SOURCE)
    g5 = book.find("aws", "g5.xlarge", "nowhere-1")
    assert g5 is not None
    assert g5.region == "us-east-1"


# -- The shipped price book ---------------------------------------------------------------------
COVERED = [
    "g5.xlarge", "g4dn.xlarge", "g4ad.xlarge", "g5g.xlarge", "g6.xlarge", "g6e.xlarge",
    "gr6.4xlarge", "p3.2xlarge", "p3dn.24xlarge", "p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge",
    "p5en.48xlarge", "p6-b200.48xlarge", "trn1.32xlarge", "trn1n.32xlarge", "inf1.xlarge",
    "inf2.xlarge", "Standard_NC24ads_A100_v4", "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4",
    "Standard_ND96isr_H100_v5", "Standard_NC6s_v3", "Standard_NC4as_T4_v3",
    "Standard_NC40ads_H100_v5", "Standard_ND40rs_v2", "Standard_NV36ads_A10_v5",
    "Standard_NV12s_v3", "a2-highgpu-1g", "a2-megagpu-16g", "a2-ultragpu-1g", "a3-highgpu-8g",
    "a3-megagpu-8g", "a3-edgegpu-8g", "g2-standard-4", "BM.GPU.H100.8", "BM.GPU.A100-v2.8",
    "VM.GPU.A10.1",
]  # fmt: skip


def test_shipped_book_covers_current_gpu_types_with_model_count_source_and_date() -> None:
    book = shipped_pricebook()
    types = {e.instance_type: e for e in book}
    missing = [t for t in COVERED if t not in types]
    assert not missing
    for t in COVERED:
        assert types[t].gpu_model
        assert types[t].gpu_count >= 1
    assert (types["p4de.24xlarge"].gpu_model, types["p4de.24xlarge"].gpu_count) == ("A100-80GB", 8)
    assert (types["Standard_ND96isr_H100_v5"].gpu_count, types["trn1.32xlarge"].gpu_model) == (
        8, "Trainium")  # fmt: skip
    for e in book:
        assert e.source
        assert e.price_date is not None
        if e.provider != "onprem" and "GPU model and count only" not in e.source:
            assert e.hourly_price is not None
            assert e.hourly_price > 0
    # Still billed, not in the catalogue: GPU model and count only (its bill rows are GPU spend).
    assert (types["g3.4xlarge"].gpu_model, types["g3.4xlarge"].hourly_price) == ("M60", None)


def test_shipped_book_lists_each_type_reference_region_first() -> None:
    first: dict[tuple[str, str], PriceEntry] = {}
    regions: dict[tuple[str, str], set[str]] = {}
    for e in shipped_pricebook():
        first.setdefault((e.provider, e.instance_type), e)
        regions.setdefault((e.provider, e.instance_type), set()).add(e.region)
    for (provider, itype), e in first.items():
        reference = pricelists.REFERENCE_REGIONS.get(provider)
        if reference in regions[(provider, itype)]:
            assert e.region == reference, itype
    seen = [(e.provider, e.instance_type, e.region) for e in shipped_pricebook()]
    assert len(seen) == len(set(seen))


# -- The generator of the shipped file ----------------------------------------------------------
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pricebook_from_catalog", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _catalogue(root: Path, path: str, header: str, rows: list[str]) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join([header, *rows]) + "\n")


AWS_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone"  # fmt: skip
GCP_HEADER = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice"  # fmt: skip
AZURE_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation"  # fmt: skip


def test_generator_keeps_gpu_rows_per_distinct_region_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "skypilot-catalog"
    older = ["g5.xlarge,A10G,1.0,4,16,,9.99,,us-east-1,use1-az1"]
    _catalogue(root, "catalogs/v8/aws/vms.csv", AWS_HEADER, older)  # not the newest: not read
    _catalogue(root, "catalogs/v9/aws/vms.csv", AWS_HEADER, [
        "g5.xlarge,A10G,1.0,4,16,,1.006,,us-west-2,usw2-az1",
        "g5.xlarge,A10G,1.0,4,16,,1.006,,us-east-1,use1-az1",
        "g5.xlarge,A10G,1.0,4,16,,1.006,,us-east-1,use1-az2",
        "g5.xlarge,A10G,1.0,4,16,,1.258,,eu-west-1,euw1-az1",
        "g6f.large,L4,0.125,2,8,,0.202,,us-east-1,use1-az1",
        "p5e.48xlarge,H200,8.0,192,2048,,,,us-east-1,use1-az1",
        "m5.large,,,2,8,,0.096,,us-east-1,use1-az1",
    ])  # fmt: skip
    _catalogue(root, "catalogs/v9/gcp/vms.csv", GCP_HEADER, [
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.2",
        "a2-highgpu-1g,12.0,85.0,,,,europe-west4,europe-west4-a,0.81406,0.2",
        ",,,A100,1,,us-central1,us-central1-a,2.93391,1.5",
        ",,,A100,1,,europe-west4,europe-west4-a,1.61365,1.3",
        "n2-standard-2,2.0,8.0,,,,us-central1,us-central1-a,0.0971,0.02",
    ])  # fmt: skip
    _catalogue(root, "catalogs/v6/azure/vms.csv", AZURE_HEADER, [
        "Standard_ND96isr_H100_v5,H100,12,96.0,1900,H100,98.32,98.32,eastus,V2",
        "Standard_NV4as_v4,Radeon MI25,1,4.0,14,Radeon MI25,0.233,0.02,eastus,V1",
        "Standard_NC6_Promo,K80,1,6.0,56,K80,0.216,,westus2,V1",
    ])  # fmt: skip
    base = tmp_path / "base.csv"
    base.write_text(
        "provider,instance_type,region,gpu_model,gpu_count,hourly_price,currency,hardware_cost,"
        "amortization_months,energy_price_kwh,pue,source,price_date\n"
        "aws,p2.xlarge,us-east-1,K80,1,0.9,USD,,,,,old,2020-01-01\n"
        "onprem,dgx-h100,,H100,8,,USD,373000,48,0.12,1.4,example,2024-06-01\n"
    )
    out = tmp_path / "pricebook.csv"
    assert _script().main([str(root), "--commit", "0123456789abcdef", "--date", "2026-07-09",
                           "--providers", "aws,gcp,azure", "--base", str(base),
                           "--output", str(out)]) == 0  # fmt: skip
    rows = [(e.provider, e.instance_type, e.region, e.gpu_model, e.gpu_count, e.hourly_price)
            for e in read_pricebook(out)]  # fmt: skip
    hardware_only = [row for row in rows if row[5] is None and row[0] == "aws"]
    assert hardware_only == [("aws", t, "us-east-1", "M60", n, None) for t, n in
                             (("g3.4xlarge", 1), ("g3.8xlarge", 2), ("g3.16xlarge", 4),
                              ("g3s.xlarge", 1))]  # fmt: skip
    assert [row for row in rows if row not in hardware_only] == [
        ("aws", "g5.xlarge", "us-east-1", "A10G", 1, Decimal("1.006")),
        ("aws", "g5.xlarge", "eu-west-1", "A10G", 1, Decimal("1.258")),  # us-west-2 = reference
        ("azure", "Standard_ND96isr_H100_v5", "eastus", "H100", 8, Decimal("98.32")),
        ("gcp", "a2-highgpu-1g", "us-central1", "A100", 1, Decimal("3.67339")),
        ("gcp", "a2-highgpu-1g", "europe-west4", "A100", 1, Decimal("2.42771")),
        ("onprem", "dgx-h100", "", "H100", 8, None),
    ]
    first = next(e for e in read_pricebook(out) if e.hourly_price is not None)
    assert first.source == ("AWS Price List API via skypilot-org/skypilot-catalog@0123456 "
                            "catalogs/v9/aws/vms.csv (Apache-2.0)")  # fmt: skip
    assert first.price_date == date(2026, 7, 9)
    err = capsys.readouterr().err
    assert "skipped g6f.large: a fraction of a GPU" in err
    assert "skipped p5e.48xlarge: no on-demand price" in err
    assert "skipped Standard_NC6_Promo: promotional meter" in err
    assert "warning: aws p2.xlarge was in --base and is not in the catalogue" in err
