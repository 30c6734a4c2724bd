"""Many agents delivering at once to the embedded SQLite database: no 'database is locked'."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import migrate
from app.auth import service as auth_service
from app.config import configure
from app.db import reset_engine, session_scope
from app.main import create_app
from app.models import GpuSample
from tests.factories.nodes import make_batch

AGENTS = 6
BATCHES = 8


def test_concurrent_ingest_on_sqlite(tmp_path: Path) -> None:
    configure(data_dir=tmp_path, database_url=None)
    reset_engine()
    try:
        migrate.upgrade()
        with session_scope() as session:
            tokens = {
                f"node-{i}": auth_service.create_node_token(session, node_name=f"node-{i}").secret
                for i in range(AGENTS)
            }
        app = create_app(embedded_jobs=False)
        codes: Counter[int] = Counter()
        lock = threading.Lock()

        def deliver(node: str) -> None:
            with TestClient(app) as client:
                for k in range(BATCHES):
                    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=k)
                    batch = make_batch(node=node, gpus=4, samples_per_gpu=5, start=start)
                    r = client.post(
                        "/api/v1/ingest",
                        content=json.dumps(batch),
                        headers={"Authorization": f"Bearer {tokens[node]}"},
                    )
                    with lock:
                        codes[r.status_code] += 1

        threads = [threading.Thread(target=deliver, args=(node,)) for node in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == Counter({200: AGENTS * BATCHES})
        with session_scope() as session:
            stored = session.scalar(select(func.count()).select_from(GpuSample))
        assert stored == AGENTS * BATCHES * 4 * 5
    finally:
        reset_engine()
