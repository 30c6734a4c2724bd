"""Agent settings: defaults, then ``GPULEDGER_AGENT_*`` environment, then command-line flags.

This is the only agent module that reads ``os.environ``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "GPULEDGER_AGENT_"
COLLECT_INTERVAL_SECONDS = 10.0


@dataclass
class AgentSettings:
    server: str | None = None
    token: str | None = None
    node_name: str = field(default_factory=socket.gethostname)
    cluster: str | None = None
    interval: float = COLLECT_INTERVAL_SECONDS
    ship_interval: float | None = None  # None: ship every collection
    simulate: int = 0
    scenarios: list[str] = field(default_factory=list)
    seed: int = 0
    proc_root: Path = Path("/proc")
    provider: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    region: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ship: bool = True


def _parse(name: str, kind: Any, raw: str) -> Any:
    if name == "scenarios":
        return [s.strip() for s in raw.split(",") if s.strip()]
    if name == "labels":
        return parse_labels(raw.split(","))
    if name == "ship":
        return raw.strip().lower() not in ("0", "false", "no", "off")
    if "float" in str(kind):
        return float(raw)
    if "int" in str(kind):
        return int(raw)
    if "Path" in str(kind):
        return Path(raw)
    return raw


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["team=ml", "env=prod"]`` → ``{"team": "ml", "env": "prod"}``."""
    labels = {}
    for item in items:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def from_env(environ: dict[str, str] | None = None) -> AgentSettings:
    """Defaults overridden by ``GPULEDGER_AGENT_<FIELD>`` variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in fields(AgentSettings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _parse(f.name, f.type, raw)
    return AgentSettings(**values)
