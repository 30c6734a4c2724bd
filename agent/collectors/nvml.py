"""The single NVML entry point: per-GPU readings through the ``pynvml`` API.

``NvmlCollector`` takes any object with pynvml's function names, so the real library
(nvidia-ml-py), the simulator and the tests' fake all run this same code. Unsupported
functions give ``None`` and are logged once per (GPU, field); a GPU that falls off the bus is
reported ``lost``; a missing driver raises ``NvmlUnavailable`` for the caller to report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or library on this host."""


class NvmlModule(Protocol):
    """The subset of pynvml the collector uses (the simulator implements the same)."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # noqa: N802  (pynvml's names)

    def nvmlInit(self) -> None: ...  # noqa: N802  (pynvml's names)
    def nvmlDeviceGetCount(self) -> int: ...  # noqa: N802
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...  # noqa: N802


def load_pynvml() -> NvmlModule:
    """Import nvidia-ml-py; raise NvmlUnavailable when it or the driver is missing."""
    try:
        import pynvml
    except ImportError as e:
        raise NvmlUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from e
    return pynvml  # type: ignore[no-any-return]


def _error_name(nvml: NvmlModule, exc: Exception) -> str:
    for name in ("NVMLError_NotSupported", "NVMLError_GpuIsLost", "NVMLError_NoPermission"):
        cls = getattr(nvml, name, None)
        if cls is not None and isinstance(exc, cls):
            return name.removeprefix("NVMLError_")
    return type(exc).__name__


class NvmlCollector:
    """Reads every GPU once per ``collect()``; initialises NVML lazily, once."""

    def __init__(self, nvml: NvmlModule | None = None) -> None:
        self._nvml = nvml  # None: import nvidia-ml-py on first use
        self._init_lock = threading.Lock()
        self._initialised = False
        self._warned: set[tuple[str, str]] = set()

    @property
    def nvml(self) -> NvmlModule:
        with self._init_lock:
            if not self._initialised:
                nvml = self._nvml if self._nvml is not None else load_pynvml()
                try:
                    nvml.nvmlInit()
                except nvml.NVMLError as e:
                    raise NvmlUnavailable(f"NVML could not start: {e}") from e
                self._nvml = nvml
                self._initialised = True
            return self._nvml  # type: ignore[return-value]

    def _safe(self, gpu: str, field: str, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None when the driver cannot answer (logged once per GPU and field)."""
        nvml = self.nvml
        try:
            return fn()
        except nvml.NVMLError as e:
            if _error_name(nvml, e) == "GpuIsLost":
                raise
            if (gpu, field) not in self._warned:
                self._warned.add((gpu, field))
                log.warning(
                    "GPU %s: %s unavailable (%s); reporting null", gpu, field, _error_name(nvml, e)
                )
            return None

    def collect(self, ts: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One reading of every GPU: (gpu inventory, samples) in the wire format."""
        nvml = self.nvml
        gpus: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            gpu, sample = self._read_device(nvml, index, ts)
            gpus.append(gpu)
            samples.append(sample)
        return gpus, samples

    def _read_device(
        self, nvml: Any, index: int, ts: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        key = f"#{index}"
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        except nvml.NVMLError as e:
            uuid = f"lost-{index}"
            log.warning("GPU %s: cannot open device (%s)", key, _error_name(nvml, e))
            return {"uuid": uuid, "index": index, "status": "lost"}, {
                "gpu_uuid": uuid,
                "ts": ts.isoformat(),
                "status": "lost",
            }
        try:
            return self._read_handle(nvml, handle, uuid, index, ts)
        except nvml.NVMLError as e:
            if _error_name(nvml, e) != "GpuIsLost":
                raise
            log.error("GPU %s (%s) has fallen off the bus", key, uuid)
            return {"uuid": uuid, "index": index, "status": "lost"}, {
                "gpu_uuid": uuid,
                "ts": ts.isoformat(),
                "status": "lost",
            }

    def _read_handle(
        self, nvml: Any, h: Any, uuid: str, index: int, ts: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self._safe
        name = s(uuid, "name", lambda: _text(nvml.nvmlDeviceGetName(h)))
        util = s(uuid, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(h))
        mem = s(uuid, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(h))
        power_mw = s(uuid, "power", lambda: nvml.nvmlDeviceGetPowerUsage(h))
        limit_mw = s(uuid, "power_limit", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h))
        energy = s(uuid, "energy", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h))
        temp = s(
            uuid, "temperature", lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
        )
        sm_clock = s(uuid, "sm_clock", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
        mem_clock = s(
            uuid, "mem_clock", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)
        )
        procs = s(uuid, "processes", lambda: nvml.nvmlDeviceGetComputeRunningProcesses(h))
        total = None if mem is None else int(mem.total)
        gpu = {
            "uuid": uuid,
            "index": index,
            "model": name,
            "memory_total_bytes": total,
            "status": "ok",
        }
        sample: dict[str, Any] = {
            "gpu_uuid": uuid,
            "ts": ts.isoformat(),
            "status": "ok",
            "utilization_gpu": None if util is None else float(util.gpu),
            "utilization_memory": None if util is None else float(util.memory),
            "memory_used_bytes": None if mem is None else int(mem.used),
            "memory_total_bytes": total,
            "power_watts": None if power_mw is None else power_mw / 1000.0,
            "power_limit_watts": None if limit_mw is None else limit_mw / 1000.0,
            "energy_mj": None if energy is None else int(energy),
            "temperature_c": None if temp is None else float(temp),
            "sm_clock_mhz": sm_clock,
            "mem_clock_mhz": mem_clock,
            "processes": None
            if procs is None
            else [
                {"pid": int(p.pid), "used_memory_bytes": _memory(p.usedGpuMemory)} for p in procs
            ],
        }
        return gpu, sample


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _memory(value: int | None) -> int | None:
    # NVML reports NVML_VALUE_NOT_AVAILABLE (2**64 - 1) under some containers and on Windows.
    if value is None or value >= 2**63:
        return None
    return int(value)
