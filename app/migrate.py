"""Run Alembic from code: ``gpuledger db upgrade`` and the test fixtures use these."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config that needs no alembic.ini on disk (works from an installed wheel)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["configure_logging"] = False
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str | None = None) -> None:
    """Raise if the models and the migrations disagree."""
    command.check(alembic_config(url))


class SchemaOutOfDate(RuntimeError):
    """The database is not at the migrations' head."""


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from app.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def ensure_current(*, upgrade_embedded: bool = True) -> None:
    """Make sure the schema is at head before a command uses it.

    The embedded SQLite database is simply brought up to date; a server database (PostgreSQL)
    is upgraded only by ``gpuledger db upgrade``, so here it gets a clear error instead.
    """
    from alembic.script import ScriptDirectory

    from app.config import settings

    url = settings.effective_database_url
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    current = current_revision(url)
    if current == head:
        return
    if settings.is_sqlite and upgrade_embedded:
        upgrade()
        return
    raise SchemaOutOfDate(
        f"the database is at schema revision {current or 'none'}, this GPU Ledger needs {head}: "
        "run 'gpuledger db upgrade' first"
    )
