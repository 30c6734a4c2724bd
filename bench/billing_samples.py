"""Generated billing files with GPU rows, in the shapes of real exports (tests and benchmark)."""

from __future__ import annotations

import csv
import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

START = datetime(2026, 11, 1, tzinfo=UTC)
CUR2_COLUMNS = [
    "identity_line_item_id", "identity_time_interval", "bill_invoice_id", "bill_invoicing_entity",
    "bill_billing_entity", "bill_bill_type", "bill_payer_account_id",
    "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
    "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type",
    "line_item_operation", "line_item_availability_zone", "line_item_resource_id",
    "line_item_usage_amount", "line_item_normalization_factor",
    "line_item_normalized_usage_amount", "line_item_currency_code", "line_item_unblended_rate",
    "line_item_unblended_cost", "line_item_blended_rate", "line_item_blended_cost",
    "line_item_line_item_description", "line_item_tax_type", "line_item_legal_entity",
    "product_product_family", "product_instance_type", "product_instance_family",
    "product_region_code", "product_location", "product_operating_system", "product_sku",
    "product_usagetype", "product_servicecode", "product", "pricing_term", "pricing_unit",
    "pricing_public_on_demand_cost", "pricing_public_on_demand_rate",
    "reservation_effective_cost", "reservation_reservation_a_r_n",
    "savings_plan_savings_plan_effective_cost", "savings_plan_savings_plan_a_r_n",
    "savings_plan_savings_plan_rate", "resource_tags", "cost_category",
]  # fmt: skip
FOCUS_COLUMNS = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName",
    "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId",
    "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "x_InstanceType",
]  # fmt: skip
GPU_TYPES = [("p4d.24xlarge", Decimal("32.7726")), ("p5.48xlarge", Decimal("98.32"))]


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", newline="", encoding="utf-8")
    return path.open("w", newline="", encoding="utf-8")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_cur2(
    path: Path,
    rows: int,
    *,
    instances: list[str] | None = None,
    seed: int = 1,
    account: str = "123456789012",
    discount: Decimal = Decimal("0.6"),
) -> Decimal:
    """A CUR 2.0 CSV of hourly GPU instance rows (savings-plan covered); returns the billed sum."""
    rng = random.Random(seed)
    instances = instances or [f"i-{k:017x}" for k in range(1, 65)]
    total = Decimal(0)
    period = START.replace(day=1)
    with _open(path) as f:
        w = csv.writer(f)
        w.writerow(CUR2_COLUMNS)
        for k in range(rows):
            iid = instances[k % len(instances)]
            itype, rate = GPU_TYPES[int(iid[-1], 16) % 2]
            hour = START + timedelta(hours=(k // len(instances)) % 720)
            covered = rng.random() < 0.5
            cost = rate if not covered else Decimal(0)
            eff = (rate * discount).quantize(Decimal("0.0000000001")) if covered else rate
            total += cost
            tags = json.dumps({"user_team": rng.choice(["ml", "search", "vision"])})
            w.writerow([
                f"li-{k}", f"{_iso(hour)}/{_iso(hour + timedelta(hours=1))}", "", "AWS", "AWS",
                "Anniversary", account, _iso(period), _iso(period + timedelta(days=30)), account,
                "SavingsPlanCoveredUsage" if covered else "Usage", _iso(hour),
                _iso(hour + timedelta(hours=1)), "AmazonEC2", f"USE1-BoxUsage:{itype}",
                "RunInstances", "us-east-1a", iid, "1", "64", "64", "USD", str(rate), str(cost),
                str(rate), str(cost), f"${rate} per On Demand Linux {itype} Instance Hour", "",
                "Amazon Web Services, Inc.", "Compute Instance", itype, itype.split(".")[0],
                "us-east-1", "US East (N. Virginia)", "Linux", "SKU" + itype, f"BoxUsage:{itype}",
                "AmazonEC2", "{}", "OnDemand", "Hrs", str(rate), str(rate), "0", "",
                str(eff) if covered else "0", "arn:aws:savingsplans::1:savingsplan/x" if covered
                else "", "", tags, "{}",
            ])  # fmt: skip
    return total


def write_focus(
    path: Path, rows: int, *, instances: list[str] | None = None, seed: int = 2
) -> Decimal:
    """A FOCUS 1.2 CSV of hourly GPU VM rows; returns the billed sum."""
    rng = random.Random(seed)
    instances = instances or [f"i-{k:017x}" for k in range(1, 65)]
    total = Decimal(0)
    with _open(path) as f:
        w = csv.writer(f)
        w.writerow(FOCUS_COLUMNS)
        for k in range(rows):
            iid = instances[k % len(instances)]
            itype, rate = GPU_TYPES[int(iid[-1], 16) % 2]
            hour = START + timedelta(hours=(k // len(instances)) % 720)
            eff = (rate * Decimal(rng.choice(["1", "0.7", "0.55"]))).quantize(Decimal("0.0001"))
            total += rate
            w.writerow([
                str(rate), "123456789012", "Payer", "USD", "2026-12-01T00:00:00Z",
                "2026-11-01T00:00:00Z", "Usage", "", f"{itype} instance hour", "Usage-Based",
                _iso(hour + timedelta(hours=1)), _iso(hour), "1", "Hours", str(eff), str(eff),
                str(eff), "AWS", str(rate), str(rate), "Standard", "1", "Hours", "AWS", "AWS",
                "us-east-1", "US East (N. Virginia)",
                f"arn:aws:ec2:us-east-1:123456789012:instance/{iid}", iid, "Virtual Machine",
                "Compute", "Amazon Elastic Compute Cloud", "SKU" + itype, "P" + itype,
                "123456789012", "dev", json.dumps({"team": rng.choice(["ml", "vision"])}), itype,
            ])  # fmt: skip
    return total


GCP_COLUMNS = [
    "billing_account_id", "service.id", "service.description", "sku.id", "sku.description",
    "usage_start_time", "usage_end_time", "project.id", "project.name", "labels",
    "system_labels", "location.region", "resource.name", "resource.global_name", "cost",
    "currency", "usage.amount_in_pricing_units", "usage.pricing_unit", "credits",
    "invoice.month", "cost_type",
]  # fmt: skip


def gcp_rows(
    hours: int, instance: str = "4815162342", machine: str = "a2-highgpu-1g"
) -> list[dict[str, str]]:
    """GCP export rows: per hour a GPU line, a core line and a RAM line for one VM."""
    out = []
    labels = json.dumps([{"key": "team", "value": "vision"}])
    system = json.dumps([{"key": "compute.googleapis.com/machine_spec", "value": machine}])
    parts = [("Nvidia Tesla A100 GPU running in Americas", "2.933908", "gpu"),
             ("A2 Instance Core running in Americas", "0.379", "cpu"),
             ("A2 Instance Ram running in Americas", "0.361", "ram")]  # fmt: skip
    for h in range(hours):
        start = START + timedelta(hours=h)
        for desc, cost, sku in parts:
            credits = (
                "[]"
                if sku != "cpu"
                else json.dumps(
                    [
                        {
                            "name": "Sustained use discount",
                            "amount": -0.1,
                            "type": "SUSTAINED_USAGE_DISCOUNT",
                        }
                    ]
                )
            )
            out.append({
                "billing_account_id": "01ABCD-234567-89EFGH", "service.id": "6F81-5844-456A",
                "service.description": "Compute Engine", "sku.id": f"SKU-{sku}",
                "sku.description": desc, "usage_start_time": _iso(start),
                "usage_end_time": _iso(start + timedelta(hours=1)), "project.id": "ml-prod",
                "project.name": "ml-prod", "labels": labels, "system_labels": system,
                "location.region": "us-central1", "resource.name": "gpu-vm-1",
                "resource.global_name":
                    f"//compute.googleapis.com/projects/ml-prod/zones/us-central1-a/instances/{instance}",
                "cost": cost, "currency": "USD", "usage.amount_in_pricing_units": "1",
                "usage.pricing_unit": "hour", "credits": credits, "invoice.month": "202611",
                "cost_type": "regular",
            })  # fmt: skip
    return out


def write_gcp(path: Path, hours: int, **kw: str) -> Decimal:
    rows = gcp_rows(hours, **kw)
    if path.suffix == ".jsonl":
        with path.open("w") as f:
            for r in rows:
                nested: dict[str, object] = {}
                for key, value in r.items():
                    head, _, tail = key.partition(".")
                    obj: object = json.loads(value) if key in ("labels", "system_labels",
                                                                "credits") else value  # fmt: skip
                    if tail:
                        nested.setdefault(head, {})[tail] = obj  # type: ignore[index]
                    else:
                        nested[head] = obj
                f.write(json.dumps(nested) + "\n")
    else:
        with _open(path) as f:
            w = csv.DictWriter(f, GCP_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    return sum((Decimal(r["cost"]) for r in rows), Decimal(0))


AZURE_HEADER = [
    "BillingAccountId",
    "BillingAccountName",
    "BillingPeriodStartDate",
    "BillingPeriodEndDate",
    "BillingProfileId",
    "BillingProfileName",
    "AccountOwnerId",
    "AccountName",
    "SubscriptionId",
    "SubscriptionName",
    "Date",
    "Product",
    "PartNumber",
    "MeterId",
    "ServiceFamily",
    "MeterCategory",
    "MeterSubCategory",
    "MeterRegion",
    "MeterName",
    "Quantity",
    "EffectivePrice",
    "Cost",
    "UnitPrice",
    "BillingCurrency",
    "ResourceLocation",
    "AvailabilityZone",
    "ConsumedService",
    "ResourceId",
    "ResourceName",
    "ServiceInfo1",
    "ServiceInfo2",
    "AdditionalInfo",
    "Tags",
    "InvoiceSectionId",
    "InvoiceSection",
    "CostCenter",
    "UnitOfMeasure",
    "ResourceGroup",
    "ReservationId",
    "ReservationName",
    "ProductOrderId",
    "ProductOrderName",
    "OfferId",
    "IsAzureCreditEligible",
    "Term",
    "PublisherName",
    "PlanName",
    "ChargeType",
    "Frequency",
    "PublisherType",
    "PayGPrice",
    "PricingModel",
    "CostAllocationRuleName",
    "benefitId",
    "benefitName",
]

AZURE_VM = ("/subscriptions/9ec51cfd-5ca7-4d76-8101-dd0a4abc5674/resourceGroups/ML-GPU/providers/"
            "Microsoft.Compute/virtualMachines/nd-a100-01")  # fmt: skip


def write_azure(path: Path, days: int, hours_per_day: int = 24) -> Decimal:
    """Azure EA daily rows for one ND96asr v4 VM (Quantity = hours run that day)."""
    total = Decimal(0)
    with _open(path) as f:
        w = csv.DictWriter(f, AZURE_HEADER, restval="")
        w.writeheader()
        for d in range(days):
            day = START + timedelta(days=d)
            cost = Decimal("27.197") * hours_per_day
            total += cost
            w.writerow({
                "BillingAccountId": "8611537", "BillingPeriodStartDate": "11/01/2026",
                "BillingPeriodEndDate": "11/30/2026", "AccountOwnerId": "owner@example.com",
                "SubscriptionId": "9ec51cfd-5ca7-4d76-8101-dd0a4abc5674",
                "Date": day.strftime("%m/%d/%Y"), "Product": "Virtual Machines NDasrA100_v4 Series",
                "MeterId": "m-nd96", "MeterCategory": "Virtual Machines",
                "MeterSubCategory": "NDasrA100_v4 Series", "MeterName": "ND96asr A100 v4",
                "Quantity": str(hours_per_day), "EffectivePrice": "27.197", "Cost": str(cost),
                "UnitPrice": "27.197", "BillingCurrency": "USD", "ResourceLocation": "eastus",
                "ConsumedService": "Microsoft.Compute", "ResourceId": AZURE_VM,
                "ResourceName": "nd-a100-01",
                "AdditionalInfo": json.dumps({"ServiceType": "Standard_ND96asr_v4", "VCPUs": 96}),
                "Tags": '"team": "research","cost-center": "cc-42"', "UnitOfMeasure": "1 Hour",
                "ChargeType": "Usage", "Frequency": "UsageBased", "PayGPrice": "27.197",
                "PricingModel": "OnDemand",
            })  # fmt: skip
    return total
