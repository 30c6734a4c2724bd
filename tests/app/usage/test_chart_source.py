"""The fleet chart reads raw samples for short windows and minute rollups for long ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.nodes.service import RAW_CHART_MAX, utilization_since
from app.usage import service
from tests.app.usage.conftest import Ingest
from tests.factories.nodes import make_batch

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_short_window_reads_raw_samples_long_window_minute_means(
    session: Session, ingest: Ingest
) -> None:
    # 1 GPU, 12 samples 10 s apart: two whole minutes, utilization 50 %.
    ingest(make_batch(gpus=1, samples_per_gpu=12, start=T0, step_seconds=10, utilization=50.0))
    service.rollup_pending(session)
    end = T0 + timedelta(minutes=2)

    raw = utilization_since(session, since=T0, now=end)
    assert len(raw) == 12
    assert {p.gpu for p in raw} == {"node-a/gpu0"}

    minutes = utilization_since(session, since=T0, now=T0 + RAW_CHART_MAX + timedelta(minutes=1))
    assert [p.ts for p in minutes] == [T0, T0 + timedelta(minutes=1)]
    assert all(p.utilization == 50.0 for p in minutes)
