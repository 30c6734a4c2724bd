"""Billing file formats: detection from the header and each format's column names.

A spec maps the normalized (FOCUS) fields to the source columns of one export format. Only
``importer.py`` reads files; this module is plain data so the API and CLI can list formats.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Format(StrEnum):
    FOCUS = "focus"
    CUR_LEGACY = "aws-cur"
    CUR_ATHENA = "aws-cur-athena"  # legacy CUR under Athena's column names (line_item_...)
    CUR2 = "aws-cur2"
    GCP = "gcp"
    AZURE_EA = "azure-ea"
    AZURE_MCA = "azure-mca"
    AZURE_PAYG = "azure-payg"  # legacy usage export: UsageDateTime, PreTaxCost, InstanceId
    OCI = "oci"


@dataclass(frozen=True)
class FormatSpec:
    """Where each normalized field comes from; ``required`` must be in the header."""

    format: Format
    source_system: str
    provider: str
    columns: dict[str, str]  # normalized field -> source column
    required: tuple[str, ...]  # normalized fields whose source column must exist
    extra: dict[str, str] = field(default_factory=dict)  # helper inputs (effective cost parts)


def _aws(names: dict[str, str], fmt: Format, source_system: str | None = None) -> FormatSpec:
    cols = {
        "billing_account_id": names["payer"],
        "sub_account_id": names["usage_account"],
        "billing_period_start": names["bp_start"],
        "billing_period_end": names["bp_end"],
        "charge_period_start": names["start"],
        "charge_period_end": names["end"],
        "charge_category": names["type"],
        "charge_description": names["description"],
        "billed_cost": names["unblended"],
        "list_cost": names["public_cost"],
        "billing_currency": names["currency"],
        "pricing_quantity": names["amount"],
        "pricing_unit": names["unit"],
        "service_name": names["product_code"],
        "region_id": names["region"],
        "resource_id": names["resource_id"],
        "sku_id": names["sku"],
        "x_instance_type": names["instance_type"],
        "x_family": names["product_family"],
        "x_usage_type": names["usage_type"],
    }
    extra = {
        k: names[k]
        for k in (
            "sp_effective",
            "ri_effective",
            "ri_unused_upfront",
            "ri_unused_recurring",
            "sp_commitment",
            "sp_used",
        )
    }
    required = (
        "billing_period_start", "charge_period_start", "charge_period_end", "charge_category",
        "billed_cost", "billing_currency",
    )  # fmt: skip
    return FormatSpec(fmt, source_system or fmt.value, "AWS", cols, required, extra)


CUR_LEGACY = _aws(
    {
        "payer": "bill/PayerAccountId", "usage_account": "lineItem/UsageAccountId",
        "bp_start": "bill/BillingPeriodStartDate", "bp_end": "bill/BillingPeriodEndDate",
        "start": "lineItem/UsageStartDate", "end": "lineItem/UsageEndDate",
        "type": "lineItem/LineItemType", "description": "lineItem/LineItemDescription",
        "unblended": "lineItem/UnblendedCost", "public_cost": "pricing/publicOnDemandCost",
        "currency": "lineItem/CurrencyCode", "amount": "lineItem/UsageAmount",
        "unit": "pricing/unit", "product_code": "lineItem/ProductCode",
        "region": "product/regionCode", "resource_id": "lineItem/ResourceId",
        "sku": "product/sku", "instance_type": "product/instanceType",
        "product_family": "product/productFamily", "usage_type": "lineItem/UsageType",
        "sp_effective": "savingsPlan/SavingsPlanEffectiveCost",
        "ri_effective": "reservation/EffectiveCost",
        "ri_unused_upfront": "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
        "ri_unused_recurring": "reservation/UnusedRecurringFee",
        "sp_commitment": "savingsPlan/TotalCommitmentToDate",
        "sp_used": "savingsPlan/UsedCommitment",
    },
    Format.CUR_LEGACY,
)  # fmt: skip

# CUR 2.0 and the legacy CUR as Athena (or its Parquet delivery) names it share these names.
_SNAKE_NAMES = {
    "payer": "bill_payer_account_id", "usage_account": "line_item_usage_account_id",
    "bp_start": "bill_billing_period_start_date", "bp_end": "bill_billing_period_end_date",
    "start": "line_item_usage_start_date", "end": "line_item_usage_end_date",
    "type": "line_item_line_item_type", "description": "line_item_line_item_description",
    "unblended": "line_item_unblended_cost", "public_cost": "pricing_public_on_demand_cost",
    "currency": "line_item_currency_code", "amount": "line_item_usage_amount",
    "unit": "pricing_unit", "product_code": "line_item_product_code",
    "region": "product_region_code", "resource_id": "line_item_resource_id",
    "sku": "product_sku", "instance_type": "product_instance_type",
    "product_family": "product_product_family", "usage_type": "line_item_usage_type",
    "sp_effective": "savings_plan_savings_plan_effective_cost",
    "ri_effective": "reservation_effective_cost",
    "ri_unused_upfront": "reservation_unused_amortized_upfront_fee_for_billing_period",
    "ri_unused_recurring": "reservation_unused_recurring_fee",
    "sp_commitment": "savings_plan_total_commitment_to_date",
    "sp_used": "savings_plan_used_commitment",
}  # fmt: skip
CUR2 = _aws(_SNAKE_NAMES, Format.CUR2)
# Same data as the CSV legacy CUR, so the same source system: a re-export replaces either.
CUR_ATHENA = _aws(_SNAKE_NAMES, Format.CUR_ATHENA, CUR_LEGACY.source_system)

FOCUS = FormatSpec(
    Format.FOCUS,
    "focus",
    "",
    {
        name: name
        for name in (
            "BillingAccountId", "SubAccountId", "BillingPeriodStart", "BillingPeriodEnd",
            "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription",
            "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency",
            "PricingQuantity", "PricingUnit", "ProviderName", "ServiceName", "RegionId",
            "ResourceId", "SkuId", "SkuPriceDetails", "Tags", "ServiceCategory", "ResourceType",
            "ServiceProviderName", "x_ResourceKey", "x_InstanceType", "x_GpuModel", "x_GpuCount",
            "x_CostComponent",
            # provider columns that name the instance or the GPU: AWS "USE1-BoxUsage:g5.xlarge",
            # Azure's meter subcategory ("NCads A100 v4 Series") and SKU details (ServiceType)
            "x_UsageType", "x_SkuDetails", "x_SkuMeterCategory", "x_SkuMeterSubcategory",
            "x_SkuMeterName",
        )
    },
    ("BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost"),
)  # fmt: skip

GCP = FormatSpec(
    Format.GCP,
    "gcp",
    "Google Cloud",
    {
        "billing_account_id": "billing_account_id", "sub_account_id": "project.id",
        "invoice_month": "invoice.month", "charge_period_start": "usage_start_time",
        "charge_period_end": "usage_end_time", "charge_category": "cost_type",
        "charge_description": "sku.description", "billed_cost": "cost",
        "billing_currency": "currency", "pricing_quantity": "usage.amount_in_pricing_units",
        "pricing_unit": "usage.pricing_unit", "service_name": "service.description",
        "region_id": "location.region", "resource_id": "resource.global_name",
        "resource_name": "resource.name", "sku_id": "sku.id", "tags": "labels",
        "credits": "credits", "system_labels": "system_labels",
    },
    ("charge_period_start", "charge_period_end", "billed_cost", "billing_currency"),
)  # fmt: skip

_AZURE_COMMON = {
    "billing_account_id": "billingaccountid", "sub_account_id": "subscriptionid",
    "billing_period_start": "billingperiodstartdate", "billing_period_end": "billingperiodenddate",
    "date": "date", "charge_category": "chargetype", "pricing_quantity": "quantity",
    "pricing_unit": "unitofmeasure", "service_name": "metercategory",
    "meter_subcategory": "metersubcategory", "meter_name": "metername",
    "region_id": "resourcelocation", "resource_id": "resourceid", "sku_id": "meterid",
    "tags": "tags", "additional_info": "additionalinfo", "product": "productname",
    "product_alt": "product", "payg_price": "paygprice",
}  # fmt: skip
_AZURE_REQUIRED = ("date", "billed_cost", "billing_currency")

AZURE_EA = FormatSpec(
    Format.AZURE_EA,
    "azure-ea",
    "Microsoft",
    {**_AZURE_COMMON, "billed_cost": "cost|costinbillingcurrency",
     "billing_currency": "billingcurrency|billingcurrencycode"},
    _AZURE_REQUIRED,
)  # fmt: skip
AZURE_MCA = FormatSpec(
    Format.AZURE_MCA,
    "azure-mca",
    "Microsoft",
    {**_AZURE_COMMON, "billed_cost": "costinbillingcurrency|cost",
     "billing_currency": "billingcurrency|billingcurrencycode"},
    _AZURE_REQUIRED,
)  # fmt: skip

# The legacy usage export of pay-as-you-go subscriptions (and the EA portal's v2 file).
AZURE_PAYG = FormatSpec(
    Format.AZURE_PAYG,
    "azure-payg",
    "Microsoft",
    {"billing_account_id": "subscriptionguid", "sub_account_id": "subscriptionguid",
     "date": "usagedatetime", "billed_cost": "pretaxcost", "billing_currency": "currency",
     "pricing_quantity": "usagequantity", "pricing_unit": "unitofmeasure",
     "service_name": "metercategory", "meter_subcategory": "metersubcategory",
     "meter_name": "metername", "region_id": "resourcelocation", "resource_id": "instanceid",
     "sku_id": "meterid", "tags": "tags", "additional_info": "additionalinfo",
     "product": "productname|metername"},
    ("date", "billed_cost"),  # the EA portal's v2 file has no currency column
)  # fmt: skip

# Oracle Cloud cost reports (reports/cost-csv/*.csv.gz), one row per resource, SKU and hour.
OCI = FormatSpec(
    Format.OCI,
    "oci",
    "Oracle",
    {"billing_account_id": "cost/subscriptionId", "sub_account_id": "lineItem/tenantId",
     "charge_period_start": "lineItem/intervalUsageStart",
     "charge_period_end": "lineItem/intervalUsageEnd", "service_name": "product/service",
     "region_id": "product/region", "resource_id": "product/resourceId",
     "sku_id": "cost/productSku", "charge_description": "product/Description",
     "billed_cost": "cost/myCost", "billing_currency": "cost/currencyCode",
     "pricing_quantity": "usage/billedQuantity", "pricing_unit": "cost/billingUnitReadable",
     "is_correction": "lineItem/isCorrection"},
    ("charge_period_start", "charge_period_end", "billed_cost", "billing_currency"),
)  # fmt: skip

SPECS = {
    spec.format: spec
    for spec in (FOCUS, CUR_LEGACY, CUR_ATHENA, CUR2, GCP, AZURE_EA, AZURE_MCA, AZURE_PAYG, OCI)
}

# The Azure portal writes headers in the user's language with the name in parentheses:
# "Kategorie der Verbrauchseinheit (MeterCategory)", "Categoría del medidor (MeterCategory)".
_LOCALIZED = re.compile(r"\(([A-Za-z][A-Za-z0-9_]*)\)\s*$")
# CUR 2.0 keeps these as maps; the legacy CUR flattens them into one column per key.
_CUR2_MAPS = {"product", "resource_tags", "cost_category", "discount"}
# CUR 2.0's top-level product columns; the legacy CUR's Athena table has many more.
_CUR2_PRODUCT = {
    "product_comment", "product_fee_code", "product_fee_description", "product_from_location",
    "product_from_location_type", "product_from_region_code", "product_instance_family",
    "product_instance_type", "product_instancesku", "product_location", "product_location_type",
    "product_operation", "product_pricing_unit", "product_product_family", "product_region_code",
    "product_servicecode", "product_sku", "product_to_location", "product_to_location_type",
    "product_to_region_code", "product_usagetype",
}  # fmt: skip
_AZURE_PARTNER = {"partnername", "partnertenantid", "customertenantid", "resellermpnid"}


def english_name(column: str) -> str:
    """An Azure header's own name: "Kosten (Cost)" → "Cost"; any other name unchanged."""
    match = _LOCALIZED.search(column)
    return match.group(1) if match else column


def _aws_snake(names: set[str]) -> Format:
    """CUR 2.0, or the legacy CUR under Athena's names (flattened tags, product attributes)."""
    if names & _CUR2_MAPS:
        return Format.CUR2
    flattened = any(n.startswith(("resource_tags_", "cost_category_", "discount_")) for n in names)
    legacy_product = any(n.startswith("product_") and n not in _CUR2_PRODUCT for n in names)
    return Format.CUR_ATHENA if flattened or legacy_product else Format.CUR2


def _azure(lower: set[str]) -> Format | None:
    if "metercategory" not in lower:
        return None
    if "usagedatetime" in lower and "pretaxcost" in lower:
        return Format.AZURE_PAYG
    if "date" not in lower:
        return None
    if lower & _AZURE_PARTNER:  # partner (CSP) exports of a Microsoft Partner Agreement
        return Format.AZURE_MCA
    if "billingprofileid" in lower and "accountownerid" not in lower:
        return Format.AZURE_MCA
    return Format.AZURE_EA


def detect_format(header: Sequence[str]) -> Format | None:
    """The format whose signature columns the header carries, or None."""
    names = set(header)
    lower = {english_name(h).lower() for h in header}
    if {"BilledCost", "ChargePeriodStart"} <= names:
        return Format.FOCUS
    if "lineItem/UnblendedCost" in names or "lineItem/LineItemType" in names:
        return Format.CUR_LEGACY
    if "line_item_unblended_cost" in names or "line_item_line_item_type" in names:
        return _aws_snake(names)
    if "lineItem/intervalUsageStart" in names and "cost/myCost" in names:
        return Format.OCI
    if (
        "usage_start_time" in lower
        and "cost" in lower
        and ("sku.description" in lower or "sku.id" in lower or "service.description" in lower)
    ):
        return Format.GCP
    return _azure(lower)


def focus_version(header: Sequence[str]) -> str:
    """The lowest FOCUS version that has every column of the header (1.3 renamed the provider
    columns; 1.2 added invoice, account type and pricing-currency columns)."""
    names = set(header)
    if names & {"ServiceProviderName", "HostProviderName", "AllocatedMethodId"}:
        return "1.3"
    if names & {"InvoiceId", "PricingCurrency", "BillingAccountType", "SubAccountType",
                "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice"}:  # fmt: skip
        return "1.2"
    if names & {"CapacityReservationId", "CommitmentDiscountQuantity", "SkuPriceDetails",
                "ServiceSubcategory", "SkuMeter"}:  # fmt: skip
        return "1.1"
    return "1.0"
