"""Every model, imported here so that Alembic and ``Base.metadata`` see them all."""

from app.models.auth import ApiKey, NodeToken
from app.models.billing import BillingImport, BillingLineItem, PriceBookEntry
from app.models.costs import CostDirty, CostLedgerDay, CostLedgerHour
from app.models.findings import Finding, FindingCursor, FindingDirty
from app.models.nodes import Cluster, Gpu, Node
from app.models.samples import GpuProcessSample, GpuSample, HostSample
from app.models.usage import (
    FleetHourRollup,
    GpuHourRollup,
    GpuMinuteRollup,
    HostHourRollup,
    HostMinuteRollup,
    RollupDirty,
)

__all__ = [
    "ApiKey",
    "BillingImport",
    "BillingLineItem",
    "Cluster",
    "CostDirty",
    "CostLedgerDay",
    "CostLedgerHour",
    "Finding",
    "FindingCursor",
    "FindingDirty",
    "FleetHourRollup",
    "Gpu",
    "GpuHourRollup",
    "GpuMinuteRollup",
    "GpuProcessSample",
    "GpuSample",
    "HostHourRollup",
    "HostMinuteRollup",
    "HostSample",
    "Node",
    "NodeToken",
    "PriceBookEntry",
    "RollupDirty",
]
