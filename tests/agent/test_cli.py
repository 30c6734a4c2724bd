"""The agent's command line: help, settings precedence, --once --print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import build_parser, main, settings_from_args
from agent.config import from_env, read_config_file
from app.ingest.schemas import IngestBatch


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--config",
        "--server",
        "--token",
        "--metrics-port",
        "--no-ship",
        "--spool-dir",
        "--spool-max-bytes",
        "--no-cloud-metadata",
        "--once",
        "--print",
        "--simulate",
        "--scenario",
        "--proc-root",
    ):
        assert option in text, option
    assert "0 turns /metrics off" in text


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'server = "https://file"\ninterval = 5\nmetrics-port = 9500\n'
        'cluster = "from-file"\n[labels]\nteam = "ml"\n'
    )
    env = {"GPULEDGER_AGENT_INTERVAL": "2", "GPULEDGER_AGENT_CLUSTER": "from-env"}
    base = from_env(env, config_file=config)
    assert (base.server, base.interval, base.metrics_port, base.cluster) == (
        "https://file",
        2.0,
        9500,
        "from-env",
    )
    assert base.labels == {"team": "ml"}
    args = build_parser().parse_args(["--cluster", "from-flag", "--metrics-port", "0"])
    s = settings_from_args(args, base)
    assert (s.cluster, s.metrics_port, s.interval) == ("from-flag", 0, 2.0)


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("intervall = 5\n")
    with pytest.raises(ValueError, match="unknown setting 'intervall'"):
        read_config_file(config)


def test_env_switches() -> None:
    s = from_env({"GPULEDGER_AGENT_SHIP": "false", "GPULEDGER_AGENT_CLOUD_METADATA": "0"})
    assert (s.ship, s.cloud_metadata) == (False, False)


def test_once_print_is_one_valid_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--simulate", "3", "--scenario", "xid", "--once", "--print"]) == 0
    batch = json.loads(capsys.readouterr().out)
    IngestBatch.model_validate(batch)
    assert len(batch["gpus"]) == 3


def test_shipping_needs_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--simulate", "1", "--metrics-port", "0"]) == 2
    assert "--server and --token" in capsys.readouterr().err


class TestTokenFile:
    """A DaemonSet mounts one Secret key per node; the agent reads its own from a file."""

    def test_token_read_from_file(self, tmp_path: Path) -> None:
        from agent.config import resolve_token

        (tmp_path / "gpu-node-7").write_text("gpln_secret-of-node-7\n")
        args = build_parser().parse_args(["--token-file", str(tmp_path / "gpu-node-7")])
        settings = settings_from_args(args, base=from_env({}))
        resolve_token(settings)
        assert settings.token == "gpln_secret-of-node-7"

    def test_env_names_the_file_and_a_token_wins(self, tmp_path: Path) -> None:
        from agent.config import resolve_token

        path = tmp_path / "token"
        path.write_text("gpln_from-file")
        settings = from_env({"GPULEDGER_AGENT_TOKEN_FILE": str(path)})
        resolve_token(settings)
        assert settings.token == "gpln_from-file"
        explicit = from_env(
            {"GPULEDGER_AGENT_TOKEN_FILE": str(path), "GPULEDGER_AGENT_TOKEN": "gpln_flag"}
        )
        resolve_token(explicit)
        assert explicit.token == "gpln_flag"

    @pytest.mark.parametrize("content", [None, "  \n"])
    def test_missing_or_empty_file_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
    ) -> None:
        path = tmp_path / "token"
        if content is not None:
            path.write_text(content)
        code = main(
            [
                "--server",
                "http://127.0.0.1:9",
                "--token-file",
                str(path),
                "--spool-dir",
                str(tmp_path / "spool"),
                "--metrics-port",
                "0",
            ]
        )
        assert code == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert ("empty" if content is not None else "cannot read") in err
