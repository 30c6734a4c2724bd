"""``gpuledger agent``: the node agent's command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.collectors.host import HostCollector
from agent.collectors.nvml import NvmlCollector
from agent.collectors.simulator import SCENARIOS, Owner, SimulatedHost, SimulatedNvml
from agent.config import AgentSettings, from_env, parse_labels
from agent.loop import Agent, no_owner
from agent.pusher import MemoryOutbox, Pusher, Sender

log = logging.getLogger("agent")

DEFAULT_SCENARIO_CYCLE = ["training", "allocated_idle", "data_starved", "unallocated"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuledger agent",
        description=(
            "Collect GPU (NVML) and host metrics on this node and ship them to a GPU Ledger "
            "server. Every option can also be set as GPULEDGER_AGENT_<OPTION> in the environment."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--server", help="GPU Ledger server URL, e.g. https://ledger.example.com")
    p.add_argument("--token", help="this node's token (gpuledger token create --node NAME)")
    p.add_argument("--node-name", help="node name the token was issued for (default: hostname)")
    p.add_argument("--cluster", help="cluster this node belongs to")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="node label, repeatable (e.g. --label team=vision)",
    )
    p.add_argument("--interval", type=float, help="seconds between collections (default 10)")
    p.add_argument(
        "--ship-interval",
        type=float,
        help="seconds between batches sent (default: every collection)",
    )
    p.add_argument(
        "--simulate", type=int, metavar="N", help="simulate N GPUs instead of reading NVML"
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        default=[],
        help="simulated GPU scenario, repeatable; cycles over the GPUs",
    )
    p.add_argument("--seed", type=int, help="simulation seed")
    p.add_argument("--proc-root", type=Path, help="where /proc is mounted (containers)")
    p.add_argument("--no-ship", action="store_true", help="collect only, send nothing")
    p.add_argument("--once", action="store_true", help="collect once and exit")
    p.add_argument(
        "--print", action="store_true", dest="print_json", help="print each batch as JSON on stdout"
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


def settings_from_args(
    args: argparse.Namespace, base: AgentSettings | None = None
) -> AgentSettings:
    s = base or from_env()
    for attr in (
        "server",
        "token",
        "node_name",
        "cluster",
        "interval",
        "ship_interval",
        "simulate",
        "seed",
        "proc_root",
    ):
        value = getattr(args, attr)
        if value is not None:
            setattr(s, attr, value)
    if args.scenario:
        s.scenarios = list(args.scenario)
    if args.label:
        s.labels = {**s.labels, **parse_labels(args.label)}
    if args.no_ship:
        s.ship = False
    return s


def make_agent(settings: AgentSettings, *, clock: Any = None) -> Agent:
    """An agent over real NVML and /proc, or over the simulator with ``simulate`` GPUs."""
    if settings.simulate > 0:
        cycle = settings.scenarios or DEFAULT_SCENARIO_CYCLE
        scenarios = [cycle[i % len(cycle)] for i in range(settings.simulate)]
        sim = SimulatedNvml(
            scenarios,
            seed=settings.seed,
            node=settings.node_name,
            owner=Owner(
                user=settings.labels.get("user", "mlops"),
                namespace=settings.labels.get("team"),
                job_id=f"job-{settings.node_name}",
            ),
            **({"clock": clock} if clock is not None else {}),
        )
        host = SimulatedHost(sim)
        return Agent(settings, NvmlCollector(sim), host, attribute=host.attribute)
    return Agent(settings, NvmlCollector(), HostCollector(settings.proc_root), attribute=no_owner)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shipping = settings.ship and not (args.once and args.print_json and not settings.server)
    if shipping and (not settings.server or not settings.token):
        print(
            "error: --server and --token are required to ship (or use --no-ship)", file=sys.stderr
        )
        return 2

    agent = make_agent(settings)
    outbox = MemoryOutbox() if shipping else None
    agent.outbox = outbox
    sender = None
    if outbox is not None:
        sender = Sender(outbox, Pusher(settings.server or "", settings.token or ""))
        sender.start()

    def on_batch(batch: dict[str, Any]) -> None:
        if args.print_json:
            print(json.dumps(batch, indent=2 if args.once else None), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    log.info(
        "agent for node %s: %s GPUs, every %ss, shipping to %s",
        settings.node_name,
        settings.simulate or "NVML",
        settings.interval,
        settings.server if shipping else "nowhere",
    )
    if args.once:
        # Two readings a short moment apart, so that rates and ratios have an interval.
        agent.collect_once(datetime.now(UTC), time.monotonic())
        time.sleep(0.2)
    with contextlib.suppress(KeyboardInterrupt):
        agent.run(cycles=1 if args.once else None, on_batch=on_batch)
    if sender is not None:
        if not sender.flush(timeout=10.0):
            log.warning("%d batch(es) not delivered before exit", len(sender.outbox))
        sender.stop()
    return 0
