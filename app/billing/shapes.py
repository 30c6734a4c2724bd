"""Per-format shaping of one parsed chunk into normalized columns (FOCUS names, ``x_`` columns).

Part of the importer: whole columns go through ``pyarrow.compute``; the plain-Python rules of
``normalize.py`` run once per distinct value (``map_values``), never once per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from app.billing import normalize as n
from app.billing.formats import Format
from app.billing.rows import MONEY, TIME, map_values, money_sum
from app.billing.scalesets import azure_instance_key, vm_names

if TYPE_CHECKING:
    from app.billing.columns import _Batch
    from app.billing.rows import LineItems

STR = pa.string()
MICROS_PER_HOUR = 3_600_000_000
ZERO = pa.scalar(Decimal(0), MONEY)
ONE_DAY = pa.scalar(timedelta(days=1))
Columns = dict[str, pa.Array]

_AWS_SPECIAL = {
    "SavingsPlanCoveredUsage", "DiscountedUsage", "SavingsPlanNegation", "SavingsPlanUpfrontFee",
    "RIFee", "SavingsPlanRecurringFee",
}  # fmt: skip


def _texts(b: _Batch, names: list[str]) -> Columns:
    return {name: b.text(name) for name in names}


def _aws_effective(b: _Batch, types: pa.Array, billed: pa.Array) -> pa.Array:
    """Amortized cost as AWS defines it per line item type (what FOCUS calls EffectiveCost)."""
    special = pc.is_in(types, value_set=pa.array(sorted(_AWS_SPECIAL)))
    if not pc.any(special).as_py():
        return billed
    extra = {k: pc.fill_null(b.money(k, required=False), ZERO) for k in b.reader.spec.extra}
    zero = pc.fill_null(pa.nulls(b.n, MONEY), ZERO)
    rules: list[tuple[str, pa.Array]] = [("SavingsPlanNegation", zero),
                                         ("SavingsPlanUpfrontFee", zero)]  # fmt: skip
    if b.has("sp_effective"):
        rules.append(("SavingsPlanCoveredUsage", extra["sp_effective"]))
    if b.has("ri_effective"):
        rules.append(("DiscountedUsage", extra["ri_effective"]))
    if b.has("ri_unused_upfront"):
        rules.append(("RIFee", money_sum(extra["ri_unused_upfront"], extra["ri_unused_recurring"])))
    if b.has("sp_commitment"):
        rules.append(("SavingsPlanRecurringFee",
                      money_sum(extra["sp_commitment"], extra["sp_used"], negate_b=True)))  # fmt: skip
    effective = billed
    for kind, value in rules:
        effective = pc.if_else(pc.fill_null(pc.equal(types, kind), False), value, effective)
    return effective


def _aws_tag_key(key: str) -> str:
    """A user tag under the name the team rules read: "user:team", "user_team" → "team"."""
    return key.removeprefix("user:").removeprefix("user_")


def _aws_tags_json(text: str | None) -> str | None:
    tags = n.tags_json(text)
    if tags is None:
        return None
    value = json.loads(tags)
    if not isinstance(value, dict):
        return tags
    renamed = {_aws_tag_key(str(k)): v for k, v in value.items()}
    return json.dumps(renamed, separators=(",", ":"), sort_keys=True)


def _aws_tags(b: _Batch) -> pa.Array | None:
    if "resource_tags" in b.reader.header and "resource_tags" in b.batch.schema.names:
        return map_values(_aws_tags_json, STR, b.source("resource_tags"))
    columns = [c for c in b.reader.tag_columns if c != "resource_tags"]
    if not columns:
        return None
    keys = [_aws_tag_key(c.removeprefix("resourceTags/").removeprefix("resource_tags_"))
            for c in columns]  # fmt: skip

    def as_json(*values: str | None) -> str | None:
        tags = {k: v for k, v in zip(keys, values, strict=True) if v}
        return json.dumps(tags, separators=(",", ":"), sort_keys=True) if tags else None

    return map_values(as_json, STR, *(b.source(c) for c in columns))


def shape_aws(b: _Batch) -> LineItems:
    c = _texts(b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
                   "service_name", "region_id", "sku_id", "x_instance_type",
                   "charge_description"])  # fmt: skip
    # Some rows leave product/instanceType empty but name it in the usage type: "BoxUsage:g5.xlarge"
    if c["x_instance_type"].null_count:
        c["x_instance_type"] = pc.coalesce(
            c["x_instance_type"], b.mapped("x_usage_type", n.aws_instance_type)
        )
    types = b.text("charge_category")
    billed = b.money("billed_cost", required=True)
    resource = b.text("resource_id")
    c.update(
        billing_period_start=b.times("billing_period_start", required=True),
        billing_period_end=b.times("billing_period_end", required=False),
        charge_period_start=b.times("charge_period_start", required=True),
        charge_period_end=b.times("charge_period_end", required=True),
        charge_category=b.mapped("charge_category", n.aws_category),
        billed_cost=billed,
        effective_cost=_aws_effective(b, types, billed),
        list_cost=b.money("list_cost", required=False),
        pricing_quantity=b.money("pricing_quantity", required=False),
        provider_name=b.const("AWS"),
        resource_id=resource,
        x_resource_key=map_values(n.resource_key, STR, resource),
        x_cost_component=map_values(
            n.aws_component, STR, b.text("x_family"), b.text("x_usage_type"), c["x_instance_type"]
        ),
    )
    tags = _aws_tags(b)
    if tags is not None:
        c["tags"] = tags
    return b.finish(c)


def _gpu_of(instance: pa.Array) -> tuple[pa.Array, pa.Array]:
    model = map_values(lambda t: n.instance_gpu(t)[0], STR, instance)
    return model, map_values(lambda t: n.instance_gpu(t)[1], pa.int32(), instance)


def _gpus_billed(
    model: pa.Array, quantity: pa.Array, unit: pa.Array, start: pa.Array, end: pa.Array
) -> pa.Array:
    """GPUs of a row billed per GPU-hour (a GCP or OCI GPU SKU): its quantity (GPU-hours) over
    the hours the row covers. Only where ``model`` is set and the unit is hours; null below one.
    """
    micros = pc.cast(pc.subtract(end, start), pa.int64())
    hours = pc.if_else(pc.greater(micros, 0), pc.divide(micros, MICROS_PER_HOUR), None)
    gpus = pc.round(pc.divide(pc.cast(quantity, pa.float64()), hours))
    hourly = pc.match_substring(pc.utf8_lower(unit), "hour")
    keep = pc.fill_null(pc.and_(pc.and_(hourly, pc.greater_equal(gpus, 1)), pc.is_valid(model)),
                        False)  # fmt: skip
    return pc.cast(pc.if_else(keep, gpus, None), pa.int32())


def _focus_instance(b: _Batch, given: pa.Array, description: pa.Array) -> pa.Array:
    """GPU Ledger's x_InstanceType, else SkuPriceDetails ("InstanceType": "g5.xlarge"), Azure's
    x_SkuDetails ServiceType, AWS's x_UsageType ("USE1-BoxUsage:g5.xlarge") or the charge
    description ("$1.006 per On Demand Linux g5.xlarge Instance Hour")."""
    if not given.null_count:
        return given
    return pc.coalesce(
        given,
        b.mapped("SkuPriceDetails", n.sku_instance_type),
        b.mapped("x_SkuDetails", n.sku_instance_type),
        b.mapped("x_UsageType", n.aws_instance_type),
        map_values(n.aws_instance_type, STR, description),
    )


def shape_focus(b: _Batch) -> LineItems:
    c = _texts(b, ["BillingAccountId", "SubAccountId", "PricingUnit", "ServiceName", "RegionId",
                   "SkuId", "x_InstanceType", "ChargeDescription", "x_GpuModel"])  # fmt: skip
    resource = b.text("ResourceId")
    # FOCUS 1.3 renamed ProviderName to ServiceProviderName
    provider = b.text("ServiceProviderName" if b.has("ServiceProviderName") else "ProviderName")
    component = (
        b.mapped("x_CostComponent", lambda v: v or "other")
        if b.has("x_CostComponent")
        else map_values(n.focus_component, STR, b.text("ServiceCategory"), b.text("ResourceType"))
    )
    # in column order, so that a bad file's errors come in that order
    period = (b.times("BillingPeriodStart", required=True),
              b.times("BillingPeriodEnd", required=False))  # fmt: skip
    starts = b.times("ChargePeriodStart", required=True)
    ends = b.times("ChargePeriodEnd", required=True)
    costs = [b.money(name, required=name in ("BilledCost", "EffectiveCost"))
             for name in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")]  # fmt: skip
    quantity = b.money("PricingQuantity", required=False)
    instance = _focus_instance(b, c["x_InstanceType"], c["ChargeDescription"])
    gpu_model, gpu_count = _gpu_of(instance)
    count = b.mapped("x_GpuCount", lambda v: int(v) if v and v.isdigit() else None, pa.int32())
    # The GPU a SKU names: Azure's meter subcategory, else a GCP or OCI GPU SKU's description
    # (billed per GPU-hour, so its quantity over the row's hours counts the GPUs).
    named = map_values(n.gpu_model_from_text, STR, c["ChargeDescription"])
    azure = map_values(n.azure_gpu_model, STR, b.text("x_SkuMeterCategory"),
                       b.text("x_SkuMeterSubcategory"), b.text("x_SkuMeterName"))  # fmt: skip
    out: Columns = {
        "billing_account_id": c["BillingAccountId"],
        "sub_account_id": c["SubAccountId"],
        "billing_period_start": period[0],
        "billing_period_end": period[1],
        "charge_period_start": starts,
        "charge_period_end": ends,
        "charge_category": b.mapped("ChargeCategory", n.focus_category),
        "charge_description": c["ChargeDescription"],
        "billed_cost": costs[0],
        "effective_cost": costs[1],
        "list_cost": costs[2],
        "contracted_cost": costs[3],
        "pricing_quantity": quantity,
        "pricing_unit": c["PricingUnit"],
        "provider_name": provider,
        "service_name": c["ServiceName"],
        "region_id": c["RegionId"],
        "resource_id": resource,
        "sku_id": c["SkuId"],
        "tags": b.mapped("Tags", n.tags_json),
        "x_resource_key": (
            b.text("x_ResourceKey")
            if b.has("x_ResourceKey")
            else map_values(n.resource_key, STR, resource)
        ),
        "x_instance_type": instance,
        "x_gpu_model": pc.coalesce(c["x_GpuModel"], gpu_model, azure, named),
        "x_gpu_count": pc.coalesce(
            count, gpu_count, _gpus_billed(named, quantity, c["PricingUnit"], starts, ends)
        ),
        "x_cost_component": component,
    }
    if b.has("BillingCurrency"):
        out["billing_currency"] = b.text("BillingCurrency")
    return b.finish(out)


def _month_start(value: str | None) -> datetime | None:
    if not value or len(value) != 6 or not value.isdigit():
        return None
    return datetime(int(value[:4]), int(value[4:]), 1, tzinfo=UTC)


def _next_month(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return (value.replace(day=28) + timedelta(days=4)).replace(day=1)


def _safe_credits(text: str | None) -> Decimal | None:
    try:
        return n.credits_total(text).quantize(Decimal(10) ** -18)
    except (InvalidOperation, AttributeError, TypeError):
        return None


def shape_gcp(b: _Batch) -> LineItems:
    c = _texts(b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
                   "service_name", "region_id", "sku_id", "charge_description"])  # fmt: skip
    starts = b.times("charge_period_start", required=True)
    period = pc.coalesce(b.mapped("invoice_month", _month_start, TIME),
                         pc.floor_temporal(starts, unit="month"))  # fmt: skip
    billed = b.money("billed_cost", required=True)
    credits = b.mapped("credits", _safe_credits, MONEY)
    if credits.null_count:
        for i in pc.indices_nonzero(pc.is_null(credits)).to_pylist():
            b.error(i, "credits", "credits is not a JSON list of amounts")
    resource = b.text("resource_id")
    instance = b.mapped("system_labels", n.gcp_machine_type)
    gpu_model, gpu_count = _gpu_of(instance)
    ends = b.times("charge_period_end", required=True)
    quantity = b.money("pricing_quantity", required=False)
    # A GPU SKU ("Nvidia Tesla A100 80GB GPU running in Americas") is billed per GPU-hour
    named = b.mapped("charge_description", n.gpu_model_from_text)
    c.update(
        billing_period_start=period,
        billing_period_end=map_values(_next_month, TIME, period),
        charge_period_start=starts,
        charge_period_end=ends,
        charge_category=b.mapped("charge_category", n.gcp_category),
        billed_cost=billed,
        effective_cost=money_sum(billed, pc.fill_null(credits, ZERO)),
        pricing_quantity=quantity,
        provider_name=b.const("Google Cloud"),
        resource_id=resource,
        tags=b.mapped("tags", n.tags_json),
        x_resource_key=pc.coalesce(
            map_values(n.resource_key, STR, resource), pc.utf8_lower(b.text("resource_name"))
        ),
        x_instance_type=instance,
        x_gpu_model=pc.coalesce(named, gpu_model),
        x_gpu_count=pc.coalesce(
            gpu_count, _gpus_billed(named, quantity, c["pricing_unit"], starts, ends)
        ),
        x_cost_component=map_values(
            n.gcp_component, STR, c["service_name"], c["charge_description"]
        ),
    )
    return b.finish(c)


def _service_type(text: str | None) -> str | None:
    value = n.json_field(text, "ServiceType")
    return None if value is None else str(value)


def _priced_meter_instance(category: str | None, meter: str | None) -> str | None:
    size = n.azure_meter_instance(category, meter)
    return size if n.instance_gpu(size)[0] else None


def _azure_instance(b: _Batch, category: pa.Array) -> pa.Array:
    """AdditionalInfo's ServiceType, else the VM size the meter names ("NC24ads A100 v4") when
    the price book knows it (a meter name is not always a size: "ND96asr A100 v4")."""
    return pc.coalesce(
        b.mapped("additional_info", _service_type),
        map_values(_priced_meter_instance, STR, category, b.text("meter_name")),
    )


def _payg_list_cost(b: _Batch, quantity: pa.Array) -> pa.Array:
    """ListCost = PayGPrice * Quantity (the retail price), where the export has PayGPrice."""
    price = pc.cast(b.money("payg_price", required=False), pa.decimal256(38, MONEY.scale))
    # 38 + 37 + 1 digits: the widest product decimal256 holds (quantities stay below 1e19)
    product = pc.multiply(price, pc.cast(quantity, pa.decimal256(37, MONEY.scale)))
    return pc.cast(pc.round(product, MONEY.scale), MONEY)


def shape_azure(b: _Batch) -> LineItems:
    c = _texts(b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
                   "service_name", "region_id", "sku_id"])  # fmt: skip
    days = b.times("date", required=True)
    billed = b.money("billed_cost", required=True)
    resource = b.text("resource_id")
    first_day = map_values(lambda d: d.replace(day=1) if d else None, TIME, days)
    c.update(
        billing_period_start=pc.coalesce(
            b.times("billing_period_start", required=False), first_day
        ),
        # Azure's end date is inclusive
        billing_period_end=pc.add(b.times("billing_period_end", required=False), ONE_DAY),
        charge_period_start=days,
        charge_period_end=pc.add(days, ONE_DAY),
        charge_category=b.mapped("charge_category", n.azure_category),
        charge_description=b.text("product" if b.has("product") else "product_alt"),
        billed_cost=billed,
        effective_cost=billed,
        pricing_quantity=b.money("pricing_quantity", required=False),
        provider_name=b.const("Microsoft"),
        resource_id=resource,
        tags=b.mapped("tags", n.azure_tags_json),
        x_resource_key=map_values(
            azure_instance_key, STR, resource, vm_names(b.text("additional_info"))
        ),
        x_cost_component=b.mapped("service_name", n.azure_component),
    )
    c["list_cost"] = _payg_list_cost(b, c["pricing_quantity"])
    c["x_instance_type"] = _azure_instance(b, c["service_name"])
    gpu_model, c["x_gpu_count"] = _gpu_of(c["x_instance_type"])
    series = map_values(n.azure_gpu_model, STR, c["service_name"], b.text("meter_subcategory"),
                        b.text("meter_name"))  # fmt: skip
    c["x_gpu_model"] = pc.coalesce(gpu_model, series)
    return b.finish(c)


def _oci_tags(b: _Batch) -> pa.Array | None:
    """The ``tags/<key>`` columns as one JSON object ("tags/Oracle-Tags.CreatedBy" → key
    "Oracle-Tags.CreatedBy", a free-form "tags/team" → "team")."""
    columns = [name for name in b.reader.tag_columns if name.startswith("tags/")]
    if not columns:
        return None
    keys = [name.removeprefix("tags/") for name in columns]

    def as_json(*values: str | None) -> str | None:
        tags = {k: v for k, v in zip(keys, values, strict=True) if v}
        return json.dumps(tags, separators=(",", ":"), sort_keys=True) if tags else None

    return map_values(as_json, STR, *(b.source(name) for name in columns))


def shape_oci(b: _Batch) -> LineItems:
    c = _texts(b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
                   "service_name", "region_id", "sku_id", "charge_description"])  # fmt: skip
    starts = b.times("charge_period_start", required=True)
    ends = b.times("charge_period_end", required=True)
    billed = b.money("billed_cost", required=True)
    quantity = b.money("pricing_quantity", required=False)
    resource = b.text("resource_id")
    period = pc.floor_temporal(starts, unit="month")
    # OCI prices GPU shapes per GPU-hour under a SKU that names the GPU ("Compute - GPU - A10")
    named = map_values(n.gpu_model_from_text, STR, c["charge_description"])
    c.update(
        billing_period_start=period,
        billing_period_end=map_values(_next_month, TIME, period),
        charge_period_start=starts,
        charge_period_end=ends,
        charge_category=b.mapped("is_correction", n.oci_category),
        billed_cost=billed,
        effective_cost=billed,
        contracted_cost=billed,  # cost/myCost is at the tenancy's contracted unit price
        pricing_quantity=quantity,
        provider_name=b.const("Oracle"),
        resource_id=resource,
        x_resource_key=map_values(n.resource_key, STR, resource),
        x_gpu_model=named,
        x_gpu_count=_gpus_billed(named, quantity, c["pricing_unit"], starts, ends),
        x_cost_component=map_values(
            n.oci_component, STR, c["service_name"], c["charge_description"]
        ),
    )
    tags = _oci_tags(b)
    if tags is not None:
        c["tags"] = tags
    return b.finish(c)


SHAPERS: dict[Format, Callable[[_Batch], LineItems]] = {
    Format.FOCUS: shape_focus,
    Format.CUR_LEGACY: shape_aws,
    Format.CUR_ATHENA: shape_aws,
    Format.CUR2: shape_aws,
    Format.GCP: shape_gcp,
    Format.AZURE_EA: shape_azure,
    Format.AZURE_MCA: shape_azure,
    Format.AZURE_PAYG: shape_azure,
    Format.OCI: shape_oci,
}
