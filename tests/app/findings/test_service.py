"""evaluate() over stored minute rollups: each kind opens, stays open and resolves; the hard
cases stay quiet; costs come from the ledger; overrides and mutes apply. Both dialects."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.config import configure, settings
from app.models import CostLedgerHour, Finding
from app.usage.query import gpus_by_state
from tests.app.findings.series import (
    MINUTE,
    T0,
    G,
    H,
    evaluate,
    findings,
    free,
    held,
    make_node,
    write_gpu,
    write_host,
    write_ledger,
)

HOUR = timedelta(hours=1)


class TestIdleAllocated:
    def _setup(self, session: Session) -> None:
        node, (gpu,) = make_node(session)
        write_gpu(session, gpu, [held(85)] * 20 + [held(0, power=90)] * 50 + [held(85)] * 10)
        write_host(session, node, [H()] * 80)
        write_ledger(session, gpu, [T0, T0 + HOUR], hourly="4.00")

    def test_not_before_thirty_minutes(self, session: Session) -> None:
        self._setup(session)
        evaluate(session, T0 + 49 * MINUTE)  # 29 idle minutes so far
        assert findings(session) == []

    def test_opens_and_stays_open_while_idle(self, session: Session) -> None:
        self._setup(session)
        evaluate(session, T0 + 60 * MINUTE)
        (f,) = findings(session, "idle_allocated")
        assert f.state == "open"
        assert (f.started_at, f.opened_at, f.last_seen_at) == (
            T0 + 20 * MINUTE, T0 + 50 * MINUTE, T0 + 59 * MINUTE,
        )  # fmt: skip
        assert f.resolved_at is None
        assert (f.owner, f.team) == ("job 4242 (vision)", "ml")
        assert f.evidence["gpu"]["uuid"] == "GPU-node-a-0"
        assert f.evidence["holder"] == {
            "user": "ana",
            "namespace": "ml",
            "job": "4242",
            "account": "vision",
        }

    def test_resolves_when_busy_again_with_the_cost_of_its_idle_time(
        self, session: Session
    ) -> None:
        self._setup(session)
        evaluate(session, T0 + 60 * MINUTE)
        evaluate(session, T0 + 80 * MINUTE)
        (f,) = findings(session, "idle_allocated")
        assert (f.state, f.last_seen_at, f.resolved_at) == (
            "resolved", T0 + 69 * MINUTE, T0 + 70 * MINUTE,
        )  # fmt: skip
        # 50 idle minutes of a GPU whose observed hour costs 4.00
        assert f.cost_per_hour == Decimal("4.00")
        assert f.cost_so_far == pytest.approx(Decimal("4.00") * 50 / 60, abs=Decimal("1e-12"))
        assert (f.currency, f.cost_source) == ("USD", "estimated")
        assert f.evidence["minutes"] == 50


def test_hard_cases_stay_quiet(session: Session) -> None:
    """Gaps between epochs, checkpoint pauses, evaluations at low utilization, light jobs."""
    node, (gpu, light) = make_node(session, gpus=2)
    epoch = [held(95)] * 12 + [held(0, power=90)] * 5
    checkpoint = [held(95)] * 20 + [held(0, power=120)] * 8
    evaluation = [held(10)] * 40
    write_gpu(session, gpu, (epoch + checkpoint) * 3 + evaluation + epoch * 2)
    write_gpu(session, light, [held(70, memory=2 * 1024**3)] * 200)  # uses 2 of 80 GiB
    write_host(session, node, [H()] * 200)
    evaluate(session, T0 + 200 * MINUTE)
    assert findings(session) == []


def test_an_allocated_gpu_without_a_process_is_idle_allocated(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [held(0, power=75)] * 45)  # the job holds it; nothing runs
    write_host(session, node, [H()] * 45)
    evaluate(session, T0 + 45 * MINUTE)
    assert [f.kind for f in findings(session)] == ["idle_allocated"]


def test_idle_unallocated_after_an_hour(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [free()] * 70)
    write_host(session, node, [H()] * 70)
    write_ledger(session, gpu, [T0, T0 + HOUR], owner="")
    evaluate(session, T0 + 59 * MINUTE)
    assert findings(session) == []
    evaluate(session, T0 + 70 * MINUTE)
    (f,) = findings(session)
    assert (f.kind, f.state, f.owner, f.opened_at) == ("idle_unallocated", "open", "", T0 + HOUR)
    assert f.cost_so_far == pytest.approx(Decimal("4.00") * 70 / 60, abs=Decimal("1e-12"))


def test_starved_jobs_whose_utilization_never_reaches_zero_fire(session: Session) -> None:
    node, (gpu,) = make_node(session)
    util = [25, 55, 30, 45, 20, 50] * 5  # never 0, mostly below 60 %
    write_gpu(session, gpu, [held(85)] * 10 + [held(u) for u in util] + [held(85)] * 10)
    write_host(session, node, [H()] * 10 + [H(iowait=0.35, disk=5e8)] * 30 + [H()] * 10)
    write_ledger(session, gpu, [T0], hourly="4.00")
    evaluate(session, T0 + 50 * MINUTE)
    (f,) = findings(session)
    assert (f.kind, f.state, f.started_at, f.opened_at) == (
        "data_starvation", "resolved", T0 + 10 * MINUTE, T0 + 20 * MINUTE,
    )  # fmt: skip
    assert f.evidence["io_wait_mean_ratio"] == pytest.approx(0.35)
    # the unused share of the price of those 30 minutes: 1 - mean utilization (37.5 %)
    assert f.cost_so_far == pytest.approx(
        Decimal("4.00") / 2 * Decimal("0.625"), abs=Decimal("1e-9")
    )


def test_energy_waste_on_prem_is_priced_by_its_energy(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [free(0, power=250)] * 20 + [free(0, power=70)] * 5)
    write_host(session, node, [H()] * 25)
    # the on-prem hour: 0.30 per kWh x PUE 1.5 = 0.45 per kWh, for 1 kWh of this GPU
    session.execute(insert(CostLedgerHour), [{
        "node_id": gpu.node_id, "hour": T0, "gpu_id": gpu.id, "owner": "", "currency": "EUR",
        "team": "", "project": "", "source": "onprem", "gpu_seconds": 3600.0,
        "cost": Decimal("1.20"), "utilized_cost": Decimal(0), "idle_cost": Decimal(0),
        "unused_cost": Decimal(0), "unmeasured_cost": Decimal(0), "energy_joules": 3.6e6,
        "energy_cost": Decimal("0.45"),
    }])  # fmt: skip
    evaluate(session, T0 + 25 * MINUTE)
    (f,) = findings(session, "energy_waste")
    assert (f.state, f.opened_at, f.last_seen_at) == (
        "resolved",
        T0 + 15 * MINUTE,
        T0 + 19 * MINUTE,
    )
    kwh = 250 * 20 * 60 / 3.6e6
    assert f.evidence["energy_kwh"] == pytest.approx(kwh)
    assert f.evidence["excess_energy_kwh"] == pytest.approx((250 - 70) * 20 * 60 / 3.6e6)
    assert (f.currency, f.cost_source) == ("EUR", "onprem")
    assert float(f.cost_so_far or 0) == pytest.approx(kwh * 0.45)


def test_unpriced_hours_have_no_cost(session: Session) -> None:
    node, (gpu, other) = make_node(session, gpus=2)
    write_gpu(session, gpu, [held(0)] * 40)
    write_gpu(session, other, [held(0)] * 40)
    write_host(session, node, [H()] * 40)
    write_ledger(session, gpu, [T0], source="unpriced")  # `other` has no ledger row at all
    evaluate(session, T0 + 40 * MINUTE)
    idle = findings(session, "idle_allocated")
    assert len(idle) == 2
    assert {(f.cost_per_hour, f.cost_so_far, f.cost_source) for f in idle} == {
        (None, None, "unpriced")
    }


class TestStaleAgent:
    def test_a_silent_node_is_stale_until_it_reports_again(self, session: Session) -> None:
        node, (gpu,) = make_node(session)
        write_host(session, node, [H()] * 10)
        write_gpu(session, gpu, [held(80)] * 10)
        now = T0 + 20 * MINUTE
        evaluate(session, now)
        (f,) = findings(session, "stale_agent")
        assert (f.state, f.gpu_id, f.started_at, f.opened_at) == (
            "open", None, T0 + 10 * MINUTE, T0 + 13 * MINUTE,
        )  # fmt: skip
        assert f.cost_source == "none"
        # the node's GPUs show stale, not ok, in the fleet summary
        assert gpus_by_state(session, now=now)["stale"] == 1
        write_host(session, node, [H()] * 5, start=T0 + 20 * MINUTE)
        evaluate(session, T0 + 25 * MINUTE)
        (f,) = findings(session, "stale_agent")
        assert (f.state, f.resolved_at) == ("resolved", T0 + 20 * MINUTE)

    def test_a_missing_minute_is_not_stale(self, session: Session) -> None:
        node, _ = make_node(session)
        write_host(session, node, [H()] * 10 + [None] + [H()] * 10)
        evaluate(session, T0 + 21 * MINUTE)
        assert findings(session) == []


class TestOverrides:
    @pytest.fixture(autouse=True)
    def _restore(self) -> object:
        saved = settings.findings_overrides
        yield
        configure(findings_overrides=saved)

    def _idle(self, session: Session, namespace: str) -> None:
        node, (gpu,) = make_node(session, name=f"node-{namespace}")
        job = {"job_id": "7", "namespace": namespace}
        write_gpu(session, gpu, [G(util=0.0, power=300.0, holder=job)] * 40)
        write_host(session, node, [H()] * 40)

    def test_a_team_can_lengthen_the_minimum_duration(self, session: Session) -> None:
        configure(findings_overrides={"vision": {"idle_allocated": {"minutes": 60}}})
        self._idle(session, "vision")
        self._idle(session, "speech")
        evaluate(session, T0 + 40 * MINUTE)
        teams = {f.team for f in findings(session, "idle_allocated")}
        assert teams == {"speech"}

    def test_a_team_can_mute_a_kind(self, session: Session) -> None:
        configure(findings_overrides={"vision": {"energy_waste": {"mute": True}}})
        self._idle(session, "vision")
        evaluate(session, T0 + 40 * MINUTE)
        assert {f.kind for f in findings(session)} == {"idle_allocated"}

    def test_an_unknown_parameter_is_refused(self, session: Session) -> None:
        from app.findings.rules import BadOverride

        configure(findings_overrides={"vision": {"idle_allocated": {"minutez": 60}}})
        self._idle(session, "vision")
        with pytest.raises(BadOverride, match="minutez"):
            evaluate(session, T0 + 40 * MINUTE)


def test_the_cursor_never_goes_back(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [held(0)] * 40)
    write_host(session, node, [H()] * 40)
    evaluate(session, T0 + 40 * MINUTE)
    before = [(f.id, f.last_seen_at, f.updated_at) for f in findings(session)]
    stats = evaluate(session, T0 + 35 * MINUTE)
    assert stats.window_end == T0 + 40 * MINUTE
    assert [(f.id, f.last_seen_at, f.updated_at) for f in findings(session)] == before


def test_findings_of_a_deleted_gpu_go_with_it(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [held(0)] * 40)
    write_host(session, node, [H()] * 40)
    evaluate(session, T0 + 40 * MINUTE)
    assert findings(session)
    session.delete(gpu)
    session.flush()
    session.expire_all()
    assert session.scalars(select(Finding).where(Finding.gpu_id.is_not(None))).all() == []


def test_a_node_without_gpus_can_be_stale(session: Session) -> None:
    node, _ = make_node(session, name="cpu-only", gpus=0)
    write_host(session, node, [H()] * 10)
    evaluate(session, T0 + 20 * MINUTE)
    assert [(f.kind, f.node_id, f.gpu_id) for f in findings(session)] == [
        ("stale_agent", node.id, None)
    ]


def test_findings_the_evaluator_did_not_write_are_left_alone(session: Session) -> None:
    node, (gpu,) = make_node(session)
    write_gpu(session, gpu, [held(85)] * 40)
    write_host(session, node, [H()] * 40)
    other = Finding(kind="throttling", state="open", gpu_id=gpu.id, node_id=node.id, team="ml",
                    owner="", started_at=T0, opened_at=T0, last_seen_at=T0, cost_source="none",
                    evidence={}, updated_at=T0)  # fmt: skip
    session.add(other)
    session.flush()
    evaluate(session, T0 + 40 * MINUTE)
    assert [(f.kind, f.state) for f in findings(session)] == [("throttling", "open")]
