"""GPU rows in real exports: the instance type or the GPU a row names, whatever column names it.

A row is GPU spend when ``x_gpu_model`` is set: from the instance type (through the shipped price
book, which also gives the count) or from a SKU or meter that names the GPU. Both dialects.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import normalize, service
from app.models import BillingLineItem
from bench import billing_samples as samples
from tests.app.billing.test_service import DATA

# Rows of the FinOps Foundation's FOCUS 1.0 sample (see the fixtures' README): an EC2 t2.micro,
# g3.4xlarge and g5.4xlarge hours, an Oracle memory row, an Azure D11 v2 VM and a P4 SSD disk.
FOCUS_SAMPLE = DATA / "gpu" / "focus_1.0_sample_gpu_rows.csv"
OCI_SAMPLE = DATA / "formats" / "oci_cost_report_sample.csv"


def _rows(session: Session) -> list[BillingLineItem]:
    return list(session.scalars(select(BillingLineItem).order_by(BillingLineItem.row_number)))


def _gpu(row: BillingLineItem) -> tuple[str | None, str | None, int | None]:
    return row.x_instance_type, row.x_gpu_model, row.x_gpu_count


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("text", "model"),
    [
        ("Nvidia Tesla P4 GPU running in Americas", "P4"),
        ("Nvidia Tesla P4 Virtual Workstation GPU running in EMEA", "P4"),
        ("Nvidia Tesla A100 80GB GPU running in Americas", "A100-80GB"),
        ("Nvidia Tesla A100 GPU running in Americas", "A100"),
        ("Nvidia L4 GPU running in APAC", "L4"),
        ("Nvidia H100 80GB GPU running in Americas", "H100"),
        ("Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", "T4"),
        ("Nvidia Tesla V100 GPU running in Americas", "V100"),
        ("Compute - GPU - A10", "A10"),
        ("Compute - GPU - A100 - v2", "A100-80GB"),
        ("Compute - GPU - H100", "H100"),
        # no GPU named: a CPU SKU, an OCI variant the price book does not know, a disk
        ("A2 Instance Core running in Americas", None),
        ("OCI - Compute - GPU - H100T", None),
        ("Compute - GPU Standard - V2", None),
        ("Premium SSD Managed Disks - P4 LRS - US East", None),
        ("$1.624 per On Demand Linux g5.4xlarge Instance Hour", None),
    ],
)
def test_gpu_model_from_sku_text(text: str, model: str | None) -> None:
    assert normalize.gpu_model_from_text(text) == model


def test_focus_sample_rows_name_their_instance_type(session: Session) -> None:
    """The FOCUS sample has no x_InstanceType: the EC2 type is in ChargeDescription."""
    summary = service.import_file(session, path=FOCUS_SAMPLE)
    assert summary.format == "focus-1.0"
    rows = _rows(session)
    assert [r.x_instance_type for r in rows] == [
        "t2.micro", "g3.4xlarge", "g5.4xlarge", "g5.4xlarge", "g3.4xlarge", None, None, None,
    ]  # fmt: skip
    # the Azure disk "P4 LRS" and the D11 v2 VM are no GPU rows
    assert [r.x_gpu_model for r in rows[5:]] == [None, None, None]
    assert sum((r.billed_cost for r in rows), Decimal(0)) == Decimal("4.077965364")


def test_focus_sample_gpu_rows_have_model_and_count(session: Session) -> None:
    """g5.4xlarge: one A10G, g3.4xlarge: one M60 (from the shipped price book)."""
    service.import_file(session, path=FOCUS_SAMPLE)
    gpu = [_gpu(r) for r in _rows(session) if r.x_gpu_model]
    assert gpu == [("g3.4xlarge", "M60", 1), ("g5.4xlarge", "A10G", 1),
                   ("g5.4xlarge", "A10G", 1), ("g3.4xlarge", "M60", 1)]  # fmt: skip


FOCUS_HEADER = [
    "BillingAccountId", "BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd",
    "BilledCost", "EffectiveCost", "BillingCurrency", "ChargeDescription", "PricingQuantity",
    "PricingUnit", "ProviderName", "ServiceCategory", "ResourceId", "SkuPriceDetails",
    "x_UsageType", "x_SkuDetails", "x_SkuMeterCategory", "x_SkuMeterSubcategory",
    "x_SkuMeterName",
]  # fmt: skip


def _focus_row(**cells: str) -> dict[str, str]:
    return {"BillingAccountId": "a", "BillingPeriodStart": "2026-11-01T00:00:00Z",
            "ChargePeriodStart": "2026-11-01T00:00:00Z",
            "ChargePeriodEnd": "2026-11-01T01:00:00Z", "BilledCost": "1", "EffectiveCost": "1",
            "BillingCurrency": "USD", "PricingQuantity": "1", "PricingUnit": "Hours",
            "ServiceCategory": "Compute", **cells}  # fmt: skip


def test_focus_columns_that_name_the_instance_or_gpu(session: Session, tmp_path: Path) -> None:
    rows = [
        _focus_row(ProviderName="AWS",
                   SkuPriceDetails='{"InstanceType": "g5.xlarge", "CoreCount": 4}'),
        _focus_row(ProviderName="AWS", SkuPriceDetails='{"x_InstanceType": "p4d.24xlarge"}'),
        _focus_row(ProviderName="AWS", x_UsageType="USE1-BoxUsage:g5.12xlarge"),
        _focus_row(ProviderName="AWS",
                   ChargeDescription="$1.006 per On Demand Linux g5.xlarge Instance Hour"),
        _focus_row(ProviderName="Microsoft",
                   x_SkuDetails='{"ServiceType": "Standard_NC24ads_A100_v4", "VCPUs": 24}'),
        _focus_row(ProviderName="Microsoft", x_SkuMeterCategory="Virtual Machines",
                   x_SkuMeterSubcategory="NCads A100 v4 Series", x_SkuMeterName="NC48ads A100 v4"),
        _focus_row(ProviderName="Google Cloud", PricingQuantity="2", PricingUnit="hour",
                   ChargeDescription="Nvidia Tesla A100 80GB GPU running in Americas"),
        _focus_row(ProviderName="Microsoft", ServiceCategory="Storage",
                   x_SkuMeterCategory="Storage", x_SkuMeterSubcategory="Premium SSD Managed Disks",
                   x_SkuMeterName="P40 LRS Disk", ChargeDescription="P40 LRS Disk"),
    ]  # fmt: skip
    service.import_file(session, path=_write(tmp_path / "focus.csv", FOCUS_HEADER, rows))
    assert [_gpu(r) for r in _rows(session)] == [
        ("g5.xlarge", "A10G", 1),
        ("p4d.24xlarge", "A100", 8),
        ("g5.12xlarge", "A10G", 4),
        ("g5.xlarge", "A10G", 1),
        ("Standard_NC24ads_A100_v4", "A100-80GB", 1),
        (None, "A100-80GB", None),  # the meter names the GPU, not how many
        (None, "A100-80GB", 2),  # a GPU SKU is billed per GPU-hour: 2 hours in 1 hour
        (None, None, None),
    ]


def test_cur_usage_type_names_the_instance(session: Session, tmp_path: Path) -> None:
    """CUR rows with an empty product instance type: "USE1-BoxUsage:p4d.24xlarge"."""
    samples.write_cur2(tmp_path / "full.csv", 4)
    with (tmp_path / "full.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["product_instance_type"] = ""
    service.import_file(session, path=_write(tmp_path / "cur2.csv", list(rows[0]), rows))
    stored = _rows(session)
    assert [r.x_instance_type for r in stored] == [
        r["line_item_usage_type"].split(":")[1] for r in rows
    ]
    assert {_gpu(r)[1:] for r in stored} <= {("A100", 8), ("H100", 8)}
    assert {r.x_cost_component for r in stored} == {"instance"}


AZURE_GPU_ROWS = [
    # no ServiceType in AdditionalInfo: the meter names the size and the GPU
    ("NCads A100 v4 Series", "NC24ads A100 v4", "Standard_NC24ads_A100_v4", "A100-80GB", 1),
    # no size named (the VM is Standard_ND96asr_v4, no meter name): the series names the GPU
    ("NDasrA100_v4 Series", "ND96asr A100 v4", None, "A100", None),
    ("NCasT4_v3 Series Windows", "", None, "T4", None),
]


def test_azure_meters_name_the_gpu(session: Session, tmp_path: Path) -> None:
    samples.write_azure(tmp_path / "full.csv", 1)
    with (tmp_path / "full.csv").open(newline="") as f:
        template = next(csv.DictReader(f))
    rows = []
    for subcategory, meter, _, _, _ in AZURE_GPU_ROWS:
        rows.append({**template, "AdditionalInfo": '{"VCPUs": 24}',
                     "MeterSubCategory": subcategory, "MeterName": meter})  # fmt: skip
    rows.append({**template, "AdditionalInfo": "", "MeterCategory": "Storage",
                 "MeterSubCategory": "Premium SSD Managed Disks",
                 "MeterName": "P40 LRS Disk"})  # fmt: skip
    service.import_file(session, path=_write(tmp_path / "azure.csv", samples.AZURE_HEADER, rows))
    expected = [(size, model, count) for *_, size, model, count in AZURE_GPU_ROWS]
    assert [_gpu(r) for r in _rows(session)] == [*expected, (None, None, None)]


def test_gcp_gpu_skus_name_model_and_count(session: Session, tmp_path: Path) -> None:
    """GPU SKUs are billed per GPU-hour; the machine type is in the price book or it is not."""
    rows = samples.gcp_rows(1, machine="n1-standard-8")[:1]
    skus = [("Nvidia Tesla P4 GPU running in Americas", "n1-standard-8", "2"),
            ("Nvidia Tesla A100 80GB GPU running in Americas", "a2-ultragpu-8g", "8"),
            ("Nvidia L4 GPU running in Americas", "g2-standard-4", "1"),
            ("N1 Predefined Instance Core running in Americas", "n1-standard-8", "8")]  # fmt: skip
    body = []
    for description, machine, quantity in skus:
        system = json.dumps([{"key": "compute.googleapis.com/machine_spec", "value": machine}])
        body.append({**rows[0], "sku.description": description, "system_labels": system,
                     "usage.amount_in_pricing_units": quantity})  # fmt: skip
    service.import_file(session, path=_write(tmp_path / "gcp.csv", samples.GCP_COLUMNS, body))
    assert [_gpu(r) for r in _rows(session)] == [
        ("n1-standard-8", "P4", 2),
        ("a2-ultragpu-8g", "A100-80GB", 8),
        ("g2-standard-4", "L4", 1),
        ("n1-standard-8", None, None),
    ]


def test_oci_gpu_skus_name_model_and_count(session: Session, tmp_path: Path) -> None:
    """OCI bills a GPU shape per GPU-hour under a SKU that names the GPU."""
    with OCI_SAMPLE.open(newline="") as f:
        compute = next(r for r in csv.DictReader(f) if r["product/service"] == "COMPUTE")
    header = list(compute)
    skus = [("B95909", "Compute - GPU - A10", "2"),  # VM.GPU.A10.2 for an hour
            ("B95907", "Compute - GPU - A100 - v2", "8"),  # BM.GPU.A100-v2.8
            ("B98415", "Compute - GPU - H100", "4"),
            (compute["cost/productSku"], compute["product/Description"], "4")]  # fmt: skip
    body = [{**compute, "cost/productSku": sku, "product/Description": description,
             "usage/billedQuantity": quantity, "cost/billingUnitReadable": "GPU Hours"}
            for sku, description, quantity in skus]  # fmt: skip
    service.import_file(session, path=_write(tmp_path / "oci.csv", header, body))
    stored = _rows(session)
    assert [r.x_gpu_model for r in stored] == ["A10", "A100-80GB", "H100", None]
    assert [r.x_gpu_count for r in stored] == [2, 8, 4, None]
    assert [r.x_cost_component for r in stored] == ["gpu", "gpu", "gpu", "memory"]
