"""The ``gpuledger`` command: database, credentials and help."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import cli
from app.auth.service import hash_secret
from app.db import reset_engine, session_scope
from app.models import ApiKey, Node, NodeToken

ROOT = Path(__file__).parents[2]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    reset_engine()
    yield tmp_path / "ledger"
    reset_engine()


def test_db_upgrade_token_and_apikey(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "upgrade", "--data-dir", str(data_dir)]) == 0
    assert (data_dir / "gpuledger.db").exists()
    capsys.readouterr()

    assert cli.main(["token", "create", "--node", "gpu-node-07", "--data-dir", str(data_dir)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("gpln_")
    assert (
        cli.main(
            ["--data-dir", str(data_dir), "apikey", "create", "--name", "bob", "--role", "finance"]
        )
        == 0
    )
    key = capsys.readouterr().out.strip()
    assert key.startswith("gplk_")

    with session_scope() as session:
        node = session.scalars(select(Node).where(Node.name == "gpu-node-07")).one()
        stored = session.scalars(select(NodeToken).where(NodeToken.node_id == node.id)).one()
        assert stored.token_hash == hash_secret(token)
        api_key = session.scalars(select(ApiKey)).one()
        assert (api_key.name, api_key.role) == ("bob", "finance")

    assert cli.main(["db", "check", "--data-dir", str(data_dir)]) == 0


def test_bad_role_is_refused(data_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["apikey", "create", "--name", "x", "--role", "root", "--data-dir", str(data_dir)])
    assert exc.value.code == 2


def test_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("demo", "serve", "db", "token", "apikey", "agent"):
        assert command in out


def test_agent_help_goes_to_the_agent() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "agent", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--server" in out
    assert "--simulate" in out


def test_server_database_behind_head_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.config import settings
    from tests.conftest import drop_postgres_database, postgres_database

    url = postgres_database("cli")
    try:
        monkeypatch.setattr(settings, "database_url", url)
        reset_engine()
        assert cli.main(["token", "create", "--node", "n1"]) == 1
        err = capsys.readouterr().err
        assert "run 'gpuledger db upgrade' first" in err
    finally:
        reset_engine()
        drop_postgres_database(url)
