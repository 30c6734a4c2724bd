"""evaluate() is idempotent and causal, and re-reads what late data rewrites. Both dialects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.config import configure, settings
from app.findings import dirty
from app.ingest import service as ingest_service
from app.ingest.schemas import IngestBatch
from app.models import GpuMinuteRollup, HostMinuteRollup
from app.usage import service as usage_service
from tests.app.findings.series import (
    MINUTE,
    T0,
    H,
    evaluate,
    findings,
    held,
    make_node,
    random_scenario,
    snapshot,
    write_gpu,
    write_host,
    write_ledger,
)
from tests.factories.nodes import make_batch

END = T0 + 310 * MINUTE


def _stepped(session: Session, every: int, end: Any = END) -> None:
    at = T0 + every * MINUTE
    while at < end:
        evaluate(session, at)
        at += every * MINUTE
    evaluate(session, end)


def test_evaluating_the_same_now_twice_changes_nothing(session: Session) -> None:
    random_scenario(session, 1)
    first = evaluate(session, END)
    rows = {f.id: (f.updated_at, f.timeline) for f in findings(session)}
    assert first.opened > 0
    again = evaluate(session, END)
    assert (again.opened, again.updated, again.resolved, again.deleted) == (0, 0, 0, 0)
    assert {f.id: (f.updated_at, f.timeline) for f in findings(session)} == rows


@pytest.mark.parametrize("seed", [2, 5])
def test_every_five_minutes_or_once_at_the_end_gives_the_same_findings(
    session: Session, seed: int
) -> None:
    random_scenario(session, seed)
    _stepped(session, 5)
    stepped = snapshot(session)
    session.rollback()
    random_scenario(session, seed)
    evaluate(session, END)
    once = snapshot(session)
    assert len({row[0] for row in once}) >= 3  # several kinds, so the comparison means something
    assert stepped == once


def test_small_evaluation_steps_give_the_same_findings(session: Session) -> None:
    saved = settings.findings_window_minutes
    try:
        random_scenario(session, 3)
        evaluate(session, END)
        whole = snapshot(session)
        session.rollback()
        configure(findings_window_minutes=60)  # a long catch-up in 60-minute steps
        random_scenario(session, 3)
        stats = evaluate(session, END)
        assert stats.steps > 1
        assert snapshot(session) == whole
    finally:
        configure(findings_window_minutes=saved)


def _copy(session: Session, model: type, lo: Any, hi: Any) -> list[dict[str, Any]]:
    table: Table = model.__table__  # type: ignore[attr-defined]
    rows = [dict(r._mapping) for r in session.execute(
        select(table).where(table.c.bucket >= lo, table.c.bucket < hi))]  # fmt: skip
    session.execute(delete(table).where(table.c.bucket >= lo, table.c.bucket < hi))
    return rows


@pytest.mark.parametrize("seed", [0, 3])
def test_late_minutes_are_re_evaluated(session: Session, seed: int) -> None:
    """A node's 40 minutes arrive 70 minutes late: the result is as if they had been on time."""
    random_scenario(session, seed)
    lo, hi = T0 + (100 + 20 * seed) * MINUTE, T0 + (140 + 20 * seed) * MINUTE
    gpu_rows = _copy(session, GpuMinuteRollup, lo, hi)
    host_rows = _copy(session, HostMinuteRollup, lo, hi)
    at = T0 + 5 * MINUTE
    while at < END:
        if at == hi + 70 * MINUTE:  # as the rollup does when it rewrites past minutes
            session.execute(insert(GpuMinuteRollup), gpu_rows)
            session.execute(insert(HostMinuteRollup), host_rows)
            dirty.mark_rollup(session, "gpu", [(r["gpu_id"], r["bucket"]) for r in gpu_rows])
            dirty.mark_rollup(session, "host", [(r["node_id"], r["bucket"]) for r in host_rows])
            assert dirty.pending(session) > 0
        evaluate(session, at)
        at += 5 * MINUTE
    evaluate(session, END)
    assert dirty.pending(session) == 0
    late = snapshot(session)
    session.rollback()
    random_scenario(session, seed)
    evaluate(session, END)
    assert late == snapshot(session)


def _ingest(session: Session, start: Any, minutes: int, util: float, *, batch_id: str) -> None:
    batch = make_batch(node="late", gpus=1, samples_per_gpu=minutes * 6, start=start,
                       step_seconds=10, utilization=util)  # fmt: skip
    batch["batch_id"] = batch_id
    for s in batch["samples"]:
        s["processes"] = []
        s["allocation"] = {"job_id": "77", "user": "ana", "namespace": "ml"}
    token = auth_service.create_node_token(session, node_name="late").secret
    ingest_service.ingest_batch(session, token=auth_service.authenticate_node(session, token),
                                batch=IngestBatch.model_validate(batch))  # fmt: skip
    usage_service.rollup_pending(session)


def test_late_samples_through_ingest_and_rollup_move_a_finding_back(session: Session) -> None:
    # Idle 0-10 and 25-60; minutes 10-25 have not arrived: the idle stretch seems to begin at 25.
    _ingest(session, T0, 10, 0.0, batch_id="a")
    _ingest(session, T0 + 25 * MINUTE, 35, 0.0, batch_id="b")
    evaluate(session, T0 + 60 * MINUTE)
    (before,) = findings(session, "idle_allocated")
    assert (before.started_at, before.opened_at) == (T0 + 25 * MINUTE, T0 + 55 * MINUTE)
    # They arrive, idle too: the rollup queues them and the next pass moves the finding back.
    _ingest(session, T0 + 10 * MINUTE, 15, 0.0, batch_id="c")
    assert dirty.pending(session) > 0
    evaluate(session, T0 + 61 * MINUTE)
    (after,) = findings(session, "idle_allocated")
    assert (after.started_at, after.opened_at) == (T0, T0 + 30 * MINUTE)
    assert after.id == before.id  # the same finding (an acknowledgement stays with it)
    assert dirty.pending(session) == 0


def _three_idle_days(session: Session) -> Any:
    node, (gpu,) = make_node(session)
    days = 3 * 24 * 60
    write_gpu(session, gpu, [held(85)] * 30 + [held(0, power=90)] * days)
    write_host(session, node, [H()] * (days + 30))
    write_ledger(session, gpu, [T0 + h * timedelta(hours=1) for h in range(3 * 24 + 1)])
    return T0 + (days + 30) * MINUTE


def test_an_episode_longer_than_the_late_data_horizon_keeps_its_sums(session: Session) -> None:
    """Three days idle: old hours are folded into the finding's base; the result is the same
    evaluated every six hours or once (in 12-hour steps, from a 4-day first look-back)."""
    saved = settings.findings_initial_lookback_hours
    try:
        configure(findings_initial_lookback_hours=96)
        end = _three_idle_days(session)
        _stepped(session, 6 * 60, end)
        stepped = snapshot(session)
        (f,) = findings(session, "idle_allocated")
        folded = f.timeline["base_priced"]["estimated"]
        assert folded > 0  # hours the late data horizon has passed are folded into the base
        assert folded + len(f.timeline["hours"]) == 73  # 08:30 on day 1 to 08:29 on day 4
        assert f.evidence["minutes"] == 3 * 24 * 60
        assert f.cost_so_far == 3 * 24 * 4  # 4.00 an hour
        session.rollback()
        end = _three_idle_days(session)
        assert evaluate(session, end).steps > 1
        assert snapshot(session) == stepped
    finally:
        configure(findings_initial_lookback_hours=saved)
