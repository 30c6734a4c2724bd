"""Azure scale sets (AKS node pools) in bills and costs, on both dialects.

Azure cost exports name the scale set in ResourceId and the instance, when they do, in
AdditionalInfo.VMName; the agent reports the instance's resource id. Nodes, usage and bills go
through ingest, rollup and the importer, as in production.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.billing import service as billing_service
from app.billing.scalesets import aks_node_name, azure_instance_key
from app.costs import ledger
from app.costs.scalesets import split_exact
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import BillingLineItem, CostLedgerHour, Node
from app.reports import service as reports_service
from app.reports.types import NO_TELEMETRY
from app.usage import service as usage_service
from bench import billing_samples as samples
from tests.factories.nodes import make_batch

DAY1 = samples.START  # 2026-11-01, UTC
HOUR = timedelta(hours=1)
NOW = DAY1 + timedelta(days=30)
SUBSCRIPTION = "9ec51cfd-5ca7-4d76-8101-dd0a4abc5674"
VMSS = "aks-gpu-12345678-vmss"
# As IMDS and the exports spell it (mixed case); keys are lower-cased.
SCALE_SET = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/MC_ml_aks_eastus/providers/"
             f"Microsoft.Compute/virtualMachineScaleSets/{VMSS}")  # fmt: skip
GPU_VM = "Standard_NC24ads_A100_v4"  # one A100: one GPU per node, so a node-hour is a GPU-hour


def _instance(n: int) -> str:
    return f"{SCALE_SET}/virtualMachines/{n}"


def _ingest(session: Session, name: str, *, hours: int, start: datetime = DAY1,
            **node: Any) -> None:  # fmt: skip
    """``hours`` whole hours from ``start`` of one GPU seen every minute. A sample with no
    predecessor stands for 10 s, so the first one is a minute before ``start``: each hour of
    the range is then seen whole (3,600 s)."""
    batch = make_batch(node=name, gpus=1, samples_per_gpu=60 * hours + 1,
                       start=start - timedelta(minutes=1), step_seconds=60)  # fmt: skip
    batch["node"].update({"provider": "azure", "region": "eastus", **node})
    batch["batch_id"] = f"{name}-{start.isoformat()}"
    secret = auth_service.create_node_token(session, node_name=name).secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, secret),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip


def _settle(session: Session) -> None:
    """What the periodic jobs do: roll up, then re-price what changed."""
    usage_service.rollup_pending(session)
    while ledger.reprice_pending(session).keys:
        pass
    session.flush()


def _row(day: datetime, cost: str, vm_name: str | None = None) -> dict[str, str]:
    info: dict[str, Any] = {"UsageType": "ComputeHR", "ServiceType": GPU_VM, "VCPUs": 24}
    if vm_name is not None:
        info["VMName"] = vm_name
    return {
        "BillingAccountId": "8611537", "BillingPeriodStartDate": "11/01/2026",
        "BillingPeriodEndDate": "11/30/2026", "AccountOwnerId": "owner@example.com",
        "SubscriptionId": SUBSCRIPTION, "Date": day.strftime("%m/%d/%Y"),
        "Product": "Virtual Machines NCads A100 v4 Series", "MeterId": "m-nc24",
        "MeterCategory": "Virtual Machines", "MeterSubCategory": "NCads A100 v4 Series",
        "MeterName": "NC24ads A100 v4", "Quantity": "24", "EffectivePrice": "3.673",
        "Cost": cost, "UnitPrice": "3.673", "BillingCurrency": "USD", "ResourceLocation": "eastus",
        "ConsumedService": "Microsoft.Compute", "ResourceId": SCALE_SET, "ResourceName": VMSS,
        "AdditionalInfo": json.dumps(info), "UnitOfMeasure": "1 Hour", "ChargeType": "Usage",
        "Frequency": "UsageBased", "PricingModel": "OnDemand",
    }  # fmt: skip


def _bill(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, samples.AZURE_HEADER, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _billed(session: Session, node: str, day: datetime = DAY1) -> Decimal:
    """The node's billed cost on ``day`` in the ledger, exact."""
    node_id = session.scalars(select(Node.id).where(Node.name == node)).one()
    costs = session.scalars(
        select(CostLedgerHour.cost).where(
            CostLedgerHour.node_id == node_id, CostLedgerHour.source == "billed",
            CostLedgerHour.hour >= day, CostLedgerHour.hour < day + timedelta(days=1),
        )
    ).all()  # fmt: skip
    return sum(costs, Decimal(0))


def _snapshot(session: Session) -> list[tuple[Any, ...]]:
    return sorted(
        (r.node_id, r.hour, r.gpu_id, r.owner, r.source, r.cost)
        for r in session.scalars(select(CostLedgerHour))
    )


def test_a_row_naming_its_instance_bills_that_instance(session: Session, tmp_path: Path) -> None:
    _ingest(session, "gpu-3", hours=2, instance_id=_instance(3), instance_type=GPU_VM)
    _ingest(session, "gpu-4", hours=2, instance_id=_instance(4), instance_type=GPU_VM)
    _settle(session)
    bill = _bill(tmp_path / "azure.csv", [_row(DAY1, "7.346", vm_name=f"{VMSS}_3")])
    summary = billing_service.import_file(session, path=bill)
    _settle(session)
    assert summary.rows_matched == 1
    key, node_id = session.execute(
        select(BillingLineItem.x_resource_key, BillingLineItem.node_id)
    ).one()
    assert key == _instance(3).lower()
    assert node_id == session.scalars(select(Node.id).where(Node.name == "gpu-3")).one()
    assert _billed(session, "gpu-3") == Decimal("7.346")  # both of its hours, the whole row
    assert _billed(session, "gpu-4") == 0


def test_a_row_without_instance_is_split_by_running_time(session: Session, tmp_path: Path) -> None:
    """Two instances ran 18 h and 6 h of the day: the row is split 3:1, and the ledger's parts
    add up to the row exactly (18 decimals, the last unit to the larger part)."""
    # No instance type: priced nothing until the bill lands, so only the import's own marking
    # (not the estimates it re-rates) can bring these hours back to be re-priced.
    _ingest(session, "gpu-0", hours=18, instance_id=_instance(0))
    _ingest(session, "gpu-1", hours=6, instance_id=_instance(1))
    _settle(session)
    assert {r.source for r in session.scalars(select(CostLedgerHour))} == {"unpriced"}
    cost = Decimal("100.000000000000000003")
    billing_service.import_file(
        session, path=_bill(tmp_path / "azure.csv", [_row(DAY1, str(cost))])
    )
    _settle(session)
    big, small = _billed(session, "gpu-0"), _billed(session, "gpu-1")
    assert big + small == cost
    assert (big, small) == (Decimal("75.000000000000000003"), Decimal("25.000000000000000000"))
    hours = session.scalars(
        select(CostLedgerHour.hour).where(CostLedgerHour.source == "billed").distinct()
    ).all()
    assert len(hours) == 18  # the hours the instances ran, no others
    assert session.scalar(select(BillingLineItem.node_id)) is None  # the row itself names no node


def test_an_instance_that_did_not_run_gets_nothing(session: Session, tmp_path: Path) -> None:
    _ingest(session, "gpu-0", hours=18, instance_id=_instance(0))
    day2 = DAY1 + timedelta(days=1)
    _ingest(session, "gpu-1", hours=6, start=day2 + HOUR, instance_id=_instance(1))
    _settle(session)
    billing_service.import_file(session, path=_bill(tmp_path / "azure.csv", [_row(DAY1, "80")]))
    _settle(session)
    assert _billed(session, "gpu-0") == Decimal(80)
    assert _billed(session, "gpu-1") == 0
    assert _billed(session, "gpu-1", day2) == 0


def test_a_row_no_instance_ran_in_stays_unmatched_in_the_report(
    session: Session, tmp_path: Path
) -> None:
    _ingest(session, "gpu-0", hours=12, instance_id=_instance(0))
    _settle(session)
    day3 = DAY1 + timedelta(days=2)  # nobody ran: nothing to split it over
    bill = _bill(tmp_path / "azure.csv", [_row(DAY1, "44.076"), _row(day3, "88.152")])
    billing_service.import_file(session, path=bill)
    _settle(session)
    report = reports_service.spend_report(
        session, start=DAY1, end=DAY1 + timedelta(days=7), tz="UTC", label="week",
        group_by=("node",), now=NOW,
    )  # fmt: skip
    lines = {line.key[0]: line.amounts for line in report.lines}
    assert lines["gpu-0"].billed == Decimal("44.076")
    assert lines[NO_TELEMETRY].cost == Decimal("88.152")
    (coverage,) = report.coverage
    assert (coverage.observed, coverage.unobserved) == (Decimal("44.076"), Decimal("88.152"))
    assert report.totals["USD"].cost == Decimal("132.228")  # each row counted once


def test_reimport_and_reprice_charge_once(session: Session, tmp_path: Path) -> None:
    _ingest(session, "gpu-0", hours=18, instance_id=_instance(0))
    _ingest(session, "gpu-1", hours=6, instance_id=_instance(1))
    _settle(session)
    rows = [_row(DAY1, "100.01")]
    billing_service.import_file(session, path=_bill(tmp_path / "azure.csv", rows))
    _settle(session)
    first = _snapshot(session)
    assert _billed(session, "gpu-0") + _billed(session, "gpu-1") == Decimal("100.01")
    # The same file again is a duplicate; a re-export of it (one more row, so new bytes)
    # replaces the earlier rows: the split row is still charged once.
    assert billing_service.import_file(session, path=tmp_path / "azure.csv").status == "duplicate"
    again = _bill(tmp_path / "azure.csv", [*rows, _row(DAY1 + timedelta(days=5), "1")])
    assert billing_service.import_file(session, path=again).rows_replaced == 1
    _settle(session)
    assert _snapshot(session) == first
    # Re-pricing one hour of one instance re-prices the day on both, to the same rows.
    gpu_0 = session.scalars(select(Node.id).where(Node.name == "gpu-0")).one()
    stats = ledger.reprice(session, {gpu_0: {DAY1 + 3 * HOUR}})
    assert stats.hours == 48  # the row's day on both instances
    assert _snapshot(session) == first


def test_an_instance_registering_later_takes_its_share(session: Session, tmp_path: Path) -> None:
    _ingest(session, "gpu-0", hours=18, instance_id=_instance(0))
    _settle(session)
    billing_service.import_file(session, path=_bill(tmp_path / "azure.csv", [_row(DAY1, "100.01")]))
    _settle(session)
    assert _billed(session, "gpu-0") == Decimal("100.01")
    # The second instance registers after the bill, its agent sending that day's samples.
    _ingest(session, "gpu-1", hours=6, instance_id=_instance(1))
    _settle(session)
    assert _billed(session, "gpu-0") == Decimal("75.0075")
    assert _billed(session, "gpu-1") == Decimal("25.0025")


def test_nodes_named_by_kubernetes_or_vm_name_match(session: Session, tmp_path: Path) -> None:
    """No instance id reported: the AKS node name (<vmss> + instance id in base 36, 6 digits)
    or the VMName form (<vmss>_<instance id>) finds the node, for both kinds of row."""
    aks_37 = f"{VMSS}000011"  # instance 37 = "11" in base 36
    _ingest(session, aks_37, hours=3)
    _ingest(session, f"{VMSS}_5", hours=1)
    _ingest(session, "unrelated-node", hours=3)
    _settle(session)
    day2 = DAY1 + timedelta(days=1)
    bill = _bill(tmp_path / "azure.csv", [
        _row(DAY1, "11.019", vm_name=f"{VMSS}_37"), _row(DAY1, "3.673", vm_name=f"{VMSS}_5"),
        _row(day2, "12"),
    ])  # fmt: skip
    _ingest(session, aks_37, hours=1, start=day2)
    _ingest(session, f"{VMSS}_5", hours=3, start=day2)
    _settle(session)
    summary = billing_service.import_file(session, path=bill)
    _settle(session)
    assert summary.rows_matched == 2
    assert _billed(session, aks_37) == Decimal("11.019")
    assert _billed(session, f"{VMSS}_5") == Decimal("3.673")
    assert _billed(session, aks_37, day2) == Decimal(3)  # 1 h of the 4 observed
    assert _billed(session, f"{VMSS}_5", day2) == Decimal(9)
    assert _billed(session, "unrelated-node") == 0


def test_parts_add_up_and_the_remainder_goes_to_the_largest() -> None:
    parts = split_exact(Decimal("0.000000000000000010"), {1: Decimal(1), 2: Decimal(2)})
    assert parts == {1: Decimal("0.000000000000000003"), 2: Decimal("0.000000000000000007")}
    thirds = split_exact(Decimal(1), {1: Decimal(1), 2: Decimal(1), 3: Decimal(1)})
    assert sum(thirds.values(), Decimal(0)) == 1
    assert thirds[3] == Decimal("0.333333333333333334")  # the last of equals
    assert split_exact(Decimal(5), {1: Decimal(0)}) == {}


def test_instance_keys_and_names() -> None:
    assert aks_node_name(VMSS, "3") == f"{VMSS}000003"
    assert aks_node_name(VMSS, "36") == f"{VMSS}000010"
    assert azure_instance_key(SCALE_SET, f"{VMSS}_3") == _instance(3).lower()
    assert azure_instance_key(SCALE_SET, None) == SCALE_SET.lower()
    assert azure_instance_key(SCALE_SET, "other-vmss_3") == SCALE_SET.lower()
    assert azure_instance_key(_instance(3), f"{VMSS}_4") == _instance(3).lower()
