"""Per-value rules that turn a format's native values into FOCUS values and ``x_`` columns.

Each function maps one distinct source value; the importer applies them to the distinct values
of a chunk only, so they may be plain Python.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.billing.catalog import gpu_spec

AWS_CATEGORY = {
    "Usage": "Usage", "DiscountedUsage": "Usage", "SavingsPlanCoveredUsage": "Usage",
    "Tax": "Tax", "Credit": "Credit", "Refund": "Credit", "Fee": "Purchase",
    "RIFee": "Purchase", "SavingsPlanRecurringFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase", "SavingsPlanNegation": "Adjustment",
    "BundledDiscount": "Adjustment", "Discount": "Adjustment", "EdpDiscount": "Adjustment",
    "PrivateRateDiscount": "Adjustment",
}  # fmt: skip
GCP_CATEGORY = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment",
                "rounding_error": "Adjustment"}  # fmt: skip
AZURE_CATEGORY = {"usage": "Usage", "purchase": "Purchase", "refund": "Credit", "tax": "Tax",
                  "unusedreservation": "Usage", "unusedsavingsplan": "Usage",
                  "roundingadjustment": "Adjustment"}  # fmt: skip
FOCUS_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}

_EC2_ARN = re.compile(r"^arn:aws:ec2:[^:]*:[^:]*:instance/(i-[0-9a-f]+)$")
_GCE_INSTANCE = re.compile(r"/instances/([^/]+)$")
_GPU_WORDS = re.compile(
    r"\b(?:nvidia\s+)?(?:tesla\s+)?([A-Z]?\d{2,3}[A-Z]*|L4|T4|H100|H200|B200)\b"
)


def aws_category(value: str | None) -> str:
    return AWS_CATEGORY.get(value or "", "Usage")


def gcp_category(value: str | None) -> str:
    return GCP_CATEGORY.get((value or "").lower(), "Usage")


def azure_category(value: str | None) -> str:
    return AZURE_CATEGORY.get((value or "").lower(), "Usage")


def focus_category(value: str | None) -> str:
    return value if value in FOCUS_CATEGORIES else "Usage"


def resource_key(resource_id: str | None) -> str | None:
    """The node join key of a resource id: EC2 instance id, GCE instance, lower-cased Azure id."""
    if not resource_id:
        return None
    match = _EC2_ARN.match(resource_id)
    if match:
        return match.group(1)
    match = _GCE_INSTANCE.search(resource_id)
    if match and "compute.googleapis.com" in resource_id:
        return match.group(1).lower()
    if resource_id.startswith("/subscriptions/"):
        return resource_id.lower()
    return resource_id


def aws_component(family: str | None, usage_type: str | None, instance_type: str | None) -> str:
    usage = usage_type or ""
    if "BoxUsage" in usage or "SpotUsage" in usage or "DedicatedUsage" in usage:
        return "instance"
    if family == "Compute Instance" or (instance_type and family in (None, "")):
        return "instance"
    if family in ("Storage", "Storage Snapshot") or "EBS:" in usage or "TimedStorage" in usage:
        return "storage"
    if family == "Data Transfer" or "DataTransfer" in usage or "-Bytes" in usage:
        return "network"
    return "other"


def gcp_component(service: str | None, sku: str | None) -> str:
    text = (sku or "").lower()
    if "gpu" in text:
        return "gpu"
    if (service or "") != "Compute Engine":
        return "network" if "egress" in text or "network" in text else "other"
    if "core" in text or "cpu" in text:
        return "cpu"
    if "ram" in text or "memory" in text:
        return "memory"
    if "pd " in text or "storage" in text or "disk" in text or "snapshot" in text:
        return "storage"
    if "egress" in text or "network" in text or "ip " in text:
        return "network"
    return "other"


def azure_component(meter_category: str | None) -> str:
    category = (meter_category or "").lower()
    if category == "virtual machines":
        return "instance"
    if category == "storage":
        return "storage"
    if category in ("bandwidth", "virtual network", "networking", "load balancer"):
        return "network"
    return "other"


def focus_component(service_category: str | None, resource_type: str | None) -> str:
    category = (service_category or "").lower()
    if category == "compute":
        kind = (resource_type or "").lower()
        return (
            "instance" if not kind or "virtual machine" in kind or "instance" in kind else "other"
        )
    if category == "storage":
        return "storage"
    if category == "networking":
        return "network"
    return "other"


def gpu_model_from_text(text: str | None) -> str | None:
    """The GPU model named in a SKU description ("Nvidia Tesla A100 GPU running in Americas")."""
    if not text or "gpu" not in text.lower():
        return None
    match = _GPU_WORDS.search(text.replace("Nvidia", "NVIDIA"))
    return match.group(1).upper() if match else None


def instance_gpu(instance_type: str | None) -> tuple[str | None, int | None]:
    """GPU model and count of an instance type, from the shipped price book."""
    spec = gpu_spec(instance_type)
    return (spec.gpu_model, spec.gpu_count) if spec else (None, None)


def json_field(text: str | None, key: str) -> Any:
    """``key`` of a JSON object string, or None when absent or not JSON."""
    if not text or not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value.get(key) if isinstance(value, dict) else None


def gcp_machine_type(system_labels: str | None) -> str | None:
    """``compute.googleapis.com/machine_spec`` from the system labels (JSON list or object)."""
    if not system_labels:
        return None
    try:
        value = json.loads(system_labels)
    except ValueError:
        return None
    if isinstance(value, dict):
        found = value.get("compute.googleapis.com/machine_spec")
        return str(found) if found else None
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("key") == "compute.googleapis.com/machine_spec":
            return str(item.get("value"))
    return None


def tags_json(text: str | None) -> str | None:
    """Tags as a JSON object string: GCP's key/value list and Azure's brace-less form too."""
    if not text or text in ("{}", "[]"):
        return None
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        stripped = "{" + stripped + "}"  # Azure EA writes "k": "v","k2": "v2" without braces
    try:
        value = json.loads(stripped)
    except ValueError:
        return json.dumps({"raw": text})
    if isinstance(value, list):
        value = {
            str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)
        }
    return json.dumps(value, separators=(",", ":"), sort_keys=True) if value else None


def credits_total(text: str | None) -> Decimal:
    """The sum of a GCP row's credit amounts (negative numbers)."""
    if not text or text == "[]":
        return Decimal(0)
    try:
        items = json.loads(text, parse_float=Decimal)
    except ValueError as e:
        raise InvalidOperation(f"credits is not JSON: {e}") from e
    return sum((Decimal(str(item.get("amount", 0))) for item in items), Decimal(0))
