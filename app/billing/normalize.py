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
# GPU models as the price book names them; a name must stand alone ("H100T", "L4s", "p4d" and
# "NDasrA100_v4" name none), and the A100 with 80 GB is "A100-80GB" (OCI's "A100 - v2").
_GPU_MODEL = re.compile(
    r"(?<![A-Za-z0-9])(GB200|B200|H200|H100|A100|A10G|A10|L40S|L40|L4|T4|V100|P100|P40|P4|K80|"
    r"M60|MI300X)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_A100_80GB = re.compile(r"80\s*GB|A100\W*v2\b", re.IGNORECASE)
_GPU_CONTEXT = re.compile(r"gpu|nvidia|tesla", re.IGNORECASE)
# An EC2 (or RDS, SageMaker, ElastiCache) instance type as usage types and descriptions write
# it: "USE1-BoxUsage:g5.xlarge", "$1.006 per On Demand Linux g5.xlarge Instance Hour".
_AWS_INSTANCE = re.compile(
    r"(?<![\w.])((?:db\.|ml\.|cache\.)?[a-z][a-z0-9-]*\d[a-z0-9-]*\."
    r"(?:nano|micro|small|medium|large|\d*xlarge|metal(?:-\d+xl)?))(?![\w.])"
)
# Azure GPU families (all N-series) whose model a meter names ambiguously or not at all.
# Sources: learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/*.
_AZURE_SERIES = {
    "nc": "K80", "ncv2": "P100", "ncsv2": "P100", "ncv3": "V100", "ncsv3": "V100",
    "nd": "P40", "ndv2": "V100", "nv": "M60", "nvv3": "M60", "nvsv3": "M60",
    "ncast4v3": "T4", "nvadsa10v5": "A10", "ndasra100v4": "A100", "ndasrv4": "A100",
    "ncadsa100v4": "A100-80GB", "ndamsra100v4": "A100-80GB", "ndh100v5": "H100",
    "ndisrh100v5": "H100", "ncadsh100v5": "H100", "nccadsh100v5": "H100", "ndmi300xv5": "MI300X",
}  # fmt: skip
_AZURE_NOISE = re.compile(r"\b(?:series|windows|linux|spot|low priority|promo)\b", re.IGNORECASE)
_AZURE_SIZE = re.compile(r"^([A-Za-z]+)\d+(.*)$")  # "NC24ads A100 v4" → "NC", "ads A100 v4"


def aws_category(value: str | None) -> str:
    return AWS_CATEGORY.get(value or "", "Usage")


def gcp_category(value: str | None) -> str:
    return GCP_CATEGORY.get((value or "").lower(), "Usage")


def azure_category(value: str | None) -> str:
    return AZURE_CATEGORY.get((value or "").lower(), "Usage")


def focus_category(value: str | None) -> str:
    return value if value in FOCUS_CATEGORIES else "Usage"


def oci_category(is_correction: str | None) -> str:
    return "Adjustment" if (is_correction or "").lower() == "true" else "Usage"


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


def oci_component(service: str | None, description: str | None) -> str:
    """OCI bills GPU shapes per GPU-hour ("Compute - GPU - A10"), others per OCPU and memory."""
    text = (description or "").lower()
    if "gpu" in text:
        return "gpu"
    kind = (service or "").upper()
    if kind == "COMPUTE":
        return "memory" if "memory" in text else "cpu" if "ocpu" in text else "instance"
    if kind in ("BLOCK_STORAGE", "OBJECTSTORE", "FILE_STORAGE"):
        return "storage"
    if kind == "NETWORK" or "data transfer" in text:
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


def _gpu_model(text: str) -> str | None:
    match = _GPU_MODEL.search(text)
    if match is None:
        return None
    model = match.group(1).upper()
    return "A100-80GB" if model == "A100" and _A100_80GB.search(text) else model


def gpu_model_from_text(text: str | None) -> str | None:
    """The GPU model a GPU SKU names: GCP "Nvidia Tesla A100 80GB GPU running in Americas"
    (A100-80GB), "Nvidia L4 GPU running in EMEA", OCI "Compute - GPU - A10"."""
    if not text or not _GPU_CONTEXT.search(text):
        return None
    return _gpu_model(text)


def _azure_series(name: str, *, size: bool = False) -> str:
    """The series key: "NCads A100 v4 Series" → "ncadsa100v4"; "NC24ads A100 v4" too (size)."""
    name = _AZURE_NOISE.sub("", name).strip()
    if size:
        name = _AZURE_SIZE.sub(r"\1\2", name)
    return re.sub(r"[^a-z0-9]", "", name.lower())


def azure_gpu_model(category: str | None, subcategory: str | None, meter: str | None) -> str | None:
    """The GPU model of an Azure VM meter: its N-series subcategory ("NCads A100 v4 Series",
    A100-80GB) or meter name ("NC24ads A100 v4"). Other meters name disks ("P40 LRS Disk") or
    CPU sizes ("A10") that look like GPU models, so only Virtual Machines N-series count."""
    if "virtual machines" not in (category or "").lower():
        return None
    for key, text in ((_azure_series(subcategory or ""), subcategory),
                      (_azure_series(meter or "", size=True), meter)):  # fmt: skip
        if key.startswith("n") and text:
            model = _AZURE_SERIES.get(key) or _gpu_model(text)
            if model:
                return model
    return None


def azure_meter_instance(category: str | None, meter: str | None) -> str | None:
    """The VM size a Virtual Machines meter names: "NC24ads A100 v4" → Standard_NC24ads_A100_v4."""
    if not meter or "virtual machines" not in (category or "").lower():
        return None
    name = _AZURE_NOISE.sub("", meter).split("/")[0].strip()
    return "Standard_" + "_".join(name.split()) if _AZURE_SIZE.match(name) else None


def aws_instance_type(text: str | None) -> str | None:
    """The instance type in a usage type or charge description ("USE1-BoxUsage:g5.xlarge")."""
    match = _AWS_INSTANCE.search(text) if text else None
    return match.group(1) if match else None


def sku_instance_type(text: str | None) -> str | None:
    """The instance type of FOCUS SkuPriceDetails: ``InstanceType`` or a provider's own key
    (``x_InstanceType``, ``instanceType``, Azure ``ServiceType``/``VMSize``)."""
    if not text or not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    for key, found in value.items():
        name = str(key).lower().removeprefix("x_").replace("_", "")
        if name in ("instancetype", "servicetype", "vmsize") and found:
            return str(found)
    return None


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


def azure_tags_json(text: str | None) -> str | None:
    """Azure tags as a JSON object with lower-case names: Azure tag names are case-insensitive,
    so "Team" is the team rules' "team" (both the EA form without braces and JSON)."""
    tags = tags_json(text)
    if tags is None:
        return None
    value = json.loads(tags)
    if not isinstance(value, dict):
        return tags
    lowered = {str(k).strip().lower(): v for k, v in value.items()}
    return json.dumps(lowered, separators=(",", ":"), sort_keys=True)


def credits_total(text: str | None) -> Decimal:
    """The sum of a GCP row's credit amounts (negative numbers)."""
    if not text or text == "[]":
        return Decimal(0)
    try:
        items = json.loads(text, parse_float=Decimal)
    except ValueError as e:
        raise InvalidOperation(f"credits is not JSON: {e}") from e
    return sum((Decimal(str(item.get("amount", 0))) for item in items), Decimal(0))
