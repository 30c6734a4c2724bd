"""The agent loop: collect on a fixed period (monotonic clock), batch, hand to the sender."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.collectors.allocation import HolderSource, allocation_for
from agent.collectors.host import HostCollector
from agent.collectors.nvml import NvmlCollector, NvmlUnavailable
from agent.config import AgentSettings
from agent.payload import build_batch
from agent.pusher import Outbox

log = logging.getLogger(__name__)

Attributor = Callable[[int], dict[str, Any]]


def no_owner(_pid: int) -> dict[str, Any]:
    return {}


class Agent:
    """Owns the collectors; ``collect_once`` is one reading, ``run`` the periodic loop."""

    def __init__(
        self,
        settings: AgentSettings,
        gpu: NvmlCollector,
        host: HostCollector | Any,
        *,
        attribute: Attributor = no_owner,
        allocations: HolderSource | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.settings = settings
        self.gpu = gpu
        if isinstance(gpu, NvmlCollector):
            gpu.node = settings.node_name  # scopes the keys of GPUs whose UUID cannot be read
        self.host = host
        self.attribute = attribute
        self.allocations = allocations
        self.outbox = outbox
        self.stopping = threading.Event()
        self.cycles = 0
        self._gpus: list[dict[str, Any]] = []
        self._samples: list[dict[str, Any]] = []
        self._host_samples: list[dict[str, Any]] = []
        self._gpu_warned = False
        self._host_warned = False
        # The latest reading and how long it took, for the local /metrics.
        self.latest: tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]] = (
            [],
            [],
            {},
        )
        self.last_collect_seconds = 0.0
        self.collect_seconds_total = 0.0
        self.gpu_error: str | None = None

    def node_identity(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": s.node_name,
            "hostname": s.node_name,
            "cluster": s.cluster,
            "provider": s.provider,
            "instance_id": s.instance_id,
            "instance_type": s.instance_type,
            "region": s.region,
            "labels": s.labels,
            "agent_version": __version__,
        }

    def collect_once(
        self, ts: datetime, monotonic: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """One reading: (gpus, gpu samples, host sample). Never raises for a missing driver."""
        started = time.perf_counter()
        gpus: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        try:
            gpus, samples = self.gpu.collect(ts)
            if self._gpu_warned:
                log.warning("GPU readings are back")
            self.gpu_error, self._gpu_warned = None, False
        except Exception as e:  # whatever a collector raises, the loop and host metrics go on
            unexpected = not isinstance(e, NvmlUnavailable)
            self.gpu_error = f"{type(e).__name__}: {e}" if unexpected else str(e)
            if not self._gpu_warned:
                log.error(
                    "no GPU readings: %s; carrying on with host metrics",
                    self.gpu_error,
                    exc_info=unexpected,
                )
                self._gpu_warned = True
        for sample in samples:
            for proc in sample.get("processes") or []:
                owner = self.attribute(proc["pid"])
                if owner:
                    proc["owner"] = owner
        if self.allocations is not None and samples:
            # Who holds each GPU, whether or not a process runs on it.
            held = self.allocations.collect(monotonic)
            by_uuid = {gpu["uuid"]: gpu for gpu in gpus}
            for sample in samples:
                gpu = by_uuid.get(sample["gpu_uuid"], {"uuid": sample["gpu_uuid"]})
                if allocation := allocation_for(gpu, held):
                    sample["allocation"] = allocation
        try:
            host = self.host.collect(ts, monotonic)
        except Exception:  # as for GPUs: log once, keep going
            host = {"ts": ts.isoformat()}
            if not self._host_warned:
                log.exception("host readings failed; carrying on")
                self._host_warned = True
        self.cycles += 1
        self.latest = (gpus, samples, host)
        self.last_collect_seconds = time.perf_counter() - started
        self.collect_seconds_total += self.last_collect_seconds
        return gpus, samples, host

    def record(
        self, gpus: list[dict[str, Any]], samples: list[dict[str, Any]], host: dict[str, Any]
    ) -> None:
        """Keep one reading for the next batch."""
        if gpus:
            self._gpus = gpus
        self._samples.extend(samples)
        self._host_samples.append(host)

    def make_batch(self) -> dict[str, Any] | None:
        """Everything collected since the last batch, or None when nothing was."""
        if not self._samples and not self._host_samples:
            return None
        batch = build_batch(
            node=self.node_identity(),
            gpus=self._gpus,
            samples=self._samples,
            host_samples=self._host_samples,
        )
        self._samples, self._host_samples = [], []
        return batch

    def run(
        self, *, cycles: int | None = None, on_batch: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        """Collect every ``interval`` seconds; ship every ``ship_interval`` (default: each cycle)."""
        interval = self.settings.interval
        ship_every = max(1, round((self.settings.ship_interval or interval) / interval))
        next_tick = time.monotonic()
        done = 0
        while not self.stopping.is_set():
            mono = time.monotonic()
            self.record(*self.collect_once(datetime.now(UTC), mono))
            done += 1
            if done % ship_every == 0 or (cycles is not None and done >= cycles):
                batch = self.make_batch()
                if batch is not None:
                    if self.outbox is not None:
                        self.outbox.put(batch)
                    if on_batch is not None:
                        on_batch(batch)
            if cycles is not None and done >= cycles:
                return
            # A fixed period: the next tick is planned from the last, not from "now + interval".
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:
                next_tick = time.monotonic()
                delay = 0
            self.stopping.wait(delay)
