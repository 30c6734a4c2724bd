"""The fleet summary: mean draw over the observed time, GPU states at a given ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.usage import query, service
from tests.app.usage.conftest import Ingest
from tests.factories.nodes import make_batch

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUR = 360  # samples of 10 s


def test_power_mean_is_the_draw_over_the_observed_time(session: Session, ingest: Ingest) -> None:
    """An hour of two GPUs at 300 W in a day's window is a 600 W fleet, not 600 / 24 W."""
    ingest(make_batch(gpus=2, samples_per_gpu=HOUR, start=T0))
    service.rollup_pending(session)
    s = query.fleet_summary(
        session, start=T0 - timedelta(hours=12), end=T0 + timedelta(hours=12), now=T0
    )
    assert s.power_mean_watts == pytest.approx(600.0)
    assert s.gpu_hours == pytest.approx(2.0)


def test_power_mean_weights_hours_by_their_observed_time(session: Session, ingest: Ingest) -> None:
    """Two GPUs for an hour, then one: 600 W, then 300 W, so 450 W on average."""
    ingest(make_batch(gpus=2, samples_per_gpu=HOUR, start=T0))
    later = make_batch(gpus=1, samples_per_gpu=HOUR, start=T0 + timedelta(hours=1))
    later["batch_id"] = "later"
    ingest(later)
    service.rollup_pending(session)
    s = query.fleet_summary(session, start=T0, end=T0 + timedelta(days=1), now=T0)
    assert s.power_mean_watts == pytest.approx(450.0)


def test_power_mean_without_data_is_none(session: Session) -> None:
    s = query.fleet_summary(session, start=T0, end=T0 + timedelta(hours=1), now=T0)
    assert s.power_mean_watts is None


def test_gpu_states_are_taken_at_now(session: Session, ingest: Ingest) -> None:
    ingest(make_batch(gpus=2, samples_per_gpu=30, start=T0, utilization=90.0))
    service.rollup_pending(session)
    end = T0 + timedelta(minutes=5)
    fresh = query.fleet_summary(session, start=T0, end=end, now=end)
    assert fresh.gpus_by_state["busy"] == 2
    later = query.fleet_summary(session, start=T0, end=end, now=end + timedelta(hours=1))
    assert later.gpus_by_state["stale"] == 2
