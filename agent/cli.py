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

from agent.collectors import cloud
from agent.collectors.allocation import GPUSTAT_DIR, POD_RESOURCES_SOCKET, AllocationCollector
from agent.collectors.attribution import Attributor
from agent.collectors.host import HostCollector
from agent.collectors.nvml import NvmlCollector
from agent.collectors.simulator import (
    SCENARIOS,
    Owner,
    SimulatedAllocations,
    SimulatedHost,
    SimulatedNvml,
)
from agent.config import (
    CONFIG_FILE,
    HOSTNAME_LABELS,
    METRICS_PORT,
    OPTIONAL_PATHS,
    SPOOL_DIR,
    AgentSettings,
    from_env,
    optional_path,
    parse_labels,
    resolve_token,
)
from agent.loop import Agent
from agent.pusher import Pusher, Sender
from agent.spool import DiskSpool

log = logging.getLogger("agent")

DEFAULT_SCENARIO_CYCLE = ["training", "allocated_idle", "data_starved", "unallocated"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuledger agent",
        description=(
            "Collect GPU (NVML) and host metrics on this node, spool them to disk, ship them to a "
            "GPU Ledger server and serve them on a local /metrics. Settings come from defaults, "
            "then the config file (TOML, keys as the long options), then GPULEDGER_AGENT_<OPTION> "
            "environment variables (e.g. GPULEDGER_AGENT_SPOOL_DIR), then these flags."
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help=f"TOML config file (env GPULEDGER_AGENT_CONFIG; read if it exists: {CONFIG_FILE})",
    )
    p.add_argument("--server", help="GPU Ledger server URL, e.g. https://ledger.example.com")
    p.add_argument("--token", help="this node's token (gpuledger token create --node NAME)")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="read the node token from this file instead (a mounted Secret, a 0600 file)",
    )
    p.add_argument("--node-name", help="node name the token was issued for (default: hostname)")
    p.add_argument("--cluster", help="cluster this node belongs to")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="node label, repeatable (e.g. --label team=vision)",
    )
    p.add_argument(
        "--interval", type=float, metavar="SECONDS", help="seconds between collections (default 10)"
    )
    p.add_argument(
        "--ship-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between batches sent (default: every collection)",
    )
    cloud = p.add_argument_group("cloud identity (joins the node to its bill)")
    cloud.add_argument("--provider", choices=["aws", "gcp", "azure", "onprem", "other"])
    cloud.add_argument("--instance-id", help="cloud instance id (e.g. i-0abc...)")
    cloud.add_argument("--instance-type", help="cloud instance type (e.g. p5.48xlarge)")
    cloud.add_argument("--region", help="cloud region (e.g. us-east-1)")
    cloud.add_argument(
        "--no-cloud-metadata",
        action="store_true",
        help="do not ask the AWS/GCP/Azure metadata services for what is not configured",
    )
    ship = p.add_argument_group("shipping")
    ship.add_argument(
        "--spool-dir",
        type=Path,
        metavar="DIR",
        help=f"where batches wait until the server has them (default {SPOOL_DIR})",
    )
    ship.add_argument(
        "--spool-max-bytes",
        type=int,
        metavar="BYTES",
        help="spool size limit; the oldest batches are dropped beyond it (default 256 MiB)",
    )
    ship.add_argument(
        "--no-ship", action="store_true", help="collect and expose /metrics only, send nothing"
    )
    metrics = p.add_argument_group("local /metrics (Prometheus, dcgm-exporter names)")
    metrics.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=f"port for /metrics (default {METRICS_PORT}); 0 turns /metrics off",
    )
    metrics.add_argument(
        "--metrics-address", metavar="ADDR", help="address /metrics listens on (default 0.0.0.0)"
    )
    metrics.add_argument(
        "--hostname-label",
        choices=HOSTNAME_LABELS,
        help="name of the node's label on GPU series: dcgm-exporter's 'Hostname' (default), or "
        "'hostname' as dcgm-exporter names it since its rename",
    )
    held = p.add_argument_group(
        "allocation (who holds each GPU, process or not: Slurm job, Kubernetes pod)"
    )
    held.add_argument(
        "--hpc-job-mapping-dir",
        metavar="DIR",
        help="dcgm-exporter's job mapping directory: files named by GPU index (or "
        "<index>.<GPU instance> for MIG) listing the Slurm job ids on it (default: not read)",
    )
    held.add_argument(
        "--gpustat-dir",
        metavar="DIR",
        help=f"jobstats-style files named by GPU index or MIG UUID holding '<job id> <uid> "
        f"[<user> [<account>]]' (default {GPUSTAT_DIR}; '' turns it off)",
    )
    held.add_argument(
        "--pod-resources-socket",
        metavar="PATH",
        help=f"the kubelet's pod-resources API socket (default {POD_RESOURCES_SOCKET}; "
        "absent: not a Kubernetes node; '' turns it off)",
    )
    held.add_argument(
        "--no-allocation",
        action="store_true",
        help="do not look up who holds each GPU (owners of GPU processes are still reported)",
    )
    sim = p.add_argument_group("simulation (demos, tests, benchmarks)")
    sim.add_argument(
        "--simulate", type=int, metavar="N", help="simulate N GPUs instead of reading NVML"
    )
    sim.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        default=[],
        help="simulated GPU scenario, repeatable; cycles over the GPUs",
    )
    sim.add_argument("--seed", type=int, help="simulation seed (default 0)")
    p.add_argument(
        "--proc-root",
        type=Path,
        metavar="DIR",
        help="where the host's /proc is mounted (default /proc)",
    )
    p.add_argument("--once", action="store_true", help="collect once and exit")
    p.add_argument(
        "--print",
        action="store_true",
        dest="print_json",
        help="print each batch as JSON on stdout (with --once: one collection, sent nowhere)",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


_FLAG_FIELDS = (
    "server",
    "token",
    "token_file",
    "node_name",
    "cluster",
    "interval",
    "ship_interval",
    "simulate",
    "seed",
    "proc_root",
    "provider",
    "instance_id",
    "instance_type",
    "region",
    "spool_dir",
    "spool_max_bytes",
    "metrics_port",
    "metrics_address",
    "hostname_label",
)


def settings_from_args(
    args: argparse.Namespace, base: AgentSettings | None = None
) -> AgentSettings:
    """Flags over environment over config file over defaults."""
    if base is None:
        config = args.config
        if config is None and CONFIG_FILE.is_file():
            config = CONFIG_FILE
        base = from_env(config_file=config)
    s = base
    for attr in _FLAG_FIELDS:
        value = getattr(args, attr)
        if value is not None:
            setattr(s, attr, value)
    if args.scenario:
        s.scenarios = list(args.scenario)
    if args.label:
        s.labels = {**s.labels, **parse_labels(args.label)}
    if args.no_ship:
        s.ship = False
    if args.no_cloud_metadata:
        s.cloud_metadata = False
    for attr in OPTIONAL_PATHS:
        value = getattr(args, attr)
        if value is not None:
            setattr(s, attr, optional_path(value))
    if args.no_allocation:
        s.allocation = False
    if s.interval <= 0:
        raise ValueError("--interval must be positive")
    if s.hostname_label not in HOSTNAME_LABELS:
        raise ValueError(f"hostname-label must be one of {', '.join(HOSTNAME_LABELS)}")
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
        held = SimulatedAllocations(sim) if settings.allocation else None
        return Agent(settings, NvmlCollector(sim), host, attribute=host.attribute,
                     allocations=held)  # fmt: skip
    attribute = Attributor(settings.proc_root)
    allocations = None
    if settings.allocation:
        allocations = AllocationCollector(
            settings.proc_root,
            hpc_job_mapping_dir=settings.hpc_job_mapping_dir,
            gpustat_dir=settings.gpustat_dir,
            pod_resources_socket=settings.pod_resources_socket,
            user_name=attribute.user_name,
        )
    return Agent(
        settings,
        NvmlCollector(),
        HostCollector(settings.proc_root),
        attribute=attribute,
        allocations=allocations,
    )


def fill_cloud_identity(settings: AgentSettings) -> None:
    """Provider, instance and region from the metadata services where not configured."""
    if settings.simulate > 0:
        return  # a simulated node is not the machine it runs on
    found = cloud.detect(
        cloud.CloudIdentity(
            settings.provider, settings.instance_id, settings.instance_type, settings.region
        ),
        enabled=settings.cloud_metadata,
    )
    settings.provider, settings.instance_id = found.provider, found.instance_id
    settings.instance_type, settings.region = found.instance_type, found.region


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
        resolve_token(settings)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    debug_print = args.once and args.print_json
    shipping = settings.ship and not (debug_print and not settings.server)
    if shipping and (not settings.server or not settings.token):
        print(
            "error: --server and --token (or --token-file) are required to ship (or use --no-ship)",
            file=sys.stderr,
        )
        return 2
    spool = None
    if shipping:
        try:
            spool = DiskSpool(settings.spool_dir, max_bytes=settings.spool_max_bytes)
        except OSError as e:
            print(f"error: cannot use spool directory {settings.spool_dir}: {e}", file=sys.stderr)
            return 2

    fill_cloud_identity(settings)
    agent = make_agent(settings)
    agent.outbox = spool
    sender = None
    if spool is not None:
        sender = Sender(spool, Pusher(settings.server or "", settings.token or ""))
        sender.start()
    if settings.metrics_port and not debug_print:
        from agent.metrics import build_registry, serve  # only when /metrics is on

        try:
            serve(
                build_registry(agent, lambda: sender),
                settings.metrics_port,
                settings.metrics_address,
            )
        except OSError as e:
            print(
                f"error: cannot serve /metrics on port {settings.metrics_port}: {e}",
                file=sys.stderr,
            )
            return 2

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
        # Whatever is not sent now stays in the spool for the next start.
        if not sender.flush(timeout=10.0 if args.once else 2.0):
            log.warning("%d batch(es) left in the spool for the next start", len(sender.outbox))
        sender.stop()
    return 0
