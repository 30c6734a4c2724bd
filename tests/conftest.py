"""Shared fixtures: both database dialects, a transactional session, the ASGI client.

PostgreSQL and Redis legs run when ``GPULEDGER_TEST_POSTGRES_URL`` / ``GPULEDGER_TEST_REDIS_URL``
are set (``scripts/test.sh`` sets them when it finds local servers). With
``GPULEDGER_TEST_REQUIRE_SERVICES=1`` (CI) a missing service fails the run instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import migrate
from app.config import settings
from app.db import get_session, make_engine
from app.main import create_app

POSTGRES_URL = os.environ.get("GPULEDGER_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("GPULEDGER_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("GPULEDGER_TEST_REQUIRE_SERVICES") == "1"
DIALECTS = ["sqlite", "postgres"]


def needs_service(name: str, url: str | None, env: str) -> str:
    """The service URL, or skip (fail under GPULEDGER_TEST_REQUIRE_SERVICES=1) without one."""
    if url:
        return url
    if REQUIRE_SERVICES:
        pytest.fail(
            f"{name} is required here (GPULEDGER_TEST_REQUIRE_SERVICES=1) but {env} is unset"
        )
    pytest.skip(f"{name} leg skipped: set {env} to run it")


def postgres_database(suffix: str) -> str:
    """A fresh, empty PostgreSQL database for this xdist worker; returns its URL."""
    base = needs_service("PostgreSQL", POSTGRES_URL, "GPULEDGER_TEST_POSTGRES_URL")
    # The pid keeps concurrent test runs on one server (several checkouts, CI) apart.
    name = f"gpuledger_test_{suffix}_{os.getpid()}"
    admin = make_engine(str(make_url(base).set(drivername="postgresql+psycopg")))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return (
        make_url(base)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = make_engine(str(make_url(url).set(database="postgres")))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_urls() -> Iterator[dict[str, str]]:
    """Lazily built, migrated databases per dialect (one per xdist worker), dropped at the end."""
    urls: dict[str, str] = {}
    yield urls
    for engine in _engines.values():
        engine.dispose()
    if "postgres" in urls:
        drop_postgres_database(urls["postgres"])


def _migrated(dialect: str, cache: dict[str, str], tmp: Path) -> str:
    if dialect not in cache:
        if dialect == "sqlite":
            url = f"sqlite:///{tmp / 'gpuledger-test.db'}"
        else:
            url = postgres_database("main")
        migrate.upgrade(url)
        cache[dialect] = url
    return cache[dialect]


_engines: dict[str, Engine] = {}


@pytest.fixture(params=DIALECTS)
def engine(
    request: pytest.FixtureRequest,
    migrated_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Engine:
    """A migrated database engine, once per dialect (tests must not commit; see ``session``)."""
    url = _migrated(request.param, migrated_urls, tmp_path_factory.getbasetemp())
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def client(session: Session) -> Iterator[TestClient]:
    """The ASGI app over the test session (its commits are savepoints)."""
    app = create_app(embedded_jobs=False)

    def override() -> Iterator[Session]:
        # As app.db.session_scope, but the commit and rollback are of a savepoint.
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    app.dependency_overrides[get_session] = override
    with TestClient(app) as c:
        yield c


@pytest.fixture
def redis_url() -> str:
    return needs_service("Redis", REDIS_URL, "GPULEDGER_TEST_REDIS_URL")


@pytest.fixture
def worker(redis_url: str) -> Iterator[dict[str, str]]:
    """A migrated, committed PostgreSQL database and a real Celery worker on a queue of its own.

    Yields ``db_url``, ``redis_url`` and ``queue``; send tasks with
    ``make_celery(redis_url).send_task(name, queue=queue)``.
    """
    db_url = postgres_database("worker")
    migrate.upgrade(db_url)
    queue = f"gpuledger-test-{os.getpid()}"
    env = {**os.environ, "GPULEDGER_DATABASE_URL": db_url, "GPULEDGER_REDIS_URL": redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "app.worker", "worker", "--pool=solo",
         "-Q", queue, "--loglevel=WARNING", "--without-heartbeat", "--without-gossip",
         "--without-mingle"],
        env=env, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    try:
        yield {"db_url": db_url, "redis_url": redis_url, "queue": queue}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        drop_postgres_database(db_url)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path / "data")
    monkeypatch.setattr(settings, "database_url", None)
    monkeypatch.setattr(settings, "redis_url", None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, url, env in (
        ("PostgreSQL", POSTGRES_URL, "GPULEDGER_TEST_POSTGRES_URL"),
        ("Redis", REDIS_URL, "GPULEDGER_TEST_REDIS_URL"),
    ):
        if url:
            terminalreporter.write_line(f"{name} leg: on ({env} is set)")
        else:
            terminalreporter.write_line(
                f"{name} leg: SKIPPED. Start {name} locally or set {env} to run it."
            )
