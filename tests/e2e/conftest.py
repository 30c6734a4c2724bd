"""A running ``gpuledger demo`` for end-to-end tests (HTTP and browser)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    url: str
    key: str
    data_dir: Path

    def get_json(self, path: str) -> dict:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = (data_dir / "demo.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    key_file = data_dir / "demo-admin-key"
    try:
        for _ in range(600):  # the demo writes its key once the database is ready
            if key_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (data_dir / "demo.log").read_text()
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # then the server starts listening
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, (data_dir / "demo.log").read_text()
        yield Demo(url, key_file.read_text().strip(), data_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
