"""The spend report against the bills it is built from, on SQLite and PostgreSQL.

For billed hours the report's total equals the matched bill rows' effective cost, to the cent,
on every shipped sample bill; GPU rows that match no node reach the total as their own line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.costs import ledger
from app.kit.money import round_money
from app.kit.timebuckets import DAY, floor_day
from app.models import BillingLineItem, Node
from app.reports import service
from app.reports.types import NO_TELEMETRY
from tests.app.billing.test_service import SAMPLES

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _reprice(session: Session) -> None:
    while ledger.reprice_pending(session).keys:
        pass


def _resource_keys(session: Session, path: Path, tmp_path: Path) -> list[str]:
    """The resource keys a sample names: imported once in a savepoint to read them."""
    savepoint = session.begin_nested()
    billing_service.import_file(session, path=path)
    keys = session.scalars(
        select(BillingLineItem.x_resource_key).where(BillingLineItem.x_resource_key.is_not(None))
        .distinct()
    ).all()  # fmt: skip
    savepoint.rollback()
    return sorted(k for k in keys if k and len(k) <= 255)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name[:60])
def test_report_billed_total_equals_the_matched_bill_rows(
    session: Session, path: Path, tmp_path: Path
) -> None:
    keys = _resource_keys(session, path, tmp_path)
    for i, key in enumerate(keys):
        session.add(Node(name=f"sample-node-{i}", instance_id=key, labels={}, created_at=NOW))
    session.flush()
    summary = billing_service.import_file(session, path=path)
    assert summary.status == "succeeded"
    _reprice(session)
    li = BillingLineItem
    bounds = session.execute(
        select(func.min(li.charge_period_start), func.max(li.charge_period_end))
    ).one()
    start, end = floor_day(bounds[0]), floor_day(bounds[1]) + DAY
    report = service.spend_report(session, start=start, end=end, tz="UTC", label="all",
                                  group_by=("node",), now=NOW)  # fmt: skip
    matched = session.execute(
        select(li.effective_cost, li.x_exchange_rate, li.x_dataset, li.x_source_system).where(
            li.node_id.is_not(None)
        )
    ).all()
    amortized = {r.x_source_system for r in matched if r.x_dataset == "amortized"}
    expected = sum(
        (r.effective_cost * r.x_exchange_rate for r in matched
         if not (r.x_dataset == "actual" and r.x_source_system in amortized)),
        Decimal(0),
    )  # fmt: skip
    billed = sum(
        (line.amounts.billed for line in report.lines if line.key[0] != NO_TELEMETRY), Decimal(0)
    )
    # The legacy CUR sample names no resource: nothing can match, and nothing may be billed.
    assert summary.rows_matched > 0 or not keys
    (currency,) = summary.totals
    assert round_money(billed, currency) == round_money(expected, currency)
    assert abs(billed - expected) < Decimal("1e-9")


def test_gpu_rows_without_telemetry_are_their_own_line(session: Session, tmp_path: Path) -> None:
    from bench import billing_samples as samples
    from tests.factories.nodes import make_batch

    start = samples.START
    from app.auth import service as auth_service
    from app.ingest import service as ingest_service
    from app.ingest.schemas import IngestBatch
    from app.usage import service as usage_service

    batch = make_batch(node="seen", gpus=2, samples_per_gpu=120, start=start, step_seconds=60)
    batch["node"].update(provider="aws", instance_id="i-0000000000000000a",
                         instance_type="p4d.24xlarge", region="us-east-1")  # fmt: skip
    token = auth_service.create_node_token(session, node_name="seen").secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, token),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip
    usage_service.rollup_pending(session)
    bill = tmp_path / "cur2.csv"
    samples.write_cur2(bill, 4, instances=["i-0000000000000000a", "i-00000000000000ff0"])
    billing_service.import_file(session, path=bill)
    _reprice(session)
    report = service.spend_report(session, start=start, end=start + timedelta(days=1), tz="UTC",
                                  label="day", group_by=("team",), now=NOW)  # fmt: skip
    (coverage,) = report.coverage
    assert coverage.unobserved > 0
    assert coverage.observed > 0
    assert coverage.observed + coverage.unobserved == coverage.bill_gpu_total
    lines = {line.key[0]: line for line in report.lines}
    assert lines[NO_TELEMETRY].amounts.cost == coverage.unobserved
    days = [d.cost for d in report.daily if d.key == (NO_TELEMETRY,)]
    assert sum(days, Decimal(0)) == coverage.unobserved  # the daily view adds up too
    billed = sum((line.amounts.billed for line in report.lines), Decimal(0))
    # The report's billed total reaches the bill's GPU total.
    assert abs(billed - coverage.bill_gpu_total) < Decimal("1e-9")
    total = report.totals["USD"]
    assert total.cost == sum((line.amounts.cost for line in report.lines), Decimal(0))
    assert 0 < (coverage.observed_share or 0) < 1


def test_a_bill_in_another_currency_converts_at_the_imports_rate(
    session: Session, tmp_path: Path
) -> None:
    """A USD bill imported with EUR as the reporting currency: its hours are in EUR at the
    stated rate; the unbilled node's estimate stays in the price book's USD; never added up."""
    from bench import billing_samples as samples
    from tests.app.costs.test_ledger import AWS, _ingest, _settle

    start = samples.START
    _ingest(session, "billed", samples_per_gpu=360, instance_id="i-0000000000000000a", **AWS)
    _ingest(session, "unbilled", samples_per_gpu=360, **AWS)
    bill = tmp_path / "focus.csv"
    samples.write_focus(bill, 2, instances=["i-0000000000000000a"])
    rate = Decimal("0.92")
    billing_service.import_file(session, path=bill, currency="EUR", rates={"USD": rate})
    _settle(session)
    report = service.spend_report(session, start=start, end=start + timedelta(days=1),
                                  tz="UTC", label="day", group_by=("node",), now=NOW)  # fmt: skip
    assert report.currencies == ["EUR", "USD"]
    effective = session.scalars(select(BillingLineItem.effective_cost)).all()
    assert report.totals["EUR"].billed == sum(effective, Decimal(0)) * rate
    assert report.totals["EUR"].estimated == 0
    assert report.totals["USD"].billed == 0
    assert report.totals["USD"].estimated > 0
    from app.reports.render import to_json

    [estimate] = to_json(report)["estimated_nodes"]
    assert estimate["node"] == "unbilled"
    assert "from the bills of p4d.24xlarge instances" in estimate["ratio"]
    assert {(line.key, line.currency) for line in report.lines} == {
        (("billed",), "EUR"),
        (("unbilled",), "USD"),
    }
