"""Agent overhead: CPU seconds per collection cycle and peak RSS, against node_exporter.

``python -m bench.agent_overhead`` (``--quick`` for ~15 s). Runs the agent as a subprocess
with 8 simulated GPUs at a 1 s interval, shipping to a local sink and scraped once a second,
and in the same run ``prometheus-node-exporter`` scraped at the same rate. Steady-state CPU
(after a warm-up) is read from ``/proc/<pid>/stat``, peak RSS from ``VmHWM``. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
GPUS = 8
INTERVAL_SECONDS = 1.0
WARMUP_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310  (loopback)
        return bytes(r.read())


def wait_for(url: str, tries: int = 200) -> None:
    for _ in range(tries):
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


class Sink(BaseHTTPRequestHandler):
    """Accepts ingest POSTs like the backend would, without the backend's cost."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def collections(metrics: bytes) -> float:
    m = re.search(rb"^gpuledger_agent_collections_total (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0


def run(seconds: float) -> dict[str, Any]:
    exporter = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
    if not Path(exporter).exists():
        raise SystemExit("prometheus-node-exporter is not installed (bash scripts/system-deps.sh)")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="gpuledger-bench-"))
    agent_port, ne_port = free_port(), free_port()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "--simulate",
            str(GPUS),
            "--interval",
            str(INTERVAL_SECONDS),
            "--server",
            f"http://127.0.0.1:{sink.server_port}",
            "--token",
            "bench",
            "--spool-dir",
            str(tmp / "spool"),
            "--metrics-port",
            str(agent_port),
            "--metrics-address",
            "127.0.0.1",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ne = subprocess.Popen(
        [exporter, f"--web.listen-address=127.0.0.1:{ne_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent_url = f"http://127.0.0.1:{agent_port}/metrics"
    ne_url = f"http://127.0.0.1:{ne_port}/metrics"
    try:
        wait_for(agent_url)
        wait_for(ne_url)
        end_warmup = time.monotonic() + WARMUP_SECONDS
        while time.monotonic() < end_warmup:
            get(agent_url)
            get(ne_url)
            time.sleep(INTERVAL_SECONDS)
        agent_cpu0, ne_cpu0 = cpu_seconds(agent.pid), cpu_seconds(ne.pid)
        cycles0 = collections(get(agent_url))
        scrapes = 0
        start = time.monotonic()
        next_tick = start
        while time.monotonic() - start < seconds:
            next_tick += INTERVAL_SECONDS
            time.sleep(max(0.0, next_tick - time.monotonic()))
            get(ne_url)
            scrapes += 1
            cycles1 = collections(get(agent_url))  # Prometheus scrapes the agent too
        agent_cpu = cpu_seconds(agent.pid) - agent_cpu0
        ne_cpu = cpu_seconds(ne.pid) - ne_cpu0
        rss = peak_rss_mb(agent.pid)
        ne_rss = peak_rss_mb(ne.pid)
    finally:
        for proc in (agent, ne):
            proc.terminate()
            proc.wait(20)
        sink.shutdown()
        sink.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
    cycles = max(1.0, cycles1 - cycles0)
    per_cycle = agent_cpu / cycles
    per_scrape = ne_cpu / max(1, scrapes)
    return {
        "bench": "agent_overhead",
        "gpus": GPUS,
        "interval_s": INTERVAL_SECONDS,
        "seconds": round(seconds, 1),
        "agent_cycles": int(cycles),
        "agent_cpu_s_per_cycle": round(per_cycle, 6),
        "node_exporter_scrapes": scrapes,
        "node_exporter_cpu_s_per_scrape": round(per_scrape, 6),
        "ratio": round(per_cycle / per_scrape, 3) if per_scrape else None,
        "rss_mb": round(rss, 1),
        "node_exporter_rss_mb": round(ne_rss, 1),
        "clock_ticks_per_s": TICKS,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent_overhead", description=__doc__)
    p.add_argument("--quick", action="store_true", help="~15 s instead of 60 s")
    p.add_argument("--seconds", type=float, help="measured seconds (default 60, quick 15)")
    args = p.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    result = run(seconds)
    print(
        f"agent ({GPUS} simulated GPUs, {INTERVAL_SECONDS:g} s interval, shipping, scraped): "
        f"{result['agent_cpu_s_per_cycle'] * 1000:.2f} ms CPU per cycle over "
        f"{result['agent_cycles']} cycles, peak RSS {result['rss_mb']} MB"
    )
    print(
        f"node_exporter: {result['node_exporter_cpu_s_per_scrape'] * 1000:.2f} ms CPU per scrape "
        f"over {result['node_exporter_scrapes']} scrapes, peak RSS {result['node_exporter_rss_mb']} MB"
    )
    print(f"ratio (agent / node_exporter): {result['ratio']}  (goal <= 1; RSS goal <= 60 MB)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
