"""``gpuledger demo``: a working system in one command (SQLite, embedded jobs, simulated fleet)."""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import uvicorn

from agent.cli import make_agent
from agent.collectors.simulator import SimulatedHost
from agent.config import AgentSettings
from agent.loop import Agent
from agent.pusher import MemoryOutbox, Pusher, Sender
from app import migrate
from app.auth import service as auth_service
from app.auth.service import Role
from app.config import configure
from app.db import reset_engine, session_scope

log = logging.getLogger(__name__)

KEY_FILE_NAME = "demo-admin-key"
BACKFILL_MINUTES = 150  # covers the two finished hours the demo bill charges
BACKFILL_STEP_SECONDS = 20
LIVE_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class DemoNode:
    name: str
    team: str
    scenarios: tuple[str, ...]
    instance_type: str


FLEET = (
    DemoNode("demo-train-01", "vision", ("training",) * 4, "p5.48xlarge"),
    DemoNode(
        "demo-idle-01",
        "nlp",
        ("allocated_idle", "reserved", "unallocated", "unallocated"),
        "p4d.24xlarge",
    ),
    DemoNode("demo-starved-01", "research", ("data_starved",) * 4, "p4d.24xlarge"),
    DemoNode(
        "demo-mixed-01",
        "platform",
        ("training", "energy_waste", "data_starved", "allocated_idle"),
        "p5.48xlarge",
    ),
)


def prepare(data_dir: Path) -> tuple[str, dict[str, str]]:
    """Create the database, an admin key and a token per demo node; returns (key, tokens)."""
    configure(data_dir=data_dir, database_url=None, redis_url=None)
    reset_engine()
    migrate.upgrade()
    with session_scope() as session:
        key = auth_service.create_api_key(session, name="demo admin", role=Role.ADMIN).secret
        tokens = {
            n.name: auth_service.create_node_token(session, node_name=n.name).secret for n in FLEET
        }
    key_file = data_dir / KEY_FILE_NAME
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key, tokens


def _settings(node: DemoNode, server: str, token: str, index: int) -> AgentSettings:
    return AgentSettings(
        server=server,
        token=token,
        node_name=node.name,
        cluster="demo",
        interval=LIVE_INTERVAL_SECONDS,
        simulate=len(node.scenarios),
        scenarios=list(node.scenarios),
        seed=index,
        provider="aws",
        instance_id=_instance_id(index),
        instance_type=node.instance_type,
        region="us-east-1",
        labels={"team": node.team},
    )


@dataclass(frozen=True)
class StoredHistory:
    """What the server already has of a demo node: its last sample, each GPU's last counter."""

    last_seen: datetime | None = None
    counters: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # uuid → (mJ, ts)


def stored_history() -> dict[str, StoredHistory]:
    """The demo nodes' history in the database (the demo shares the server's process)."""
    from sqlalchemy import select

    from app.models import Gpu, GpuSample, Node

    names = [n.name for n in FLEET]
    with session_scope() as session:
        nodes = session.execute(
            select(Node.id, Node.name, Node.last_seen).where(Node.name.in_(names))
        )
        last = {node_id: (name, seen) for node_id, name, seen in nodes}
        counters: dict[str, dict[str, tuple[int, datetime]]] = {
            name: {} for name, _ in last.values()
        }
        latest = (
            select(Gpu.node_id, Gpu.uuid, GpuSample.energy_mj, GpuSample.ts)
            .join(GpuSample, (GpuSample.gpu_id == Gpu.id) & (GpuSample.ts == Gpu.last_seen))
            .where(Gpu.node_id.in_(list(last)))
        )
        for node_id, uuid, energy_mj, ts in session.execute(latest):
            if energy_mj is not None:
                counters[last[node_id][0]][uuid] = (energy_mj, ts)
    return {name: StoredHistory(seen, counters[name]) for name, seen in last.values()}


def _continue_counters(agent: Agent, history: StoredHistory | None) -> None:
    # A restarted demo's GPUs "kept running": their energy counters go on from the stored ones
    # rather than restarting from 0, as a real GPU's would while only the agent restarts.
    if history is not None and isinstance(agent.host, SimulatedHost):
        for uuid, (energy_mj, ts) in history.counters.items():
            agent.host.sim.continue_energy(uuid, energy_mj, at=ts.timestamp())


def backfill(
    node: DemoNode,
    server: str,
    token: str,
    index: int,
    *,
    now: datetime | None = None,
    history: StoredHistory | None = None,
    minutes: int = BACKFILL_MINUTES,
) -> int:
    """Send the last ``minutes`` of simulated history, so the charts are full at once.

    Only what the server lacks: after ``history.last_seen`` (a restarted demo), so history is
    never stored twice at shifted timestamps. Returns the number of readings sent.
    """
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=minutes)
    step_delta = timedelta(seconds=BACKFILL_STEP_SECONDS)
    if history is not None and history.last_seen is not None:
        start = max(start, history.last_seen + step_delta)
    steps = max(0, int((now - start) / step_delta))
    t = [start.timestamp()]
    agent = make_agent(_settings(node, server, token, index), clock=lambda: t[0])
    _continue_counters(agent, history)
    pusher = Pusher(server, token)
    for step in range(steps):
        t[0] = start.timestamp() + step * BACKFILL_STEP_SECONDS
        agent.record(*agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0]))
        if (step + 1) % 40 == 0 or step == steps - 1:
            batch = agent.make_batch()
            if batch is not None:
                result = pusher.send(batch)
                if not result.ok:
                    log.warning("backfill of %s: %s %s", node.name, result.status, result.message)
    return steps


def backfill_fleet(server: str, tokens: dict[str, str], *, now: datetime | None = None) -> int:
    """Backfill every demo node from where its stored history ends; returns readings sent."""
    now = now or datetime.now(UTC)
    history = stored_history()
    return sum(
        backfill(node, server, tokens[node.name], i, now=now, history=history.get(node.name))
        for i, node in enumerate(FLEET)
    )


FOCUS_HEADER = (
    "BillingAccountId", "SubAccountId", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "BilledCost",
    "EffectiveCost", "ListCost", "BillingCurrency", "PricingQuantity", "PricingUnit",
    "ProviderName", "ServiceName", "ServiceCategory", "RegionId", "ResourceId", "ResourceType",
    "SkuId", "Tags", "x_InstanceType",
)  # fmt: skip
DEMO_LIST_PRICES = {"p5.48xlarge": Decimal("98.32"), "p4d.24xlarge": Decimal("32.7726")}
DEMO_SAVINGS = Decimal("0.62")  # effective cost under a savings plan, as a share of list


def write_demo_bill(path: Path, *, now: datetime, hours: int = 2) -> int:
    """A FOCUS 1.2 file for the demo's billed nodes: one row per instance and finished hour.

    The last node gets no rows, so its cost comes from the price book, marked estimated,
    as happens while a real bill has not arrived yet.
    """
    end = now.replace(minute=0, second=0, microsecond=0)
    month = end.replace(day=1, hour=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    rows = 0
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(FOCUS_HEADER)
        for index, node in enumerate(FLEET[:-1]):
            listed = DEMO_LIST_PRICES[node.instance_type]
            for h in range(hours, 0, -1):
                start = end - timedelta(hours=h)
                out.writerow([
                    "111122223333", "444455556666", _z(month), _z(next_month), _z(start),
                    _z(start + timedelta(hours=1)), "Usage", f"{node.instance_type} instance hour",
                    listed, (listed * DEMO_SAVINGS).quantize(Decimal("0.0001")), listed, "USD",
                    "1", "Hours", "AWS", "Amazon Elastic Compute Cloud", "Compute", "us-east-1",
                    _instance_id(index), "Virtual Machine", f"BoxUsage:{node.instance_type}",
                    json.dumps({"team": node.team}), node.instance_type,
                ])  # fmt: skip
                rows += 1
    return rows


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _instance_id(index: int) -> str:
    return f"i-0demo{index:012d}"


def import_demo_bill(data_dir: Path) -> None:
    """Roll up what the agents sent, import the demo bill and price the ledger, so costs show
    at once rather than after the next scheduled runs."""
    from app.billing import service as billing_service
    from app.costs import ledger
    from app.usage import service as usage_service

    path = data_dir / "demo-bill-focus.csv"
    write_demo_bill(path, now=datetime.now(UTC))
    usage_service.rollup_all(session_scope)
    with session_scope() as session:
        summary = billing_service.import_file(session, path=path)
    ledger.reprice_all(session_scope)
    log.info("demo bill: %s rows, %s matched to nodes", summary.rows_accepted, summary.rows_matched)


def run_fleet(
    server: str, tokens: dict[str, str], stop: threading.Event, data_dir: Path | None = None
) -> None:
    """Backfill, import a bill, then run one live simulated agent per demo node until ``stop``."""
    _wait_healthy(server, stop)
    backfill_fleet(server, tokens)
    if data_dir is not None:
        import_demo_bill(data_dir)
    history = stored_history()
    agents = []
    for i, node in enumerate(FLEET):
        agent = make_agent(_settings(node, server, tokens[node.name], i))
        _continue_counters(agent, history.get(node.name))
        agent.outbox = MemoryOutbox()
        Sender(agent.outbox, Pusher(server, tokens[node.name])).start()
        thread = threading.Thread(target=agent.run, name=f"agent-{node.name}", daemon=True)
        thread.start()
        agents.append(agent)
    stop.wait()
    for agent in agents:
        agent.stopping.set()


def _wait_healthy(server: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(server + "/healthz", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)


def run_demo(*, data_dir: Path, host: str, port: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    key, tokens = prepare(data_dir)
    server = f"http://{host}:{port}"
    stop = threading.Event()
    threading.Thread(
        target=run_fleet, args=(server, tokens, stop, data_dir), name="demo-fleet", daemon=True
    ).start()
    gpus = sum(len(n.scenarios) for n in FLEET)
    print(  # noqa: T201  (the demo talks to its user)
        f"\nGPU Ledger demo: {len(FLEET)} simulated nodes, {gpus} GPUs, database in {data_dir}/\n"
        f"  open      {server}/  and sign in with the admin API key below\n"
        f"  API key   {key}\n"
        f"            (also in {data_dir / KEY_FILE_NAME})\n"
        f"  try       curl -H 'Authorization: Bearer {key}' {server}/api/v1/gpus\n"
        f"  API docs  {server}/docs\n"
        "Press Ctrl+C to stop.\n",
        flush=True,
    )
    from app.main import create_app

    try:
        uvicorn.run(create_app(embedded_jobs=True), host=host, port=port, log_level="warning")
    finally:
        stop.set()
