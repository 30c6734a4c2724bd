"""Billing file formats: detection from the header and each format's column names.

A spec maps the normalized (FOCUS) fields to the source columns of one export format. Only
``importer.py`` reads files; this module is plain data so the API and CLI can list formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Format(StrEnum):
    FOCUS = "focus"
    CUR_LEGACY = "aws-cur"
    CUR2 = "aws-cur2"
    GCP = "gcp"
    AZURE_EA = "azure-ea"
    AZURE_MCA = "azure-mca"


@dataclass(frozen=True)
class FormatSpec:
    """Where each normalized field comes from; ``required`` must be in the header."""

    format: Format
    source_system: str
    provider: str
    columns: dict[str, str]  # normalized field -> source column
    required: tuple[str, ...]  # normalized fields whose source column must exist
    extra: dict[str, str] = field(default_factory=dict)  # helper inputs (effective cost parts)


def _aws(names: dict[str, str], fmt: Format) -> FormatSpec:
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
    return FormatSpec(fmt, fmt.value, "AWS", cols, required, extra)


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

CUR2 = _aws(
    {
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
    },
    Format.CUR2,
)  # fmt: skip

FOCUS = FormatSpec(
    Format.FOCUS,
    "focus",
    "",
    {
        name: name
        for name in (
            "BillingAccountId", "SubAccountId", "BillingPeriodStart", "BillingPeriodEnd",
            "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription",
            "BilledCost", "EffectiveCost", "ListCost", "BillingCurrency", "PricingQuantity",
            "PricingUnit", "ProviderName", "ServiceName", "RegionId", "ResourceId", "SkuId",
            "Tags", "ServiceCategory", "ResourceType", "ServiceProviderName",
            "x_ResourceKey", "x_InstanceType", "x_GpuModel", "x_GpuCount", "x_CostComponent",
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

SPECS = {spec.format: spec for spec in (FOCUS, CUR_LEGACY, CUR2, GCP, AZURE_EA, AZURE_MCA)}


def detect_format(header: Sequence[str]) -> Format | None:
    """The format whose signature columns the header carries, or None."""
    names = set(header)
    lower = {h.lower() for h in header}
    if {"BilledCost", "ChargePeriodStart"} <= names:
        return Format.FOCUS
    if "lineItem/UnblendedCost" in names or "lineItem/LineItemType" in names:
        return Format.CUR_LEGACY
    if "line_item_unblended_cost" in names or "line_item_line_item_type" in names:
        return Format.CUR2
    if (
        "usage_start_time" in lower
        and "cost" in lower
        and ("sku.description" in lower or "sku.id" in lower or "service.description" in lower)
    ):
        return Format.GCP
    if "metercategory" in lower and "date" in lower:
        if "billingprofileid" in lower and "accountownerid" not in lower:
            return Format.AZURE_MCA
        return Format.AZURE_EA
    return None


def focus_version(header: Sequence[str]) -> str:
    """Which FOCUS version the columns look like (1.3 renamed the provider columns)."""
    names = set(header)
    if "ServiceProviderName" in names or "HostProviderName" in names:
        return "1.3"
    if "InvoiceId" in names or "PricingCurrency" in names:
        return "1.2"
    if "CapacityReservationId" in names or "CommitmentDiscountQuantity" in names:
        return "1.1"
    return "1.0"
