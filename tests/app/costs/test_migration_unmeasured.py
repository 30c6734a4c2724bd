"""Migration 0007 on a ledger written before it: rows get 0 unmeasured cost, and the hours whose
rollups have time without a utilization reading are queued for re-pricing. Both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Float, Integer, String, column, insert, select, table

from app import migrate
from app.db import UTCDateTime, make_engine
from app.kit.money import Money
from tests.conftest import drop_postgres_database, postgres_database

H = datetime(2026, 11, 1, 10, tzinfo=UTC)
NOW = datetime(2026, 11, 2, tzinfo=UTC)

NODES = table("nodes", column("id", Integer), column("name", String), column("labels", JSON),
              column("created_at", UTCDateTime()))  # fmt: skip
GPUS = table("gpus", column("id", Integer), column("uuid", String), column("node_id", Integer),
             column("index", Integer), column("status", String),
             column("created_at", UTCDateTime()))  # fmt: skip
ROLLUPS = table("gpu_hour_rollups", column("gpu_id", Integer), column("bucket", UTCDateTime()),
                column("samples", Integer), column("observed_seconds", Float),
                column("utilization_mean", Float), column("idle_seconds", Float),
                column("low_util_seconds", Float), column("busy_seconds", Float))  # fmt: skip
MONEY = ("cost", "utilized_cost", "idle_cost", "unused_cost", "energy_cost")


def _ledger_columns() -> list[Any]:
    return [column("node_id", Integer), column("owner", String), column("currency", String),
            column("team", String), column("project", String), column("source", String),
            column("gpu_seconds", Float), column("energy_joules", Float),
            *(column(m, Money()) for m in (*MONEY, "unmeasured_cost"))]  # fmt: skip


HOURS = table("cost_ledger_hours", column("hour", UTCDateTime()), column("gpu_id", Integer),
              *_ledger_columns())  # fmt: skip
DAYS = table("cost_ledger_days", column("day", UTCDateTime()), *_ledger_columns())
DIRTY = table("cost_dirty", column("node_id", Integer), column("hour", UTCDateTime()))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'unmeasured.db'}"
        return
    database = postgres_database("unmeasured")
    yield database
    drop_postgres_database(database)


def _ledger(**values: Any) -> dict[str, Any]:
    return {"node_id": 1, "owner": "", "currency": "USD", "team": "ml", "project": "ml",
            "source": "estimated", "gpu_seconds": 3600.0, "energy_joules": 0.0,
            **{m: Decimal("1.5") for m in MONEY}, **values}  # fmt: skip


def test_old_rows_get_zero_and_unmeasured_hours_are_queued(url: str) -> None:
    migrate.upgrade(url, "0006")
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(insert(NODES), [{"id": 1, "name": "mig", "labels": {}, "created_at": NOW}])
            c.execute(insert(GPUS), [{"id": 10, "uuid": "GPU-mig-0", "node_id": 1, "index": 0,
                                      "status": "ok", "created_at": NOW}])  # fmt: skip
            # Hour 0: no reading at all (MIG). Hour 1: all measured, the seconds summed in
            # another order (float rounding). Hour 2: half without a reading, never priced.
            c.execute(insert(ROLLUPS), [
                {"gpu_id": 10, "bucket": H, "samples": 360, "observed_seconds": 3600.0,
                 "utilization_mean": None, "idle_seconds": 0.0, "low_util_seconds": 0.0,
                 "busy_seconds": 0.0},
                {"gpu_id": 10, "bucket": H + timedelta(hours=1), "samples": 360,
                 "observed_seconds": 0.1 + 0.2 + 3599.7, "utilization_mean": 50.0,
                 "idle_seconds": 0.1, "low_util_seconds": 0.2, "busy_seconds": 3599.7},
                {"gpu_id": 10, "bucket": H + timedelta(hours=2), "samples": 360,
                 "observed_seconds": 3600.0, "utilization_mean": 50.0, "idle_seconds": 0.0,
                 "low_util_seconds": 0.0, "busy_seconds": 1800.0},
            ])  # fmt: skip
            # The ledger as written before the column existed.
            c.execute(insert(HOURS), [_ledger(hour=H + timedelta(hours=h), gpu_id=10)
                                      for h in (0, 1)])  # fmt: skip
            c.execute(insert(DAYS), [_ledger(day=H.replace(hour=0), gpu_seconds=7200.0)])
    finally:
        engine.dispose()

    migrate.upgrade(url, "0007")
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            hours = c.execute(select(HOURS.c.hour, HOURS.c.unmeasured_cost)).all()
            days = c.execute(select(DAYS.c.unmeasured_cost)).scalars().all()
            dirty = c.execute(select(DIRTY.c.node_id, DIRTY.c.hour)).all()
    finally:
        engine.dispose()
    assert sorted(hours) == [(H, Decimal(0)), (H + timedelta(hours=1), Decimal(0))]
    assert days == [Decimal(0)]
    # Only the priced hour with time that had no reading is re-priced by the next run.
    assert dirty == [(1, H)]
