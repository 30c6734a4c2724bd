"""The spend report's views over a ledger built through ingest and the rollup, both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.costs import ledger
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.reports import service
from app.usage import service as usage_service
from tests.factories.nodes import make_batch

OCT, NOV, DEC = (datetime(2026, m, 1, tzinfo=UTC) for m in (10, 11, 12))
NOW = datetime(2026, 12, 2, tzinfo=UTC)
AWS = {"provider": "aws", "instance_type": "p4d.24xlarge", "region": "us-east-1"}


def _node(session: Session, name: str, start: datetime, *, hours: int, owner: dict[str, str],
          utilization: float, **node: Any) -> None:  # fmt: skip
    batch = make_batch(node=name, gpus=2, samples_per_gpu=hours * 60, start=start,
                       step_seconds=60, utilization=utilization)  # fmt: skip
    batch["node"].update(node)
    batch["batch_id"] = f"{name}-{start.isoformat()}"
    for sample in batch["samples"]:
        for process in sample["processes"]:
            process["owner"] = owner
    token = auth_service.authenticate_node(
        session, auth_service.create_node_token(session, node_name=f"{name}").secret
    )
    ingest_service.ingest_batch(session, token=token, batch=IngestBatch.model_validate(batch))


def _settle(session: Session) -> None:
    while usage_service.rollup_pending(session).dirty:
        pass
    while ledger.reprice_pending(session).keys:
        pass


def _fleet(session: Session) -> None:
    # November: a busy job of team vision across midnight, an idle pod of team nlp, a node
    # nobody can price. October: the vision job's node, for the change against last month.
    _node(session, "train", NOV + timedelta(days=3, hours=22), hours=4, utilization=90.0,
          owner={"job_id": "4711", "account": "vision", "user": "ann"}, **AWS)  # fmt: skip
    _node(session, "idle", NOV + timedelta(days=10), hours=2, utilization=0.0,
          owner={"namespace": "nlp", "pod_name": "notebook-0"}, **AWS)  # fmt: skip
    _node(session, "bare", NOV + timedelta(days=11), hours=1, utilization=50.0,
          owner={"user": "bob"})  # fmt: skip
    _node(session, "train", OCT + timedelta(days=3), hours=2, utilization=90.0,
          owner={"job_id": "4000", "account": "vision"}, **AWS)  # fmt: skip
    _settle(session)


def test_month_report_lines_days_owners_and_previous_month(session: Session) -> None:
    _fleet(session)
    report = service.spend_report(session, start=NOV, end=DEC, tz="UTC", label="2026-11",
                                  group_by=("team",), now=NOW)  # fmt: skip
    assert (report.previous_start, report.previous_end) == (OCT, NOV)
    lines = {line.key: line for line in report.lines}
    # The user's node carries the label team=ml, which comes before the user in the rules.
    assert set(lines) == {("vision",), ("nlp",), ("ml",)}
    vision, nlp, bob = lines[("vision",)], lines[("nlp",)], lines[("ml",)]
    # 2 GPUs x 240 one-minute samples; the first stands for 10 s (nothing before it).
    assert vision.amounts.gpu_hours == Decimal(2 * (10 + 239 * 60)) / 3600
    assert vision.amounts.estimated == vision.amounts.cost > 0
    assert vision.previous_cost is not None
    assert vision.change == (vision.amounts.cost - vision.previous_cost) / vision.previous_cost
    assert vision.amounts.efficiency == Decimal("0.9")
    assert nlp.amounts.idle == nlp.amounts.cost > 0
    assert bob.amounts.cost == 0
    assert bob.amounts.unpriced_gpu_hours == bob.amounts.gpu_hours == Decimal(2 * 3550) / 3600
    # Which ratio each estimate used: no bill anywhere, so list price.
    assert {n.node for n in report.estimated_nodes} == {"train", "idle"}
    assert all("list price" in n.basis for n in report.estimated_nodes)
    [unpriced] = report.unpriced_nodes
    assert unpriced.node == "bare"
    assert "no provider and no instance type" in unpriced.reason
    # The daily breakdown adds up to each line; the job across midnight is on two days.
    for line in report.lines:
        days = [d.cost for d in report.daily if d.key == line.key]
        assert sum(days, Decimal(0)) == line.amounts.cost
    assert sorted(d.day.day for d in report.daily if d.key == ("vision",)) == [4, 5]
    # The owners whose GPUs idled most: the nlp pod, then the job (idle 0 is left out).
    assert [o.owner for o in report.top_idle_owners] == ["pod nlp/notebook-0"]
    total = report.totals["USD"]
    assert total.cost == sum((line.amounts.cost for line in report.lines), Decimal(0))


def test_days_follow_the_report_zone(session: Session) -> None:
    _fleet(session)
    start, end = datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 12, 1, 5, tzinfo=UTC)
    report = service.spend_report(session, start=start, end=end, tz="America/New_York",
                                  label="2026-11", group_by=("team", "project"), now=NOW)  # fmt: skip
    vision = [d for d in report.daily if d.key[0] == "vision"]
    # 22:00 UTC on the 4th to 02:00 on the 5th is 17:00 to 21:00 on the 4th in New York.
    assert [d.day.day for d in vision] == [4]
    assert {line.key for line in report.lines} == {
        ("vision", "vision"),
        ("nlp", "nlp"),
        ("ml", "unallocated"),
    }


def test_window_inside_a_day_reads_hours(session: Session) -> None:
    _fleet(session)
    start = NOV + timedelta(days=3, hours=23)
    report = service.spend_report(session, start=start, end=start + timedelta(hours=2),
                                  tz="UTC", label="2 h", group_by=("node",), now=NOW)  # fmt: skip
    [line] = report.lines
    assert line.key == ("train",)
    assert line.amounts.gpu_hours == Decimal(4)
