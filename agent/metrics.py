"""Local ``/metrics`` for Prometheus: the latest collection, rendered once and served from memory.

GPU series carry dcgm-exporter's names, types, units and labels (NVIDIA/dcgm-exporter
``etc/default-counters.csv``, ``internal/pkg/rendermetrics/render_metrics.go``) so that DCGM
dashboards and alert rules work unchanged: ``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
``modelName``, ``GPU_I_PROFILE`` and ``GPU_I_ID`` on MIG-instance series, ``Hostname`` (or
``hostname``: ``--hostname-label``), ``DCGM_FI_DRIVER_VERSION``, and the GPU's holder as
dcgm-exporter's transformations name it: ``pod``, ``namespace``, ``container`` (Kubernetes,
``kubernetes.go``) and ``hpc_job`` (Slurm, ``hpc.go``). ``DCGM_FI_DEV_XID_ERRORS`` carries
``err_code`` and ``err_msg``. dcgm-exporter's camelCase labels are kept on purpose (promtool
flags them), and so are its counters' names without ``_total``: prometheus-client cannot type a
counter without appending ``_total``, so the exposition (text format 0.0.4) is written here.
Everything else is under ``gpuledger_`` names in base units.

A scrape never rebuilds the page: it is rendered when the loop has collected again, and every
scrape in between gets the same bytes (gzipped once, when a scraper asks). Nothing here touches
NVML.
"""

from __future__ import annotations

import gzip
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from agent.xid_messages import xid_message

if TYPE_CHECKING:
    from agent.loop import Agent
    from agent.pusher import Sender

log = logging.getLogger(__name__)

MIB = 1024**2
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGE, COUNTER = "gauge", "counter"
XID_SERIES = "DCGM_FI_DEV_XID_ERRORS"
_MEMORY_KEYS = ("fb_used_mib", "fb_total_mib", "fb_free_mib")

# Per GPU: (name, type, value key, help); types and help as default-counters.csv has them. A value
# key is a sample field (the wire format), a GpuDetail reading (nvml_fields.READINGS) or one that
# _gpu_values derives; a GPU without the value has no series.
_GPU_SERIES: list[tuple[str, str, str, str]] = [
    ("DCGM_FI_DEV_SM_CLOCK", GAUGE, "sm_clock_mhz", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", GAUGE, "mem_clock_mhz", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", GAUGE, "memory_temp_c", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", GAUGE, "temperature_c", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", GAUGE, "power_watts", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", COUNTER, "energy_mj", "Total energy since boot (mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", COUNTER, "pcie_replays", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", GAUGE, "utilization_gpu", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", GAUGE, "utilization_memory", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", GAUGE, "encoder_util", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", GAUGE, "decoder_util", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_FAN_SPEED", GAUGE, "fan_speed", "Fan speed (in %)."),
    (XID_SERIES, GAUGE, "last_xid", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", GAUGE, "clock_event_reasons", "Clock event reasons."),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", GAUGE, "clock_event_reasons", "The same, older name."),
    ("DCGM_FI_DEV_FB_FREE", GAUGE, "fb_free_mib", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", GAUGE, "fb_used_mib", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", GAUGE, "fb_reserved_mib", "Framebuffer memory reserved (in MiB)."),
    ("DCGM_FI_DEV_FB_TOTAL", GAUGE, "fb_total_mib", "Framebuffer memory total (in MiB)."),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        COUNTER,
        "ecc_sbe_volatile",
        "Single-bit volatile ECC errors.",
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        COUNTER,
        "ecc_dbe_volatile",
        "Double-bit volatile ECC errors.",
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        COUNTER,
        "ecc_sbe_aggregate",
        "Single-bit persistent ECC errors.",
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        COUNTER,
        "ecc_dbe_aggregate",
        "Double-bit persistent ECC errors.",
    ),
    # DCGM's value: MB/s over all links and both directions (typed counter by dcgm-exporter).
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", COUNTER, "nvlink_bandwidth", "NVLink bandwidth (MB/s)."),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        COUNTER,
        "remapped_rows_uncorrectable",
        "Number of remapped rows for uncorrectable errors",
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        COUNTER,
        "remapped_rows_correctable",
        "Number of remapped rows for correctable errors",
    ),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", GAUGE, "row_remap_failure", "Whether row remapping failed"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", GAUGE, "gr_engine_active", "Graphics engine active ratio."),
    ("DCGM_FI_PROF_SM_ACTIVE", GAUGE, "sm_active", "Ratio of cycles an SM has a warp assigned."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", GAUGE, "tensor_active", "Tensor pipes active ratio."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", GAUGE, "dram_active", "Device memory interface active ratio."),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", GAUGE, "pcie_tx_bytes_per_s", "PCIe bytes sent (in B/s)."),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", GAUGE, "pcie_rx_bytes_per_s", "PCIe bytes received (in B/s)."),
    ("gpuledger_gpu_power_limit_watts", GAUGE, "power_limit_watts", "Enforced power limit."),
    ("gpuledger_gpu_xid_errors_total", COUNTER, "xid_total", "XIDs since the agent started."),
    (
        "gpuledger_gpu_ecc_uncorrected_errors",
        GAUGE,
        "ecc_uncorrected",
        "Volatile uncorrected ECC errors since the driver loaded.",
    ),
    ("gpuledger_gpu_up", GAUGE, "up", "1 if the GPU answers, 0 if it is lost."),
]

_HOST_GAUGES = [
    ("gpuledger_host_cpu_busy_ratio", "CPU busy share over the last interval.", "cpu_busy_ratio"),
    ("gpuledger_host_iowait_ratio", "CPU I/O wait share over the last interval.", "iowait_ratio"),
    (
        "gpuledger_host_io_pressure_some_ratio",
        "Share of time some task stalled on I/O (/proc/pressure/io).",
        "io_pressure_some_ratio",
    ),
    (
        "gpuledger_host_io_pressure_full_ratio",
        "Share of time all tasks stalled on I/O (/proc/pressure/io).",
        "io_pressure_full_ratio",
    ),
    ("gpuledger_host_memory_used_bytes", "Memory in use (total - available).", "memory_used_bytes"),
    ("gpuledger_host_memory_total_bytes", "Memory installed.", "memory_total_bytes"),
]

# dcgm-exporter's holder labels ← the sample's allocation keys.
_HOLDER_LABELS = (("pod", "pod"), ("namespace", "namespace"), ("container", "container"))
# A process owner's labels ← attribution keys. No pid: one series per owner, not per process.
_OWNER_LABELS = (("user", "user"), ("namespace", "namespace"), ("pod", "pod_name"))

Entity = tuple[str, dict[str, Any]]  # (rendered labels, values by key)


class MetricsPage:
    """The agent's ``/metrics``: rebuilt when the loop has collected again, else served as is."""

    def __init__(self, agent: Agent, sender: Callable[[], Sender | None] = lambda: None) -> None:
        self.agent = agent
        self.sender = sender
        self.renders = 0  # how many times the page was built
        self._lock = threading.Lock()
        self._built_for: tuple[object, float] | None = None
        self._body = b""
        self._gzipped: bytes | None = None
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)  # the agent's own CPU and memory

    def render(self) -> bytes:
        """The exposition of the latest collection (text format 0.0.4)."""
        return self.body(gzipped=False)

    def body(self, *, gzipped: bool) -> bytes:
        """The page's bytes, built at most once per collection (and compressed once)."""
        agent = self.agent
        with self._lock:
            latest, seconds = agent.latest, agent.collect_seconds_total
            built = self._built_for
            if built is None or built[0] is not latest or built[1] != seconds:
                self._body = self._build().encode()
                self._gzipped = None
                self._built_for = (latest, seconds)
                self.renders += 1
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=6)
            return self._gzipped

    def _build(self) -> str:
        gpus, samples, host = self.agent.latest
        out: list[str] = []
        self._gpu_series(out, gpus, samples)
        self._host_series(out, host)
        self._health_series(out)
        out.append(generate_latest(self._process).decode())
        return "".join(out)

    def _gpu_series(
        self, out: list[str], gpus: list[dict[str, Any]], samples: list[dict[str, Any]]
    ) -> None:
        collector = self.agent.gpu
        settings = self.agent.settings
        by_uuid = {g["uuid"]: g for g in gpus}
        details = getattr(collector, "details", {})
        driver = getattr(collector, "driver_version", None)
        host_label = f'{settings.hostname_label}="{_escape(settings.node_name)}"'
        entities: list[Entity] = []
        processes: list[tuple[str, list[float | None]]] = []
        for s in samples:
            gpu = by_uuid.get(s["gpu_uuid"], {})
            detail = details.get(s["gpu_uuid"])
            index = str(gpu.get("index", ""))
            head = _labels(
                ("gpu", index),
                ("UUID", s["gpu_uuid"]),
                ("pci_bus_id", getattr(detail, "pci_bus_id", None)),
                ("device", f"nvidia{index}"),
                ("modelName", gpu.get("model") or ""),
            )
            tail = "" if driver is None else f',DCGM_FI_DRIVER_VERSION="{_escape(driver)}"'
            base = f"{head},{host_label}{tail}"
            values = self._gpu_values(s, detail)
            instances = getattr(detail, "mig_instances", None) or []
            if instances and any(m.get("gi_id") is not None for m in instances):
                # As dcgm-exporter: a MIG GPU's memory is per GPU instance, not per GPU.
                for key in _MEMORY_KEYS:
                    values.pop(key, None)
                entities += _mig_entities(head, f",{host_label}{tail}", instances, s)
            entities.append((base + _holder_labels(s), values))
            processes += _process_entities(base, s)
        for name, kind, key, doc in _GPU_SERIES:
            lines = []
            for labels, values in entities:
                value = values.get(key)
                if value is not None:
                    extra = _xid_labels(value) if name == XID_SERIES else ""
                    lines.append(f"{name}{{{labels}{extra}}} {_number(value)}\n")
            _family(out, name, kind, doc, lines)
        for name, doc, column in (
            ("gpuledger_process_gpu_memory_bytes", "GPU memory used by an owner's processes.", 0),
            (
                "gpuledger_process_sm_utilization_ratio",
                "SM utilization of an owner's processes (0-1).",
                1,
            ),
        ):
            lines = [
                f"{name}{{{labels}}} {_number(value)}\n"
                for labels, sums in processes
                if (value := sums[column]) is not None
            ]
            _family(out, name, GAUGE, doc, lines)

    def _gpu_values(self, s: dict[str, Any], detail: Any) -> dict[str, Any]:
        """The sample, the detail's readings and what derives from them, by value key."""
        if s.get("status") != "ok":
            return {"up": 0}
        collector = self.agent.gpu
        values = {**s, **getattr(detail, "readings", {}), "up": 1}
        # NVML's memory v2: "used" leaves out what the driver reserves (free = total - both).
        reserved = getattr(detail, "memory_reserved_bytes", None)
        values.update(
            _memory_mib(s.get("memory_total_bytes"), s.get("memory_used_bytes"), reserved)
        )
        if s.get("xid_errors") is not None:
            values["last_xid"] = getattr(collector, "last_xid", {}).get(s["gpu_uuid"], 0)
            values["xid_total"] = getattr(collector, "xid_total", {}).get(s["gpu_uuid"], 0)
        return values

    def _host_series(self, out: list[str], host: dict[str, Any]) -> None:
        for name, doc, key in _HOST_GAUGES:
            if host.get(key) is not None:
                _family(out, name, GAUGE, doc, [f"{name} {_number(host[key])}\n"])
        collector = self.agent.host
        for attr, metric, label, (first, second) in (
            ("disk_rates", "gpuledger_host_disk", "device", ("read", "written")),
            ("net_rates", "gpuledger_host_network", "interface", ("received", "sent")),
        ):
            rates: dict[str, tuple[float, float]] = getattr(collector, attr, {})
            for position, verb in enumerate((first, second)):
                name = f"{metric}_{verb}_bytes_per_second"
                lines = [
                    f'{name}{{{label}="{_escape(key)}"}} {_number(pair[position])}\n'
                    for key, pair in sorted(rates.items())
                ]
                _family(out, name, GAUGE, f"Bytes {verb} per second.", lines)

    def _health_series(self, out: list[str]) -> None:
        agent = self.agent
        series: list[tuple[str, str, str, float]] = [
            (
                "gpuledger_agent_last_collection_seconds",
                GAUGE,
                "How long the last collection took.",
                agent.last_collect_seconds,
            ),
            (
                "gpuledger_agent_collection_seconds_total",
                COUNTER,
                "Time spent collecting since the agent started.",
                agent.collect_seconds_total,
            ),
            (
                "gpuledger_agent_collections_total",
                COUNTER,
                "Collections since the agent started.",
                agent.cycles,
            ),
            (
                "gpuledger_agent_nvml_up",
                GAUGE,
                "1 if NVML answers, 0 if the driver or library is missing.",
                0 if agent.gpu_error else 1,
            ),
        ]
        outbox = agent.outbox
        if outbox is not None:
            spool_bytes = getattr(outbox, "bytes", None)
            series += [
                (
                    "gpuledger_agent_spool_batches",
                    GAUGE,
                    "Batches waiting to be sent.",
                    len(outbox),
                ),
                (
                    "gpuledger_agent_spool_bytes",
                    GAUGE,
                    "Bytes of batches waiting on disk.",
                    spool_bytes if isinstance(spool_bytes, int) else 0,
                ),
                (
                    "gpuledger_agent_dropped_batches_total",
                    COUNTER,
                    "Batches dropped because the spool was full.",
                    getattr(outbox, "dropped", 0),
                ),
            ]
        sender = self.sender()
        if sender is not None:
            pusher = sender.pusher
            series += [
                (
                    "gpuledger_agent_sent_batches_total",
                    COUNTER,
                    "Batches the server accepted.",
                    pusher.sent,
                ),
                (
                    "gpuledger_agent_send_failures_total",
                    COUNTER,
                    "Failed send attempts (retried or parked).",
                    pusher.failures,
                ),
                (
                    "gpuledger_agent_parked_batches_total",
                    COUNTER,
                    "Batches the server refused for good (4xx), set aside.",
                    pusher.parked,
                ),
            ]
        for name, kind, doc, value in series:
            _family(out, name, kind, doc, [f"{name} {_number(value)}\n"])


def _mig_entities(
    head: str, tail: str, instances: list[dict[str, Any]], s: dict[str, Any]
) -> list[Entity]:
    """One entity per MIG GPU instance: its memory, labelled with its profile and GPU instance
    id, and held by the owner of a process on it."""
    owners = {p["pid"]: p.get("owner") or {} for p in s.get("processes") or []}
    entities = []
    for m in instances:
        if m.get("gi_id") is None:
            continue
        labels = head + _labels(
            ("GPU_I_PROFILE", m.get("profile")), ("GPU_I_ID", str(m["gi_id"])), lead=True
        )
        holder = _owner_holder(owners.get(pid, {}) for pid in m.get("pids") or [])
        values = _memory_mib(m.get("memory_total_bytes"), m.get("memory_used_bytes"), None)
        entities.append((labels + tail + holder, values))
    return entities


def _memory_mib(total: int | None, used: int | None, reserved: int | None) -> dict[str, float]:
    """dcgm-exporter's framebuffer values (MiB): total, used, reserved and what is free."""
    values = {
        key: value / MIB
        for key, value in (
            ("fb_total_mib", total),
            ("fb_used_mib", used),
            ("fb_reserved_mib", reserved),
        )
        if value is not None
    }
    if total is not None and used is not None:
        values["fb_free_mib"] = (total - used - (reserved or 0)) / MIB
    return values


def _holder_labels(s: dict[str, Any]) -> str:
    """The GPU's holder (its allocation, else the first process owner that names one) as
    dcgm-exporter's labels."""
    allocation = s.get("allocation") or {}
    if allocation:
        pairs = [(label, allocation.get(key)) for label, key in _HOLDER_LABELS]
        return _labels(*pairs, ("hpc_job", allocation.get("job_id")), lead=True)
    return _owner_holder((p.get("owner") or {}) for p in s.get("processes") or [])


def _owner_holder(owners: Iterable[dict[str, Any]]) -> str:
    for o in owners:
        text = _labels(
            ("pod", o.get("pod_name")),
            ("namespace", o.get("namespace")),
            ("hpc_job", o.get("job_id")),
            lead=True,
        )
        if text:
            return text
    return ""


def _process_entities(base: str, s: dict[str, Any]) -> list[tuple[str, list[float | None]]]:
    """Per owner (user, namespace, pod, job): the sum of its processes' memory and SM ratio."""
    sums: dict[str, list[float | None]] = {}
    for p in s.get("processes") or []:
        o = p.get("owner") or {}
        labels = base + _labels(
            *((label, o.get(key)) for label, key in _OWNER_LABELS),
            ("hpc_job", o.get("job_id")),
            lead=True,
        )
        total = sums.setdefault(labels, [None, None])
        for i, value in enumerate(
            (
                p.get("used_memory_bytes"),
                None if p.get("sm_utilization") is None else p["sm_utilization"] / 100,
            )
        ):
            if value is not None:
                total[i] = (total[i] or 0) + value
    return list(sums.items())


def _xid_labels(code: float) -> str:
    """dcgm-exporter's XID labels: the code and NVIDIA's text for it."""
    return f',err_code="{int(code)}",err_msg="{_escape(xid_message(int(code)))}"'


def _labels(*pairs: tuple[str, str | None], lead: bool = False) -> str:
    """``name="value",...`` for the pairs with a value; ``lead``: with a leading comma."""
    text = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs if value)
    return f",{text}" if lead and text else text


def _family(out: list[str], name: str, kind: str, doc: str, lines: list[str]) -> None:
    if lines:
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        out.extend(lines)


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def _number(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def build_registry(agent: Agent, sender: Callable[[], Sender | None] = lambda: None) -> MetricsPage:
    """The agent's ``/metrics`` page, with its own process CPU and memory; ``serve`` serves it."""
    return MetricsPage(agent, sender)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a scraper reuses its connection
    timeout = 60  # an idle kept-alive connection is closed after this
    server: _Server

    def do_GET(self) -> None:
        self._reply(with_body=True)

    def do_HEAD(self) -> None:
        self._reply(with_body=False)

    def _reply(self, *, with_body: bool) -> None:
        if self.path.split("?", 1)[0] == "/favicon.ico":
            self.send_error(404)
            return
        gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        body = self.server.page.body(gzipped=gzipped)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], page: MetricsPage, family: int) -> None:
        self.address_family = family
        self.page = page
        super().__init__(address, _Handler)


def serve(page: MetricsPage, port: int, address: str) -> int:
    """Serve ``/metrics`` on a daemon thread; returns the bound port (``port=0``: any free one)."""
    family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]
    server = _Server((address, port), page, family)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    bound = int(server.server_address[1])
    log.info("serving /metrics on %s:%d", address, bound)
    return bound
