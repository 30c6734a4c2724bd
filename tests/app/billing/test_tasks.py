"""billing.import_file on a real Celery worker (Redis + PostgreSQL), followed through the API."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.service import Role
from app.billing import progress, service
from app.config import settings
from app.db import get_session, make_engine
from app.main import create_app
from app.worker import make_celery
from bench import billing_samples as samples
from tests.factories.nodes import create_api_key

ROWS = 20_000  # about 12 MB: above the API's in-request limit, so an upload would be queued


def test_worker_imports_a_large_upload(
    worker: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upload-cur2.csv"
    expected = samples.write_cur2(path, ROWS)
    engine = make_engine(worker["db_url"])
    with Session(engine) as s, s.begin():
        record = service.create_import(s, file_name="cur2.csv", path=path, options={})
        key = create_api_key(s, role=Role.VIEWER)
        import_id, size = record.id, record.file_bytes
    assert size > 8 << 20

    celery = make_celery(worker["redis_url"])
    result = celery.send_task("billing.import_file", args=[import_id], queue=worker["queue"])
    # A generous bound so a broken worker fails the test instead of hanging it.
    assert result.get(timeout=120) == "succeeded"

    # The API reads the committed database and the worker's progress in Redis.
    monkeypatch.setattr(settings, "redis_url", worker["redis_url"])
    app = create_app(embedded_jobs=False)

    def committed() -> Iterator[Session]:
        with Session(engine) as s, s.begin():
            yield s

    app.dependency_overrides[get_session] = committed
    with TestClient(app) as client:
        got = client.get(f"/api/v1/billing/imports/{import_id}",
                         headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "succeeded"
    assert (body["rows_read"], body["rows_accepted"]) == (ROWS, ROWS)
    assert body["bytes_read"] == body["file_bytes"] == size
    assert Decimal(body["totals"]["USD"]["BilledCost"]) == expected
    # What GET shows as "progress" while the import runs: the worker's last report.
    assert progress.get_progress(import_id) == {
        "bytes_read": body["file_bytes"], "file_bytes": body["file_bytes"], "rows_read": ROWS,
    }  # fmt: skip
    assert not path.exists()  # the stored upload is removed once imported
    engine.dispose()
