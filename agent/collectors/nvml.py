"""The single NVML entry point: per-GPU readings through the ``pynvml`` API.

``NvmlCollector`` takes any object with pynvml's function names, so the real library
(nvidia-ml-py), the simulator and the tests' fake all run this same code. NVML starts lazily,
once. An unsupported function gives ``None`` for its field, logged once per (GPU, field); a GPU
that falls off the bus is reported ``lost``; a missing driver raises ``NvmlUnavailable`` for the
caller to report while host metrics carry on. XID errors come from an NVML event set polled with
a zero timeout, so the loop never blocks on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# NVML return codes (nvml.h), for modules that do not define the named error classes.
_ERROR_CODES = {
    "NotSupported": 3,
    "NoPermission": 4,
    "NotFound": 6,
    "DriverNotLoaded": 9,
    "Timeout": 10,
    "LibraryNotFound": 12,
    "FunctionNotFound": 13,
    "GpuIsLost": 15,
}
PCIE_KB = 1024  # nvmlDeviceGetPcieThroughput answers in KB/s
_XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
_MIG_ENABLED = 1  # NVML_DEVICE_MIG_ENABLE


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or library on this host."""


class NvmlModule(Protocol):
    """The subset of pynvml the collector needs to start (the simulator implements the rest)."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # noqa: N802  (pynvml's names)

    def nvmlInit(self) -> None: ...  # noqa: N802  (pynvml's names)
    def nvmlDeviceGetCount(self) -> int: ...  # noqa: N802
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...  # noqa: N802


def load_pynvml() -> NvmlModule:
    """Import nvidia-ml-py; raise NvmlUnavailable when it is missing."""
    try:
        import pynvml
    except ImportError as e:
        raise NvmlUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from e
    return pynvml  # type: ignore[no-any-return]


def error_name(nvml: Any, exc: BaseException) -> str:
    """pynvml's name for an NVML error (``NotSupported``, ``GpuIsLost``, ...)."""
    code = getattr(exc, "value", None)
    for name, number in _ERROR_CODES.items():
        cls = getattr(nvml, f"NVMLError_{name}", None)
        if (isinstance(cls, type) and isinstance(exc, cls)) or code == number:
            return name
    return type(exc).__name__


class _GpuLost(Exception):
    pass


class NvmlCollector:
    """Reads every GPU once per ``collect()``; initialises NVML lazily, once."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml  # None: import nvidia-ml-py on first use
        self._init_lock = threading.Lock()
        self._initialised = False
        self._init_error: NvmlUnavailable | None = None
        self._warned: set[tuple[str, str]] = set()
        self._uuids: dict[int, str] = {}
        self._lost_uuids: set[str] = set()
        self._events: Any = None
        self._proc_util_ts: dict[str, int] = {}
        self.last_xid: dict[str, int] = {}
        self.xid_total: dict[str, int] = {}
        self.driver_version: str | None = None

    @property
    def nvml(self) -> Any:
        with self._init_lock:
            if self._init_error is not None:
                raise self._init_error
            if not self._initialised:
                try:
                    nvml = self._nvml if self._nvml is not None else load_pynvml()
                    try:
                        nvml.nvmlInit()
                    except nvml.NVMLError as e:
                        raise NvmlUnavailable(
                            f"NVML could not start ({error_name(nvml, e)}: {e}); "
                            "is the NVIDIA driver installed and loaded?"
                        ) from e
                except NvmlUnavailable as e:
                    self._init_error = e
                    raise
                self._nvml = nvml
                self._initialised = True
                self._start(nvml)
            return self._nvml

    def _start(self, nvml: Any) -> None:
        try:
            self.driver_version = _text(nvml.nvmlSystemGetDriverVersion())
        except (nvml.NVMLError, AttributeError):
            self.driver_version = None
        try:
            self._events = nvml.nvmlEventSetCreate()
        except (nvml.NVMLError, AttributeError) as e:
            log.warning("NVML events unavailable (%s); XID errors will not be counted", e)
            self._events = None

    def _warn_once(self, gpu: str, field: str, why: str) -> None:
        if (gpu, field) not in self._warned:
            self._warned.add((gpu, field))
            log.warning("GPU %s: %s unavailable (%s); reporting null", gpu, field, why)

    def _safe(self, gpu: str, field: str, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None when the driver cannot answer (logged once per GPU and field)."""
        nvml = self._nvml
        try:
            return fn()
        except nvml.NVMLError as e:
            name = error_name(nvml, e)
            if name == "GpuIsLost":
                raise _GpuLost from e
            self._warn_once(gpu, field, name)
            return None
        except AttributeError:
            # An older nvidia-ml-py without this function.
            self._warn_once(gpu, field, "not in this nvidia-ml-py")
            return None

    def collect(self, ts: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One reading of every GPU: (gpu inventory, samples) in the wire format."""
        nvml = self.nvml
        xids = self._poll_xids(nvml)
        gpus: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as e:
            raise NvmlUnavailable(f"cannot count GPUs ({error_name(nvml, e)})") from e
        for index in range(count):
            gpu, sample = self._read_device(nvml, index, ts, xids)
            gpus.append(gpu)
            samples.append(sample)
        return gpus, samples

    def _lost(self, uuid: str, index: int, ts: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        if uuid not in self._lost_uuids:
            self._lost_uuids.add(uuid)
            log.error("GPU #%d (%s) has fallen off the bus; reporting it lost", index, uuid)
        gpu = {"uuid": uuid, "index": index, "status": "lost"}
        return gpu, {"gpu_uuid": uuid, "ts": ts.isoformat(), "status": "lost"}

    def _read_device(
        self, nvml: Any, index: int, ts: datetime, xids: dict[str, list[int]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            if index not in self._uuids:
                self._uuids[index] = _text(nvml.nvmlDeviceGetUUID(handle))
                self._register_events(nvml, handle, self._uuids[index])
            uuid = self._uuids[index]
        except nvml.NVMLError as e:
            uuid = self._uuids.get(index, f"lost-{index}")
            if error_name(nvml, e) != "GpuIsLost":
                log.warning("GPU #%d: cannot open device (%s)", index, error_name(nvml, e))
            return self._lost(uuid, index, ts)
        try:
            gpu, sample = self._read_handle(nvml, handle, uuid, index, ts)
        except _GpuLost:
            return self._lost(uuid, index, ts)
        if uuid in self._lost_uuids:
            self._lost_uuids.discard(uuid)
            log.warning("GPU #%d (%s) answers again", index, uuid)
        sample["xid_errors"] = len(xids.get(uuid, ())) if self._events is not None else None
        return gpu, sample

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
        rx = s(uuid, "pcie_rx", lambda: nvml.nvmlDeviceGetPcieThroughput(h, 1))  # RX_BYTES
        tx = s(uuid, "pcie_tx", lambda: nvml.nvmlDeviceGetPcieThroughput(h, 0))  # TX_BYTES
        reasons = s(uuid, "clock_event_reasons", lambda: _clock_event_reasons(nvml, h))
        # NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1, NVML_VOLATILE_ECC = 0 (since driver load).
        ecc = s(uuid, "ecc_uncorrected", lambda: nvml.nvmlDeviceGetTotalEccErrors(h, 1, 0))
        mig_mode = s(uuid, "mig_mode", lambda: nvml.nvmlDeviceGetMigMode(h))
        mig_on = None if mig_mode is None else mig_mode[0] == _MIG_ENABLED
        procs = s(uuid, "processes", lambda: nvml.nvmlDeviceGetComputeRunningProcesses(h))
        total = None if mem is None else int(mem.total)
        gpu: dict[str, Any] = {
            "uuid": uuid,
            "index": index,
            "model": name,
            "memory_total_bytes": total,
            "mig_mode": mig_on,
            "status": "ok",
        }
        if mig_on:
            gpu["mig_instances"] = self._mig_instances(nvml, h, uuid)
        sm_util = self._process_sm_util(nvml, h, uuid) if procs else {}
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
            "pcie_rx_bytes_per_s": None if rx is None else float(rx * PCIE_KB),
            "pcie_tx_bytes_per_s": None if tx is None else float(tx * PCIE_KB),
            "clock_event_reasons": None if reasons is None else int(reasons),
            "ecc_uncorrected": None if ecc is None else int(ecc),
            "xid_errors": None,
            "processes": None
            if procs is None
            else [
                {
                    "pid": int(p.pid),
                    "used_memory_bytes": _memory(p.usedGpuMemory),
                    "sm_utilization": sm_util.get(int(p.pid)),
                }
                for p in procs
            ],
        }
        return gpu, sample

    def _process_sm_util(self, nvml: Any, h: Any, uuid: str) -> dict[int, float]:
        """Per-pid SM utilization (%) from samples newer than the last ones seen."""
        since = self._proc_util_ts.get(uuid, 0)
        try:
            rows = nvml.nvmlDeviceGetProcessUtilization(h, since)
        except nvml.NVMLError as e:
            name = error_name(nvml, e)
            if name == "GpuIsLost":
                raise _GpuLost from e
            if name != "NotFound":  # NotFound: no samples since ``since``, not a fault
                self._warn_once(uuid, "process_utilization", name)
            return {}
        except AttributeError:
            self._warn_once(uuid, "process_utilization", "not in this nvidia-ml-py")
            return {}
        util: dict[int, float] = {}
        for row in rows:
            if row.timeStamp > since:
                util[int(row.pid)] = max(util.get(int(row.pid), 0.0), float(min(100, row.smUtil)))
        if rows:
            self._proc_util_ts[uuid] = max(since, *(int(r.timeStamp) for r in rows))
        return util

    def _mig_instances(self, nvml: Any, h: Any, uuid: str) -> list[dict[str, Any]] | None:
        count = self._safe(uuid, "mig_devices", lambda: nvml.nvmlDeviceGetMaxMigDeviceCount(h))
        if count is None:
            return None
        instances = []
        for i in range(count):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except nvml.NVMLError as e:
                if error_name(nvml, e) == "GpuIsLost":
                    raise _GpuLost from e
                continue  # NotFound: an empty slot
            instances.append(self._mig_instance(nvml, mig, uuid))
        return instances

    def _mig_instance(self, nvml: Any, mig: Any, uuid: str) -> dict[str, Any]:
        s = self._safe
        name = s(uuid, "mig_name", lambda: _text(nvml.nvmlDeviceGetName(mig)))
        mem = s(uuid, "mig_memory", lambda: nvml.nvmlDeviceGetMemoryInfo(mig))
        return {
            "gi_id": s(uuid, "mig_gi", lambda: int(nvml.nvmlDeviceGetGpuInstanceId(mig))),
            "ci_id": s(uuid, "mig_ci", lambda: int(nvml.nvmlDeviceGetComputeInstanceId(mig))),
            # "NVIDIA A100-SXM4-40GB MIG 1g.5gb" → "1g.5gb"
            "profile": None if name is None else name.rpartition("MIG ")[2] or name,
            "memory_total_bytes": None if mem is None else int(mem.total),
            "memory_used_bytes": None if mem is None else int(mem.used),
        }

    def _register_events(self, nvml: Any, handle: Any, uuid: str) -> None:
        if self._events is None:
            return
        try:
            supported = int(nvml.nvmlDeviceGetSupportedEventTypes(handle))
            if supported & _XID_EVENT:
                nvml.nvmlDeviceRegisterEvents(handle, _XID_EVENT, self._events)
            else:
                self._warn_once(uuid, "xid_events", "NotSupported")
        except nvml.NVMLError as e:
            self._warn_once(uuid, "xid_events", error_name(nvml, e))

    def _poll_xids(self, nvml: Any) -> dict[str, list[int]]:
        """XID codes per GPU uuid since the last poll; waits 0 ms, never blocks."""
        found: dict[str, list[int]] = {}
        if self._events is None:
            return found
        for _ in range(1000):  # a storm of events must not hold up the loop either
            try:
                event = nvml.nvmlEventSetWait(self._events, 0)
            except nvml.NVMLError as e:
                if error_name(nvml, e) != "Timeout":
                    log.debug("XID poll: %s", error_name(nvml, e))
                break
            if not int(event.eventType) & _XID_EVENT:
                continue
            try:
                uuid = _text(nvml.nvmlDeviceGetUUID(event.device))
            except nvml.NVMLError:
                continue
            xid = int(event.eventData)
            found.setdefault(uuid, []).append(xid)
            self.last_xid[uuid] = xid
            self.xid_total[uuid] = self.xid_total.get(uuid, 0) + 1
            log.error("GPU %s: XID %d", uuid, xid)
        return found


def _clock_event_reasons(nvml: Any, h: Any) -> int:
    # Renamed in driver 535 / nvidia-ml-py 12.535; older bindings or drivers only have the
    # "throttle" name (the bitmask is the same).
    fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if fn is not None:
        try:
            return int(fn(h))
        except nvml.NVMLError as e:
            if error_name(nvml, e) != "FunctionNotFound":
                raise
    return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _memory(value: int | None) -> int | None:
    # NVML reports NVML_VALUE_NOT_AVAILABLE (2**64 - 1) under some containers and on Windows.
    if value is None or value >= 2**63:
        return None
    return int(value)
