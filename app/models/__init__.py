"""Every model, imported here so that Alembic and ``Base.metadata`` see them all."""

from app.models.auth import ApiKey, NodeToken
from app.models.billing import BillingImport, BillingLineItem, PriceBookEntry
from app.models.nodes import Cluster, Gpu, Node
from app.models.samples import GpuProcessSample, GpuSample, HostSample

__all__ = [
    "ApiKey",
    "BillingImport",
    "BillingLineItem",
    "Cluster",
    "Gpu",
    "GpuProcessSample",
    "GpuSample",
    "HostSample",
    "Node",
    "NodeToken",
    "PriceBookEntry",
]
