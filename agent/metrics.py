"""Local ``/metrics`` for Prometheus: the agent's latest reading, rendered at scrape time.

GPU series carry dcgm-exporter's names, units and labels (``gpu``, ``UUID``, ``device``,
``modelName``, ``Hostname``; see dcgm-exporter ``etc/default-counters.csv``) so that existing
DCGM Grafana dashboards work unchanged. dcgm-exporter's camelCase labels are kept on purpose
(promtool flags them), and its energy counter keeps its name as an untyped series; everything else is
under ``gpuledger_`` names in base units. Nothing here touches NVML: a scrape reads what the
loop last collected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agent.loop import Agent
    from agent.pusher import Sender

log = logging.getLogger(__name__)

MIB = 1024**2
GPU_LABELS = ["gpu", "UUID", "device", "modelName", "Hostname"]

# (dcgm name, help, sample key, scale)
_DCGM_GAUGES: list[tuple[str, str, str, float]] = [
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "utilization_gpu", 1),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", "utilization_memory", 1),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "memory_used_bytes", 1 / MIB),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_watts", 1),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temperature_c", 1),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "sm_clock_mhz", 1),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", "mem_clock_mhz", 1),
    (
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
        "Current clock event (throttle) reasons, an NVML bitmask.",
        "clock_event_reasons",
        1,
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "PCIe bytes received per second (in B/s).",
        "pcie_rx_bytes_per_s",
        1,
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "PCIe bytes sent per second (in B/s).",
        "pcie_tx_bytes_per_s",
        1,
    ),
    ("gpuledger_gpu_power_limit_watts", "Enforced power limit.", "power_limit_watts", 1),
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


class AgentCollector(Collector):
    """Scrape-time view of an ``Agent`` (and its sender, when it ships)."""

    def __init__(self, agent: Agent, sender: Callable[[], Sender | None] = lambda: None) -> None:
        self.agent = agent
        self.sender = sender

    def collect(self) -> Iterator[Metric]:
        gpus, samples, host = self.agent.latest
        yield from self._gpu_metrics(gpus, samples)
        yield from self._host_metrics(host)
        yield from self._health_metrics()

    def _gpu_metrics(
        self, gpus: list[dict[str, Any]], samples: list[dict[str, Any]]
    ) -> Iterator[Metric]:
        hostname = self.agent.settings.node_name
        by_uuid = {g["uuid"]: g for g in gpus}
        gauges = {
            name: GaugeMetricFamily(name, doc, labels=GPU_LABELS) for name, doc, *_ in _DCGM_GAUGES
        }
        fb_free = GaugeMetricFamily(
            "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", labels=GPU_LABELS
        )
        fb_reserved = GaugeMetricFamily(
            "DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", labels=GPU_LABELS
        )
        details = getattr(self.agent.gpu, "details", {})
        # dcgm-exporter's energy counter has no _total suffix, which prometheus-client only
        # allows for untyped series: the name stays exact, and rate()/increase() work the same.
        energy = Metric(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "Total energy consumption since boot (in mJ), a counter.",
            "unknown",
        )
        xid = GaugeMetricFamily(
            "DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", labels=GPU_LABELS
        )
        xid_total = CounterMetricFamily(
            "gpuledger_gpu_xid_errors",
            "XID errors seen since the agent started.",
            labels=GPU_LABELS,
        )
        ecc = GaugeMetricFamily(
            "gpuledger_gpu_ecc_uncorrected_errors",
            "Volatile uncorrected ECC errors since the driver loaded.",
            labels=GPU_LABELS,
        )
        up = GaugeMetricFamily(
            "gpuledger_gpu_up", "1 if the GPU answers, 0 if it is lost.", labels=GPU_LABELS
        )
        proc_mem = GaugeMetricFamily(
            "gpuledger_process_gpu_memory_bytes",
            "GPU memory used by a process.",
            labels=[*GPU_LABELS, "pid", "user", "namespace", "pod", "job"],
        )
        proc_sm = GaugeMetricFamily(
            "gpuledger_process_sm_utilization_ratio",
            "SM utilization of a process (0-1).",
            labels=[*GPU_LABELS, "pid", "user", "namespace", "pod", "job"],
        )
        xids = getattr(self.agent.gpu, "last_xid", {})
        xid_counts = getattr(self.agent.gpu, "xid_total", {})
        for s in samples:
            gpu = by_uuid.get(s["gpu_uuid"], {})
            index = str(gpu.get("index", ""))
            labels = [index, s["gpu_uuid"], f"nvidia{index}", gpu.get("model") or "", hostname]
            up.add_metric(labels, 1 if s.get("status") == "ok" else 0)
            if s.get("status") != "ok":
                continue
            for name, _, key, scale in _DCGM_GAUGES:
                if s.get(key) is not None:
                    gauges[name].add_metric(labels, s[key] * scale)
            # NVML's memory v2: "used" leaves out what the driver reserves (free = total - both).
            detail = details.get(s["gpu_uuid"])
            reserved = getattr(detail, "memory_reserved_bytes", None)
            if reserved is not None:
                fb_reserved.add_metric(labels, reserved / MIB)
            if s.get("memory_total_bytes") is not None and s.get("memory_used_bytes") is not None:
                free = s["memory_total_bytes"] - s["memory_used_bytes"] - (reserved or 0)
                fb_free.add_metric(labels, free / MIB)
            if s.get("energy_mj") is not None:
                energy.add_sample(
                    energy.name, dict(zip(GPU_LABELS, labels, strict=True)), s["energy_mj"]
                )
            if s.get("xid_errors") is not None:
                xid.add_metric(labels, xids.get(s["gpu_uuid"], 0))
                xid_total.add_metric(labels, xid_counts.get(s["gpu_uuid"], 0))
            if s.get("ecc_uncorrected") is not None:
                ecc.add_metric(labels, s["ecc_uncorrected"])
            for p in s.get("processes") or []:
                o = p.get("owner") or {}
                plabels = [
                    *labels,
                    str(p["pid"]),
                    o.get("user", ""),
                    o.get("namespace", ""),
                    o.get("pod_name", ""),
                    o.get("job_id", ""),
                ]
                if p.get("used_memory_bytes") is not None:
                    proc_mem.add_metric(plabels, p["used_memory_bytes"])
                if p.get("sm_utilization") is not None:
                    proc_sm.add_metric(plabels, p["sm_utilization"] / 100)
        yield from gauges.values()
        yield from (fb_free, fb_reserved, energy, xid, xid_total, ecc, up, proc_mem, proc_sm)

    def _host_metrics(self, host: dict[str, Any]) -> Iterator[Metric]:
        for name, doc, key in _HOST_GAUGES:
            if host.get(key) is not None:
                yield GaugeMetricFamily(name, doc, value=host[key])
        collector = self.agent.host
        for attr, metric, label, (first, second) in (
            ("disk_rates", "gpuledger_host_disk", "device", ("read", "written")),
            ("net_rates", "gpuledger_host_network", "interface", ("received", "sent")),
        ):
            rates: dict[str, tuple[float, float]] = getattr(collector, attr, {})
            a = GaugeMetricFamily(
                f"{metric}_{first}_bytes_per_second", f"Bytes {first} per second.", labels=[label]
            )
            b = GaugeMetricFamily(
                f"{metric}_{second}_bytes_per_second", f"Bytes {second} per second.", labels=[label]
            )
            for name, (x, y) in sorted(rates.items()):
                a.add_metric([name], x)
                b.add_metric([name], y)
            yield from (a, b)

    def _health_metrics(self) -> Iterator[Metric]:
        agent = self.agent
        yield GaugeMetricFamily(
            "gpuledger_agent_last_collection_seconds",
            "How long the last collection took.",
            value=agent.last_collect_seconds,
        )
        yield CounterMetricFamily(
            "gpuledger_agent_collection_seconds",
            "Time spent collecting since the agent started.",
            value=agent.collect_seconds_total,
        )
        yield CounterMetricFamily(
            "gpuledger_agent_collections",
            "Collections since the agent started.",
            value=agent.cycles,
        )
        yield GaugeMetricFamily(
            "gpuledger_agent_nvml_up",
            "1 if NVML answers, 0 if the driver or library is missing.",
            value=0 if agent.gpu_error else 1,
        )
        outbox = agent.outbox
        spool_bytes = getattr(outbox, "bytes", None)
        if outbox is not None:
            yield GaugeMetricFamily(
                "gpuledger_agent_spool_batches", "Batches waiting to be sent.", value=len(outbox)
            )
            yield GaugeMetricFamily(
                "gpuledger_agent_spool_bytes",
                "Bytes of batches waiting on disk.",
                value=spool_bytes if isinstance(spool_bytes, int) else 0,
            )
            yield CounterMetricFamily(
                "gpuledger_agent_dropped_batches",
                "Batches dropped because the spool was full.",
                value=getattr(outbox, "dropped", 0),
            )
        sender = self.sender()
        if sender is not None:
            pusher = sender.pusher
            yield CounterMetricFamily(
                "gpuledger_agent_sent_batches", "Batches the server accepted.", value=pusher.sent
            )
            yield CounterMetricFamily(
                "gpuledger_agent_send_failures",
                "Failed send attempts (retried or parked).",
                value=pusher.failures,
            )
            yield CounterMetricFamily(
                "gpuledger_agent_parked_batches",
                "Batches the server refused for good (4xx), set aside.",
                value=pusher.parked,
            )


def build_registry(
    agent: Agent, sender: Callable[[], Sender | None] = lambda: None
) -> CollectorRegistry:
    """A registry with the agent's series and its own process CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent, sender))
    ProcessCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, port: int, address: str) -> int:
    """Serve ``/metrics`` on a daemon thread; returns the bound port (``port=0``: any free one)."""
    server, _ = start_http_server(port, addr=address, registry=registry)
    bound = int(server.server_port)
    log.info("serving /metrics on %s:%d", address, bound)
    return bound
