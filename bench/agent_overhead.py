"""Agent overhead: CPU seconds per collection cycle and peak RSS, against node_exporter.

``python -m bench.agent_overhead`` (``--quick`` for ~15 s). Runs the agent as a subprocess at
a 1 s interval, shipping to a local sink and scraped once a second, and in the same run
``prometheus-node-exporter`` scraped at the same rate. Like with like: the agent's host
collectors and process attribution read this machine's real ``/proc`` as node_exporter does;
only the 8 GPUs are simulated, through the real nvidia-ml-py binding over the simulated driver
library (``agent/collectors/nvml_driver.py``), whose PCIe throughput calls block 20 ms each as
real drivers do. The GPUs' processes are real (sleeping) processes, so attribution reads real
``/proc/<pid>`` files. Steady-state CPU (after a warm-up) is read from ``/proc/<pid>/stat``,
peak RSS from ``VmHWM``, and the collection wall time from the agent's own
``gpuledger_agent_last_collection_seconds``. The last line is one JSON object.
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
# A mixed node: what the demo's nodes run.
BENCH_SCENARIOS = ["training", "allocated_idle", "data_starved", "unallocated"]


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


def metric(metrics: bytes, name: str) -> float:
    m = re.search(rb"^" + name.encode() + rb" (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0


def collections(metrics: bytes) -> float:
    return metric(metrics, "gpuledger_agent_collections_total")


def run_agent(port: int, server: str, spool_dir: Path, pids: list[int]) -> int:
    """The agent process: composed as on a real node, with only its GPUs simulated."""
    import signal

    from agent.cli import make_agent
    from agent.collectors.nvml import NvmlCollector
    from agent.collectors.simulator import SimulatedNvml
    from agent.config import AgentSettings
    from agent.metrics import build_registry, serve
    from agent.pusher import Pusher, Sender
    from agent.spool import DiskSpool

    settings = AgentSettings(node_name="bench-node", interval=INTERVAL_SECONDS, server=server)
    agent = make_agent(settings)  # real host collectors, attribution and allocation on /proc
    scenarios = [BENCH_SCENARIOS[i % len(BENCH_SCENARIOS)] for i in range(GPUS)]
    sim = SimulatedNvml(scenarios, node=settings.node_name, pids=pids)
    agent.gpu = NvmlCollector(sim, node=settings.node_name)  # nvidia-ml-py, simulated driver
    spool = DiskSpool(spool_dir, max_bytes=settings.spool_max_bytes)
    agent.outbox = spool
    sender = Sender(spool, Pusher(server, "bench"))
    sender.start()
    serve(build_registry(agent, lambda: sender), port, "127.0.0.1")
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    agent.run()
    sender.stop()
    return 0


def run(seconds: float) -> dict[str, Any]:
    exporter = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
    if not Path(exporter).exists():
        raise SystemExit("prometheus-node-exporter is not installed (bash scripts/system-deps.sh)")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="gpuledger-bench-"))
    agent_port, ne_port = free_port(), free_port()
    # The GPUs' processes: real ones, so that attribution reads real /proc/<pid> files.
    workloads = [subprocess.Popen(["sleep", "3600"]) for _ in range(GPUS)]
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.agent_overhead",
            "--run-agent",
            str(agent_port),
            f"http://127.0.0.1:{sink.server_port}",
            str(tmp / "spool"),
            ",".join(str(w.pid) for w in workloads),
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
        collect_seconds: list[float] = []
        start = time.monotonic()
        next_tick = start
        while time.monotonic() - start < seconds:
            next_tick += INTERVAL_SECONDS
            time.sleep(max(0.0, next_tick - time.monotonic()))
            get(ne_url)
            scrapes += 1
            text = get(agent_url)  # Prometheus scrapes the agent too
            cycles1 = collections(text)
            collect_seconds.append(metric(text, "gpuledger_agent_last_collection_seconds"))
        agent_cpu = cpu_seconds(agent.pid) - agent_cpu0
        ne_cpu = cpu_seconds(ne.pid) - ne_cpu0
        rss = peak_rss_mb(agent.pid)
        ne_rss = peak_rss_mb(ne.pid)
    finally:
        for proc in (agent, ne, *workloads):
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
        "collect_ms_mean": round(1000 * sum(collect_seconds) / len(collect_seconds), 2),
        "collect_ms_max": round(1000 * max(collect_seconds), 2),
        "rss_mb": round(rss, 1),
        "node_exporter_rss_mb": round(ne_rss, 1),
        "clock_ticks_per_s": TICKS,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent_overhead", description=__doc__)
    p.add_argument("--quick", action="store_true", help="~15 s instead of 60 s")
    p.add_argument("--seconds", type=float, help="measured seconds (default 60, quick 15)")
    p.add_argument(
        "--run-agent",
        nargs=4,
        metavar=("PORT", "SERVER", "SPOOL_DIR", "PIDS"),
        help="(internal) be the measured agent process",
    )
    args = p.parse_args(argv)
    if args.run_agent:
        port, server, spool, pids = args.run_agent
        return run_agent(int(port), server, Path(spool), [int(x) for x in pids.split(",")])
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    result = run(seconds)
    print(
        f"agent (real /proc, {GPUS} GPUs simulated under nvidia-ml-py, {INTERVAL_SECONDS:g} s "
        f"interval, shipping, scraped): {result['agent_cpu_s_per_cycle'] * 1000:.2f} ms CPU per "
        f"cycle over {result['agent_cycles']} cycles, peak RSS {result['rss_mb']} MB; "
        f"collection {result['collect_ms_mean']} ms mean, {result['collect_ms_max']} ms max"
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
