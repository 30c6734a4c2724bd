"""Per-format shaping of one parsed chunk into ``LineItem`` rows (FOCUS names, ``x_`` columns)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from app.billing import normalize as n
from app.billing.formats import Format

if TYPE_CHECKING:
    from app.billing.importer import LineItem, _Batch

ZERO = Decimal(0)


def _same(value: str | None) -> str | None:
    return value


def _cached(fn: Callable[..., Any], *columns: Sequence[Any]) -> list[Any]:
    cache: dict[tuple[Any, ...], Any] = {}
    out = []
    for key in zip(*columns, strict=True):
        if key not in cache:
            cache[key] = fn(*key)
        out.append(cache[key])
    return out


def _rows(b: _Batch, c: dict[str, Sequence[Any]]) -> list[LineItem]:
    from app.billing.importer import LineItem

    size = b.n
    none: list[Any] = [None] * size
    instance = c.get("x_instance_type")
    gpu = _cached(n.instance_gpu, instance) if instance else [(None, None)] * size
    currency = c.get("billing_currency") or [b.reader.default_currency] * size
    return list(
        map(
            LineItem._make,
            zip(
                range(b.offset + 1, b.offset + size + 1),
                c.get("billing_account_id") or [""] * size,
                c.get("sub_account_id") or none,
                c["billing_period_start"],
                c.get("billing_period_end") or none,
                c["charge_period_start"],
                c["charge_period_end"],
                c["charge_category"],
                c.get("charge_description") or none,
                c["billed_cost"],
                c["effective_cost"],
                c.get("list_cost") or none,
                currency,
                c.get("pricing_quantity") or none,
                c.get("pricing_unit") or none,
                c.get("provider_name") or none,
                c.get("service_name") or none,
                c.get("region_id") or none,
                c.get("resource_id") or none,
                c.get("sku_id") or none,
                c.get("tags") or none,
                c.get("x_resource_key") or none,
                c.get("x_instance_type") or none,
                c.get("x_gpu_model") or [g[0] for g in gpu],
                c.get("x_gpu_count") or [g[1] for g in gpu],
                c["x_cost_component"],
                strict=True,
            ),
        )
    )


def _common(b: _Batch, names: Sequence[str]) -> dict[str, Sequence[Any]]:
    return {name: b.mapped(name, _same) for name in names}


_AWS_SPECIAL = {
    "SavingsPlanCoveredUsage", "DiscountedUsage", "SavingsPlanNegation", "SavingsPlanUpfrontFee",
    "RIFee", "SavingsPlanRecurringFee",
}  # fmt: skip


def _aws_effective(b: _Batch, types: list[str | None], billed: list[Decimal | None]) -> list[Any]:
    """Amortized cost as AWS defines it per line item type (what FOCUS calls EffectiveCost)."""
    effective: list[Any] = list(billed)
    special = [i for i, t in enumerate(types) if t in _AWS_SPECIAL]
    if not special:
        return effective
    extra = {k: b.money(k, required=False) for k in b.reader.spec.extra}

    def part(name: str, i: int) -> Decimal:
        return extra[name][i] or ZERO

    for i in special:
        kind = types[i]
        if kind == "SavingsPlanCoveredUsage" and "sp_effective" in b.reader.columns:
            effective[i] = part("sp_effective", i)
        elif kind == "DiscountedUsage" and "ri_effective" in b.reader.columns:
            effective[i] = part("ri_effective", i)
        elif kind in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
            effective[i] = ZERO
        elif kind == "RIFee" and "ri_unused_upfront" in b.reader.columns:
            effective[i] = part("ri_unused_upfront", i) + part("ri_unused_recurring", i)
        elif kind == "SavingsPlanRecurringFee" and "sp_commitment" in b.reader.columns:
            effective[i] = part("sp_commitment", i) - part("sp_used", i)
    return effective


def _aws_tags(b: _Batch) -> list[str | None] | None:
    header = b.reader.header
    if "resource_tags" in header:
        arr = b.batch.column("resource_tags") if "resource_tags" in b.batch.schema.names else None
        if arr is not None:
            return [n.tags_json(v) for v in arr.to_pylist()]
    columns = [c for c in b.reader.tag_columns if c != "resource_tags"]
    if not columns:
        return None
    values = [b.batch.column(c).to_pylist() for c in columns]
    keys = [c.removeprefix("resourceTags/") for c in columns]
    out: list[str | None] = []
    for row in zip(*values, strict=True):
        tags = {k: v for k, v in zip(keys, row, strict=True) if v}
        out.append(json.dumps(tags, separators=(",", ":"), sort_keys=True) if tags else None)
    return out


def shape_aws(b: _Batch) -> list[LineItem]:
    c: dict[str, Sequence[Any]] = _common(
        b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
            "service_name", "region_id", "sku_id", "x_instance_type", "charge_description"],
    )  # fmt: skip
    types = b.mapped("charge_category", _same)
    billed = b.money("billed_cost", required=True)
    resource = b.text("resource_id")
    family = b.mapped("x_family", _same)
    usage = b.mapped("x_usage_type", _same)
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
        provider_name=["AWS"] * b.n,
        resource_id=resource,
        x_resource_key=_cached(n.resource_key, resource),
        x_cost_component=_cached(n.aws_component, family, usage, c["x_instance_type"]),
    )
    tags = _aws_tags(b)
    if tags is not None:
        c["tags"] = tags
    return _rows(b, c)


def shape_focus(b: _Batch) -> list[LineItem]:
    c: dict[str, Sequence[Any]] = _common(
        b, ["BillingAccountId", "SubAccountId", "PricingUnit", "ServiceName", "RegionId",
            "SkuId", "x_InstanceType", "ChargeDescription", "x_GpuModel"],
    )  # fmt: skip
    resource = b.text("ResourceId")
    provider = b.mapped("ProviderName", _same)
    if "ServiceProviderName" in b.reader.columns:  # FOCUS 1.3 renamed it
        provider = b.mapped("ServiceProviderName", _same)
    keys = b.text("x_ResourceKey") if "x_ResourceKey" in b.reader.columns else None
    component = (
        b.mapped("x_CostComponent", lambda v: v or "other")
        if "x_CostComponent" in b.reader.columns
        else _cached(n.focus_component, b.mapped("ServiceCategory", _same),
                     b.mapped("ResourceType", _same))
    )  # fmt: skip
    currency = b.mapped("BillingCurrency", _same) if "BillingCurrency" in b.reader.columns else None
    instance = c["x_InstanceType"]
    gpu = _cached(n.instance_gpu, instance)
    count = b.mapped("x_GpuCount", lambda v: int(v) if v and v.isdigit() else None)
    out: dict[str, Sequence[Any]] = {
        "billing_account_id": [v or "" for v in c["BillingAccountId"]],
        "sub_account_id": c["SubAccountId"],
        "billing_period_start": b.times("BillingPeriodStart", required=True),
        "billing_period_end": b.times("BillingPeriodEnd", required=False),
        "charge_period_start": b.times("ChargePeriodStart", required=True),
        "charge_period_end": b.times("ChargePeriodEnd", required=True),
        "charge_category": b.mapped("ChargeCategory", n.focus_category),
        "charge_description": c["ChargeDescription"],
        "billed_cost": b.money("BilledCost", required=True),
        "effective_cost": b.money("EffectiveCost", required=True),
        "list_cost": b.money("ListCost", required=False),
        "pricing_quantity": b.money("PricingQuantity", required=False),
        "pricing_unit": c["PricingUnit"],
        "provider_name": provider,
        "service_name": c["ServiceName"],
        "region_id": c["RegionId"],
        "resource_id": resource,
        "sku_id": c["SkuId"],
        "tags": b.mapped("Tags", n.tags_json),
        "x_resource_key": keys if keys is not None else _cached(n.resource_key, resource),
        "x_instance_type": instance,
        "x_gpu_model": [m or g[0] for m, g in zip(c["x_GpuModel"], gpu, strict=True)],
        "x_gpu_count": [k if k is not None else g[1] for k, g in zip(count, gpu, strict=True)],
        "x_cost_component": component,
    }
    if currency is not None:
        out["billing_currency"] = [v or b.reader.default_currency for v in currency]
    return _rows(b, out)


def _month_start(value: str | None) -> datetime | None:
    from datetime import UTC

    if not value or len(value) != 6 or not value.isdigit():
        return None
    return datetime(int(value[:4]), int(value[4:]), 1, tzinfo=UTC)


def _next_month(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return (value.replace(day=28) + timedelta(days=4)).replace(day=1)


def shape_gcp(b: _Batch) -> list[LineItem]:
    c: dict[str, Sequence[Any]] = _common(
        b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
            "service_name", "region_id", "sku_id", "charge_description"],
    )  # fmt: skip
    starts = b.times("charge_period_start", required=True)
    month = b.mapped("invoice_month", _month_start)
    period = [m or (s.replace(day=1, hour=0, minute=0, second=0, microsecond=0) if s else None)
              for m, s in zip(month, starts, strict=True)]  # fmt: skip
    billed = b.money("billed_cost", required=True)
    credits = b.mapped("credits", _safe_credits)
    for i, value in enumerate(credits):
        if value is None:
            b.error(i, "credits", "credits is not a JSON list of amounts")
    effective = [x + (cr or ZERO) if x is not None else None
                 for x, cr in zip(billed, credits, strict=True)]  # fmt: skip
    resource = b.text("resource_id")
    names = b.text("resource_name")
    instance = b.mapped("system_labels", n.gcp_machine_type)
    sku_gpu = b.mapped("charge_description", n.gpu_model_from_text)
    gpu = _cached(n.instance_gpu, instance)
    c.update(
        billing_period_start=period,
        billing_period_end=[_next_month(p) for p in period],
        charge_period_start=starts,
        charge_period_end=b.times("charge_period_end", required=True),
        charge_category=b.mapped("charge_category", n.gcp_category),
        billed_cost=billed,
        effective_cost=effective,
        pricing_quantity=b.money("pricing_quantity", required=False),
        provider_name=["Google Cloud"] * b.n,
        resource_id=resource,
        tags=b.mapped("tags", n.tags_json),
        x_resource_key=[
            n.resource_key(r) or (m.lower() if m else None)
            for r, m in zip(resource, names, strict=True)
        ],
        x_instance_type=instance,
        x_gpu_model=[s or g[0] for s, g in zip(sku_gpu, gpu, strict=True)],
        x_gpu_count=[g[1] for g in gpu],
        x_cost_component=_cached(n.gcp_component, c["service_name"], c["charge_description"]),
    )
    return _rows(b, c)


def _safe_credits(text: str | None) -> Decimal | None:
    try:
        return n.credits_total(text)
    except (InvalidOperation, AttributeError, TypeError):
        return None


def shape_azure(b: _Batch) -> list[LineItem]:
    c: dict[str, Sequence[Any]] = _common(
        b, ["billing_account_id", "sub_account_id", "billing_currency", "pricing_unit",
            "service_name", "region_id", "sku_id"],
    )  # fmt: skip
    days = b.times("date", required=True)
    period_end = b.times("billing_period_end", required=False)
    billed = b.money("billed_cost", required=True)
    resource = b.text("resource_id")
    instance = b.mapped("additional_info", lambda t: n.json_field(t, "ServiceType"))
    product = b.mapped("product", _same) if "product" in b.reader.columns else b.mapped(
        "product_alt", _same)  # fmt: skip
    c.update(
        billing_account_id=[v or "" for v in c["billing_account_id"]],
        billing_period_start=[
            p or (d.replace(day=1) if d else None)
            for p, d in zip(b.times("billing_period_start", required=False), days, strict=True)
        ],
        billing_period_end=[day_after(v) for v in period_end],  # Azure's end date is inclusive
        charge_period_start=days,
        charge_period_end=[day_after(d) for d in days],
        charge_category=b.mapped("charge_category", n.azure_category),
        charge_description=product,
        billed_cost=billed,
        effective_cost=billed,
        pricing_quantity=b.money("pricing_quantity", required=False),
        provider_name=["Microsoft"] * b.n,
        resource_id=resource,
        tags=b.mapped("tags", n.tags_json),
        x_resource_key=_cached(lambda r: r.lower() if r else None, resource),
        x_instance_type=instance,
        x_cost_component=b.mapped("service_name", n.azure_component),
    )
    return _rows(b, c)


def day_after(value: datetime | None) -> datetime | None:
    return None if value is None else value + timedelta(days=1)


SHAPERS: dict[Format, Callable[[_Batch], list[LineItem]]] = {
    Format.FOCUS: shape_focus,
    Format.CUR_LEGACY: shape_aws,
    Format.CUR2: shape_aws,
    Format.GCP: shape_gcp,
    Format.AZURE_EA: shape_azure,
    Format.AZURE_MCA: shape_azure,
}
