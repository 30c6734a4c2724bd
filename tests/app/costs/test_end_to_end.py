"""Nodes through ingest, a CUR 2.0 bill for their instances, the usage rollup, then GET /costs."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Role
from app.billing import service as billing_service
from app.costs import ledger as cost_ledger
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.usage import service as usage_service
from app.web import router as web_router
from bench import billing_samples as samples
from tests.factories.nodes import create_api_key, make_batch

START = samples.START
HOURS = 2
BUSY, IDLE, UNBILLED = "i-0000000000000000a", "i-0000000000000000c", "i-0000000000000000e"
NODES = {"busy": (BUSY, 80.0), "idle": (IDLE, 0.0), "unbilled": (UNBILLED, 60.0)}


def _ingest(session: Session) -> None:
    for name, (instance, utilization) in NODES.items():
        batch: dict[str, Any] = make_batch(node=name, gpus=2, samples_per_gpu=HOURS * 60,
                                           start=START, step_seconds=60, utilization=utilization)  # fmt: skip
        batch["node"].update(provider="aws", instance_id=instance, instance_type="p4d.24xlarge",
                             region="us-east-1")  # fmt: skip
        token = auth_service.create_node_token(session, node_name=name).secret
        ingest_service.ingest_batch(
            session,
            token=auth_service.authenticate_node(session, token),
            batch=IngestBatch.model_validate(batch),
        )


def _effective_sum(path: Path, instances: set[str]) -> Decimal:
    """EffectiveCost straight from the file: the savings-plan rate where covered, else unblended."""
    total = Decimal(0)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["line_item_resource_id"] in instances:
                covered = r["line_item_line_item_type"] == "SavingsPlanCoveredUsage"
                total += Decimal(r["savings_plan_savings_plan_effective_cost"] if covered
                                 else r["line_item_unblended_cost"])  # fmt: skip
    return total


def test_costs_from_bill_and_price_book_reconcile(
    client: TestClient, session: Session, tmp_path: Path
) -> None:
    _ingest(session)
    usage_service.rollup_pending(session)
    bill = tmp_path / "cur2.csv"
    # Bill rows for the busy and idle nodes over the same hours, plus an unknown instance.
    samples.write_cur2(bill, 3 * HOURS, instances=[BUSY, IDLE, "i-00000000000000ff0"])
    summary = billing_service.import_file(session, path=bill)
    assert summary.rows_matched == 2 * HOURS
    while cost_ledger.reprice_pending(session).keys:
        pass
    session.flush()

    viewer = {"Authorization": f"Bearer {create_api_key(session, role=Role.VIEWER)}"}
    window = {"from": START.isoformat(), "to": (START + timedelta(hours=HOURS)).isoformat()}
    reports = {}
    for by in ("team", "node"):
        r = client.get("/api/v1/costs", headers=viewer, params={**window, "group_by": by})
        assert r.status_code == 200, r.text
        reports[by] = r.json()
    for report in reports.values():
        total = Decimal(report["total"])
        assert total > 0
        assert sum(Decimal(g["cost"]) for g in report["groups"].values()) == total
        expected = _effective_sum(bill, {BUSY, IDLE})
        assert Decimal(report["totals"]["billed_cost"]) == round(expected, 2)
        exact = sum(Decimal(g["exact"]["billed_cost"]) for g in report["groups"].values())
        assert exact == expected

    nodes = reports["node"]["groups"]
    # Billed nodes: their hours cost exactly the matched rows' effective cost.
    billed = Decimal(nodes["busy"]["exact"]["billed_cost"]) + Decimal(
        nodes["idle"]["exact"]["billed_cost"]
    )
    assert billed == _effective_sum(bill, {BUSY, IDLE})
    # No bill rows: priced from the price book and marked estimated.
    unbilled = nodes["unbilled"]
    assert Decimal(unbilled["billed_cost"]) == 0
    assert Decimal(unbilled["estimated_cost"]) == Decimal(unbilled["cost"]) > 0
    # Cost = utilized + idle + unused. The idle node's cost is idle for the seconds observed;
    # the busy node (80 %) is 80 % utilized and 20 % unused.
    for node in nodes.values():
        parts = sum(
            Decimal(node["exact"][c]) for c in ("utilized_cost", "idle_cost", "unused_cost")
        )
        assert abs(parts - Decimal(node["exact"]["cost"])) < Decimal("1e-12")
    idle = nodes["idle"]
    assert Decimal(idle["utilized_cost"]) == 0
    assert (
        Decimal("0.95") * Decimal(idle["cost"])
        < Decimal(idle["idle_cost"])
        <= Decimal(idle["cost"])
    )
    busy = nodes["busy"]
    assert Decimal(busy["idle_cost"]) == 0
    exact = busy["exact"]
    assert Decimal(exact["utilized_cost"]) == Decimal(exact["cost"]) * Decimal("0.8")


def _ingest_unmeasured(session: Session) -> None:
    """Node "mig": two MIG-enabled GPUs, whose device utilization NVML does not report (the
    agent sends null). Node "mixed": the first half hour at 50 %, the second without a reading."""
    for name, instance in (("mig", "i-0000000000000m1g"), ("mixed", "i-00000000000m1xed")):
        batch = make_batch(node=name, gpus=2, samples_per_gpu=60, start=START, step_seconds=60,
                           utilization=50.0)  # fmt: skip
        batch["node"].update(provider="aws", instance_id=instance, instance_type="p4d.24xlarge",
                             region="us-east-1")  # fmt: skip
        for i, s in enumerate(batch["samples"]):
            if name == "mig" or i % 60 >= 30:
                s["utilization_gpu"] = None
        if name == "mig":
            for g in batch["gpus"]:
                g["mig_mode"] = True
        token = auth_service.create_node_token(session, node_name=name).secret
        ingest_service.ingest_batch(
            session,
            token=auth_service.authenticate_node(session, token),
            batch=IngestBatch.model_validate(batch),
        )


def test_time_without_a_utilization_reading_is_unmeasured(
    client: TestClient, session: Session
) -> None:
    """Ingest with ``utilization_gpu: null``, the rollup, the ledger, then GET /costs: the time
    with no reading is unmeasured cost, not unused, and efficiency leaves it out."""
    _ingest_unmeasured(session)
    usage_service.rollup_pending(session)
    while cost_ledger.reprice_pending(session).keys:
        pass
    session.flush()
    viewer = {"Authorization": f"Bearer {create_api_key(session, role=Role.VIEWER)}"}
    window = {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat()}
    r = client.get("/api/v1/costs", headers=viewer, params={**window, "group_by": "node"})
    assert r.status_code == 200, r.text
    report = r.json()
    mig, mixed = report["groups"]["mig"], report["groups"]["mixed"]

    # The MIG node: all of its cost is unmeasured; none of it is "unused" or "utilized".
    cost = Decimal(mig["exact"]["cost"])
    assert cost > 0
    assert Decimal(mig["exact"]["unused_cost"]) == 0
    assert Decimal(mig["exact"]["utilized_cost"]) == Decimal(mig["exact"]["idle_cost"]) == 0
    assert Decimal(mig["exact"]["unmeasured_cost"]) == cost
    assert mig["efficiency"] is None

    # The mixed node: 60 one-minute samples per GPU, the first standing for 10 s (nothing
    # before it): 10 + 29 x 60 s at 50 %, then 30 x 60 s without a reading.
    exact = {k: Decimal(v) for k, v in mixed["exact"].items()}
    measured, unmeasured = Decimal(10 + 29 * 60), Decimal(30 * 60)
    share = unmeasured / (measured + unmeasured)
    assert abs(exact["unmeasured_cost"] - exact["cost"] * share) < Decimal("1e-12")
    assert abs(exact["utilized_cost"] - exact["cost"] * (1 - share) / 2) < Decimal("1e-12")
    assert exact["idle_cost"] == 0
    parts = sum(exact[c] for c in ("utilized_cost", "idle_cost", "unused_cost", "unmeasured_cost"))
    assert parts == exact["cost"]
    assert mixed["efficiency"] == 0.5

    # Rounded to the cent, the groups add up to the totals in every column.
    for column in ("cost", "utilized_cost", "idle_cost", "unused_cost", "unmeasured_cost"):
        groups = sum(Decimal(g[column]) for g in report["groups"].values())
        assert groups == Decimal(report["totals"][column]), column
    assert report["totals"]["efficiency"] == float(
        round(exact["utilized_cost"] / (exact["cost"] - exact["unmeasured_cost"]), 4)
    )

    # The fleet page's spend table (last 24 h by team) has the column too, adding up.
    table = web_router._spend_table(session, START + timedelta(hours=1))
    rows = table["rows"].values()
    assert sum(r["unmeasured_cost"] for r in rows) == round(
        sum(Decimal(g["exact"]["unmeasured_cost"]) for g in report["groups"].values()), 2
    )
    assert all(r["unmeasured_cost"] > 0 for r in rows)
