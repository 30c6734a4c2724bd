"""A real Prometheus for tests: find the binary, run it against a scrape config, query it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SERVICES = os.environ.get("GPULEDGER_TEST_REQUIRE_SERVICES") == "1"
POLLS = 240  # of POLL_SECONDS each: Prometheus must start, scrape once and answer
POLL_SECONDS = 0.25


def binary(name: str) -> str:
    """The path of ``name`` (prometheus, promtool); skip without it, fail in CI."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    why = f"{name} is not installed (Debian package; bash scripts/system-deps.sh)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{why}, and GPULEDGER_TEST_REQUIRE_SERVICES=1")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now ([] while Prometheus is not up)."""
        url = f"{self.url}/api/v1/query?query={urllib.parse.quote(promql)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            e.close()
            return []
        except OSError:
            return []
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self, promql: str, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``done(result)``; the last result either way."""
        result: list[dict[str, Any]] = []
        for _ in range(POLLS):
            result = self.query(promql)
            if done(result):
                break
            time.sleep(POLL_SECONDS)
        return result


@contextmanager
def running_prometheus(tmp_path: Path, scrape_configs: str) -> Iterator[Prometheus]:
    """A Prometheus scraping every second with ``scrape_configs`` (YAML list items, indented 2)."""
    prometheus = binary("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n{scrape_configs}")
    web = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdout=out,
            stderr=out,
        )
    try:
        yield Prometheus(f"http://127.0.0.1:{web}", log)
    finally:
        proc.terminate()
        proc.wait(20)
