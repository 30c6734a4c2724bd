"""Agent settings: defaults, then a TOML config file, then ``GPULEDGER_AGENT_*`` environment,
then command-line flags (each overrides the one before).

This is the only agent module that reads ``os.environ``.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.collectors.allocation import GPUSTAT_DIR, POD_RESOURCES_SOCKET

ENV_PREFIX = "GPULEDGER_AGENT_"
COLLECT_INTERVAL_SECONDS = 10.0
METRICS_PORT = 9400  # dcgm-exporter's port, so existing scrape configs find us
SPOOL_DIR = Path("/var/lib/gpuledger-agent/spool")
SPOOL_MAX_BYTES = 256 * 1024**2
CONFIG_FILE = Path("/etc/gpuledger/agent.toml")
# The host label of /metrics: dcgm-exporter's "Hostname", or "hostname" as it names it since
# its rename (NVIDIA/dcgm-exporter#655).
HOSTNAME_LABELS = ("Hostname", "hostname")


@dataclass
class AgentSettings:
    server: str | None = None
    token: str | None = None
    token_file: Path | None = None  # read the token from here (a mounted Secret, a 0600 file)
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
    cloud_metadata: bool = True  # ask the cloud metadata service when provider etc. are unset
    labels: dict[str, str] = field(default_factory=dict)
    ship: bool = True
    spool_dir: Path = SPOOL_DIR
    spool_max_bytes: int = SPOOL_MAX_BYTES
    metrics_port: int = METRICS_PORT  # 0: no local /metrics
    metrics_address: str = "0.0.0.0"  # noqa: S104  (Prometheus scrapes the node from outside)
    hostname_label: str = HOSTNAME_LABELS[0]
    # Who holds each GPU (Slurm job, Kubernetes pod), process or not; None turns a source off.
    allocation: bool = True
    hpc_job_mapping_dir: Path | None = None  # dcgm-exporter's --hpc-job-mapping-dir files
    gpustat_dir: Path | None = GPUSTAT_DIR  # jobstats-style <index or MIG uuid> files
    pod_resources_socket: Path | None = POD_RESOURCES_SOCKET  # the kubelet's pod-resources API


_FIELDS = {f.name: f for f in fields(AgentSettings)}
_BOOLS = {"ship", "cloud_metadata", "allocation"}
OPTIONAL_PATHS = ("hpc_job_mapping_dir", "gpustat_dir", "pod_resources_socket")  # "": off


def _parse(name: str, raw: Any) -> Any:
    """A config-file or environment value converted to the field's type."""
    kind = str(_FIELDS[name].type)
    if name == "scenarios":
        return [s.strip() for s in raw.split(",") if s.strip()] if isinstance(raw, str) else raw
    if name == "labels":
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return parse_labels(raw.split(","))
    if name in _BOOLS:
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() not in ("0", "false", "no", "off")
    if "float" in kind:
        return float(raw)
    if "int" in kind:
        return int(raw)
    if name in OPTIONAL_PATHS:
        return optional_path(raw)
    if "Path" in kind:
        return Path(raw)
    return str(raw)


def optional_path(raw: str) -> Path | None:
    """A path setting where an empty value turns the thing off."""
    return Path(raw) if str(raw).strip() else None


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


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML file (keys as the long options, ``-`` or ``_``); unknown keys fail."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path}: {e}") from e
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ValueError(f"config file {path}: unknown setting {key!r}")
        values[name] = _parse(name, raw)
    return values


def from_env(
    environ: dict[str, str] | None = None, *, config_file: Path | None = None
) -> AgentSettings:
    """Defaults, overridden by ``config_file`` (TOML), then by ``GPULEDGER_AGENT_<FIELD>``."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        values.update(read_config_file(config_file))
    for name in _FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _parse(name, raw)
    return AgentSettings(**values)


def resolve_token(settings: AgentSettings) -> None:
    """Fill ``token`` from ``token_file`` when only the file is given; ValueError if unusable."""
    if settings.token or settings.token_file is None:
        return
    try:
        token = settings.token_file.read_text().strip()
    except OSError as e:
        raise ValueError(f"cannot read the token file {settings.token_file}: {e.strerror}") from e
    if not token:
        raise ValueError(f"the token file {settings.token_file} is empty")
    settings.token = token
