"""The single NVML entry point: per-GPU readings through the ``pynvml`` API.

``NvmlCollector`` takes nvidia-ml-py, or any object with its function names (the simulator is
the same binding over a simulated driver library, ``nvml_driver.py``). For real drivers:

- NVML init is retried with backoff (1 s doubling to 60 s): the driver may still be loading.
- Newer calls first, older ones when the driver lacks them: processes v3 → v2 → v1, memory v2
  (``used`` without the driver's reserved memory) → v1, ``TemperatureV`` → ``Temperature``,
  ``ClocksEventReasons`` → ``ClocksThrottleReasons``. An unsupported field gives ``None``,
  logged once per (GPU, field).
- A GPU that cannot be opened or read is reported ``lost`` under its UUID, or under a key
  scoped to this node (by PCI bus id when NVML gives one) if its UUID was never read.
- Process records with an implausible pid are dropped; a listed process without utilization
  samples is idle (0 % SM). PCIe throughput (~20 ms per call) is read on a background thread.
- XID errors come from an NVML event set polled with a zero timeout.
- What only ``/metrics`` shows (memory temperature, NVLink, encoder, decoder, fan, ECC totals,
  remapped rows, GPM profiling ratios) is read by ``nvml_fields.MetricsReadings`` into
  ``GpuDetail.readings``; a reading a GPU does not support is not asked again.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.collectors.nvml_compat import error_name, memory_bytes, processes_v1, text
from agent.collectors.nvml_fields import MetricsReadings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that make a whole GPU unreadable, with what the log says about them.
_DOWN = {
    "GpuIsLost": "has fallen off the bus",
    "ResetRequired": "needs a reset (nvidia-smi -r or a reboot)",
    "LibRmVersionMismatch": "the NVML library and the kernel driver differ (reload the driver)",
    "Unknown": "answers Unknown Error",
}
# The GPU status sent for a GPU that cannot be read, by NVML error; any other error is "error".
DOWN_STATUS = {"GpuIsLost": "lost", "ResetRequired": "reset_required",
               "LibRmVersionMismatch": "driver_mismatch"}  # fmt: skip
_NO_INSTANCE = 0xFFFFFFFF  # a process record's GPU/compute instance id when MIG is off
_MISSING = {"FunctionNotFound", "ArgumentVersionMismatch"}  # an older driver, not a fault
_UNSUPPORTED = {"NotSupported", *_MISSING}  # not worth asking the same GPU again
PCIE_KB = 1024  # nvmlDeviceGetPcieThroughput answers in KB/s
PCIE_REFRESH_SECONDS = 10.0
INIT_RETRY_FIRST_SECONDS = 1.0
INIT_RETRY_MAX_SECONDS = 60.0
PID_MAX_PATH = Path("/proc/sys/kernel/pid_max")
PID_MAX_DEFAULT = 4_194_304  # PID_MAX_LIMIT on 64-bit Linux: no pid reaches it
GPU_KEY_MAX_LENGTH = 100  # the backend's gpus.uuid column
_XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
_MIG_ENABLED = 1  # NVML_DEVICE_MIG_ENABLE
# On the wire: MigInstance's fields, and "uuid" (which allocation matching reads; wire format v1
# has no field for it yet, and the backend ignores it).
_WIRE_MIG_KEYS = ("uuid", "gi_id", "ci_id", "profile", "memory_total_bytes", "memory_used_bytes")


def down_status(why: str) -> str:
    """The wire status of a GPU that cannot be read because of NVML error ``why``."""
    return DOWN_STATUS.get(why, "error")


def _instance_of(record: Any) -> dict[str, int]:
    """The MIG GPU and compute instance a process record names (none when MIG is off)."""
    gi = getattr(record, "gpuInstanceId", _NO_INSTANCE)
    ci = getattr(record, "computeInstanceId", _NO_INSTANCE)
    if not isinstance(gi, int) or gi >= _NO_INSTANCE:
        return {}
    out = {"gpu_instance_id": gi}
    if isinstance(ci, int) and ci < _NO_INSTANCE:
        out["compute_instance_id"] = ci
    return out


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or library on this host (yet)."""


class NvmlModule(Protocol):
    """The subset of pynvml the collector needs to start."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # noqa: N802  (pynvml's names)

    def nvmlInit(self) -> None: ...  # noqa: N802  (pynvml's names)
    def nvmlDeviceGetCount(self) -> int: ...  # noqa: N802
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...  # noqa: N802


@dataclass
class GpuDetail:
    """What NVML said about a GPU beyond wire format v1 (for /metrics and logs)."""

    key: str  # the UUID, or the node-scoped key of a GPU whose UUID was never read
    index: int
    status_reason: str | None = None  # the NVML error when the GPU is not ok
    memory_reserved_bytes: int | None = None
    pci_bus_id: str | None = None
    # Readings for /metrics by name (nvml_fields.READINGS): only what the GPU answered.
    readings: dict[str, float] = field(default_factory=dict)
    # MIG instances as on the wire, plus "uuid" and "pids" (the processes running on each).
    mig_instances: list[dict[str, Any]] = field(default_factory=list)


def load_pynvml() -> NvmlModule:
    """Import nvidia-ml-py; raise NvmlUnavailable when it is missing."""
    try:
        import pynvml
    except ImportError as e:
        raise NvmlUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from e
    return pynvml  # type: ignore[no-any-return]


def node_gpu_key(node: str, suffix: str) -> str:
    """``node:<node>:<suffix>``, hashed down to fit the backend's uuid column."""
    key = f"node:{node}:{suffix}"
    if len(key) > GPU_KEY_MAX_LENGTH:
        key = f"node:{hashlib.sha256(node.encode()).hexdigest()[:32]}:{suffix}"
    return key


class _GpuDown(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NvmlCollector:
    """Reads every GPU once per ``collect()``; starts NVML lazily, retrying with backoff."""

    def __init__(
        self,
        nvml: Any = None,
        *,
        node: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        pid_max_path: Path = PID_MAX_PATH,
        pcie_refresh_seconds: float | None = PCIE_REFRESH_SECONDS,
    ) -> None:
        self._nvml = nvml  # None: import nvidia-ml-py on first use
        self.node = node or socket.gethostname()
        self._clock = clock
        self._init_lock = threading.Lock()
        self._initialised = False
        self._init_error: NvmlUnavailable | None = None
        self._init_failures = 0
        self._next_init_at = 0.0
        self._warned: set[tuple[str, str]] = set()
        self._unsupported: set[tuple[str, str]] = set()  # (GPU, field) not asked again
        self._uuids: dict[int, str] = {}  # index → UUID, once read
        self._handles: dict[int, Any] = {}  # index → handle (valid until nvmlShutdown)
        self._names: dict[str, str | None] = {}
        self._bus_ids: dict[str, str | None] = {}
        self._metrics_readings = MetricsReadings()
        self._keys: dict[int, str] = {}  # index → node-scoped key of a GPU never read
        self._down: dict[str, str] = {}  # key → why, while a GPU is not ok
        self._variant: dict[str, int] = {}  # which of a call's versions this driver has
        self._events: Any = None
        self._proc_util_ts: dict[str, int] = {}
        self._pid_max_path = pid_max_path
        self._pid_max: int | None = None
        self._pcie_refresh = pcie_refresh_seconds
        self._pcie: dict[str, tuple[int | None, int | None]] = {}  # key → KB/s (rx, tx)
        self._pcie_handles: dict[str, Any] = {}
        self._pcie_thread: threading.Thread | None = None
        self._pcie_stop = threading.Event()
        self.details: dict[str, GpuDetail] = {}
        self.last_xid: dict[str, int] = {}
        self.xid_total: dict[str, int] = {}
        self.driver_version: str | None = None

    @property
    def nvml(self) -> Any:
        with self._init_lock:
            if self._initialised:
                return self._nvml
            now = self._clock()
            if self._init_error is not None and now < self._next_init_at:
                raise self._init_error
            try:
                nvml = self._nvml if self._nvml is not None else load_pynvml()
                try:
                    nvml.nvmlInit()
                except nvml.NVMLError as e:
                    raise NvmlUnavailable(
                        f"NVML could not start ({error_name(e)}: {e}); "
                        "is the NVIDIA driver installed and loaded?"
                    ) from e
            except NvmlUnavailable as e:
                # The driver may still be loading (DaemonSets start before it): try again later.
                delay = min(
                    INIT_RETRY_MAX_SECONDS,
                    INIT_RETRY_FIRST_SECONDS * 2 ** min(self._init_failures, 8),
                )
                self._init_failures += 1
                self._next_init_at = now + delay
                self._init_error = e
                log.debug("NVML init failed (%s); next try in %g s", e, delay)
                raise
            if self._init_failures:
                log.warning("NVML started after %d failed attempts", self._init_failures)
            self._nvml, self._initialised, self._init_error = nvml, True, None
            self._start(nvml)
            return nvml

    def _start(self, nvml: Any) -> None:
        try:
            self.driver_version = text(nvml.nvmlSystemGetDriverVersion())
        except (nvml.NVMLError, AttributeError):
            self.driver_version = None
        try:
            self._events = nvml.nvmlEventSetCreate()
        except (nvml.NVMLError, AttributeError) as e:
            log.warning("NVML events unavailable (%s); XID errors will not be counted", e)
            self._events = None

    def close(self) -> None:
        """Stop the PCIe thread; free the GPM samples."""
        self._pcie_stop.set()
        if self._initialised:
            self._metrics_readings.close()

    def _warn_once(self, gpu: str, field: str, why: str) -> None:
        if (gpu, field) not in self._warned:
            self._warned.add((gpu, field))
            log.warning("GPU %s: %s unavailable (%s); reporting null", gpu, field, why)

    def _newest(self, what: str, *variants: tuple[Any, ...]) -> Any:
        """The first of ``variants`` ((pynvml function or name, *args), newest first) that
        this driver has; remembered per node."""
        nvml = self._nvml
        mismatch = getattr(nvml, "NVMLLibraryMismatchError", AttributeError)
        i = self._variant.get(what, 0)
        while True:
            fn, *args = variants[i]
            try:
                return getattr(nvml, fn)(*args) if isinstance(fn, str) else fn(nvml, *args)
            except (nvml.NVMLError, AttributeError, mismatch) as e:
                # AttributeError: a binding without the function; the mismatch error: its
                # unversioned wrapper over a driver without the versioned symbol.
                missing = not isinstance(e, nvml.NVMLError) or error_name(e) in _MISSING
                if not missing or i + 1 == len(variants):
                    raise
            i += 1
            self._variant[what] = i
            log.info(
                "NVML: %s is not in this driver; using an older call", getattr(fn, "__name__", fn)
            )

    def _safe(self, gpu: str, field: str, fn: Callable[[], T], *, sticky: bool = False) -> T | None:
        """``fn()``, or None when the driver cannot answer (logged once per GPU and field).
        ``sticky``: a field the GPU or driver does not support is not asked again."""
        if sticky and (gpu, field) in self._unsupported:
            return None
        nvml = self._nvml
        mismatch = getattr(nvml, "NVMLLibraryMismatchError", AttributeError)
        try:
            return fn()
        except nvml.NVMLError as e:
            name = error_name(e)
            if name in _DOWN:
                raise _GpuDown(name) from e
            if sticky and name in _UNSUPPORTED:
                self._unsupported.add((gpu, field))
                log.info("GPU %s: %s not supported (%s); series absent", gpu, field, name)
            else:
                self._warn_once(gpu, field, name)
            return None
        except (AttributeError, mismatch):
            if sticky:
                self._unsupported.add((gpu, field))
                log.info("GPU %s: %s not in this driver or nvidia-ml-py; series absent", gpu, field)
            else:
                self._warn_once(gpu, field, "not in this driver or nvidia-ml-py")
            return None

    def collect(self, ts: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One reading of every GPU: (gpu inventory, samples) in the wire format."""
        nvml = self.nvml
        xids = self._poll_xids(nvml)
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as e:
            raise NvmlUnavailable(f"cannot count GPUs ({error_name(e)})") from e
        opened = [self._open(nvml, index) for index in range(count)]
        self._pcie_handles = {key: h for key, h, why in opened if why is None}
        if self._pcie_thread is None and self._pcie_refresh is not None:
            self.refresh_pcie()  # the first reading waits for it once; later ones never do
            self._start_pcie_thread(self._pcie_refresh)
        gpus: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        details: dict[str, GpuDetail] = {}
        for index, (key, handle, why) in enumerate(opened):
            detail = GpuDetail(key, index, status_reason=why)
            if why is None:
                try:
                    gpu, sample = self._read_handle(nvml, handle, key, index, ts, detail)
                except _GpuDown as e:
                    why = detail.status_reason = e.reason
                else:
                    if key in self._down:
                        log.warning("GPU #%d (%s) answers again", index, key)
                        del self._down[key]
                    has_events = self._events is not None
                    sample["xid_errors"] = len(xids.get(key, ())) if has_events else None
            if why is not None:
                gpu, sample = self._report_down(key, index, ts, why)
                detail.pci_bus_id = self._bus_ids.get(key)
            details[key] = detail
            gpus.append(gpu)
            samples.append(sample)
        self.details = details
        return gpus, samples

    def _open(self, nvml: Any, index: int) -> tuple[str, Any, str | None]:
        """(key, handle, why not readable) for GPU ``index``."""
        handle = self._handles.get(index)
        try:
            if handle is None:
                handle = self._handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            if index not in self._uuids:
                self._uuids[index] = text(nvml.nvmlDeviceGetUUID(handle))
                self._register_events(nvml, handle, self._uuids[index])
        except nvml.NVMLError as e:
            key = self._uuids.get(index) or self._node_key(nvml, index, handle)
            return key, None, error_name(e)
        return self._uuids[index], handle, None

    def _node_key(self, nvml: Any, index: int, handle: Any) -> str:
        # A made-up id such as "lost-0" would name another node's GPU too, and the backend
        # refuses a batch naming a GPU it knows on another node: scope the key to this node.
        if index not in self._keys:
            bus = None
            if handle is not None:  # some lost GPUs still answer their PCI info
                try:
                    bus = text(nvml.nvmlDeviceGetPciInfo_v3(handle).busId)
                except (nvml.NVMLError, AttributeError):
                    bus = None
            self._keys[index] = node_gpu_key(self.node, f"pci:{bus}" if bus else f"gpu{index}")
        return self._keys[index]

    def _report_down(
        self, key: str, index: int, ts: datetime, why: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._down.get(key) != why:
            self._down[key] = why
            said = _DOWN.get(why, f"cannot be read ({why})")
            log.error("GPU #%d (%s) %s; reporting it %s", index, key, said, down_status(why))
        gpu = {"uuid": key, "index": index, "status": down_status(why)}
        return gpu, {"gpu_uuid": key, "ts": ts.isoformat(), "status": down_status(why)}

    def _read_handle(
        self, nvml: Any, h: Any, uuid: str, index: int, ts: datetime, detail: GpuDetail
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self._safe
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        if uuid not in self._names:
            self._names[uuid] = s(uuid, "name", lambda: text(nvml.nvmlDeviceGetName(h)))
        name = self._names[uuid]
        util = s(uuid, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(h))
        mem = s(uuid, "memory", lambda: self._memory(nvml, h))
        power_mw = s(uuid, "power", lambda: nvml.nvmlDeviceGetPowerUsage(h))
        limit_mw = s(uuid, "power_limit", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h))
        energy = s(uuid, "energy", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h))
        temp = s(
            uuid,
            "temperature",
            lambda: self._newest(
                "temperature",
                ("nvmlDeviceGetTemperatureV", h, sensor),
                ("nvmlDeviceGetTemperature", h, sensor),
            ),
        )
        sm_clock = s(uuid, "sm_clock", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
        mem_clock = s(
            uuid, "mem_clock", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)
        )
        reasons = s(  # renamed in driver 535; the bitmask is the same
            uuid,
            "clock_event_reasons",
            lambda: self._newest(
                "clock_event_reasons",
                ("nvmlDeviceGetCurrentClocksEventReasons", h),
                ("nvmlDeviceGetCurrentClocksThrottleReasons", h),
            ),
        )
        # NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1, NVML_VOLATILE_ECC = 0 (since driver load).
        ecc = s(uuid, "ecc_uncorrected", lambda: nvml.nvmlDeviceGetTotalEccErrors(h, 1, 0))
        mig_mode = s(uuid, "mig_mode", lambda: nvml.nvmlDeviceGetMigMode(h))
        mig_on = None if mig_mode is None else mig_mode[0] == _MIG_ENABLED
        procs = s(uuid, "processes", lambda: self._processes(nvml, h, uuid))
        rx, tx = self._pcie.get(uuid, (None, None))
        total = None if mem is None else mem[0]
        detail.memory_reserved_bytes = None if mem is None else mem[2]
        if uuid not in self._bus_ids:
            self._bus_ids[uuid] = s(
                uuid, "pci_bus_id", lambda: text(nvml.nvmlDeviceGetPciInfo_v3(h).busId)
            )
        detail.pci_bus_id = self._bus_ids[uuid]
        detail.readings = self._metrics_readings.read(
            nvml,
            h,
            uuid,
            lambda field, fn: s(uuid, field, fn, sticky=True),
            now=self._clock(),
            gpm=not mig_on,  # under MIG, GPM samples per GPU instance
        )
        gpu: dict[str, Any] = {
            "uuid": uuid,
            "index": index,
            "model": name,
            "memory_total_bytes": total,
            "mig_mode": mig_on,
            "status": "ok",
        }
        if mig_on:
            instances = self._mig_instances(nvml, h, uuid, procs or [])
            detail.mig_instances = instances or []
            gpu["mig_instances"] = (
                None
                if instances is None
                else [{k: m[k] for k in _WIRE_MIG_KEYS} for m in instances]
            )
        sm_util = self._process_sm_util(nvml, h, uuid) if procs else {}
        sample: dict[str, Any] = {
            "gpu_uuid": uuid,
            "ts": ts.isoformat(),
            "status": "ok",
            "utilization_gpu": None if util is None else float(util.gpu),
            "utilization_memory": None if util is None else float(util.memory),
            "memory_used_bytes": None if mem is None else mem[1],
            "memory_total_bytes": total,
            "memory_reserved_bytes": None if mem is None else mem[2],
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
                    "used_memory_bytes": memory_bytes(p.usedGpuMemory),
                    # Listed but without samples since the last reading: idle, not unknown.
                    "sm_utilization": None if sm_util is None else sm_util.get(int(p.pid), 0.0),
                    **_instance_of(p),
                }
                for p in procs
            ],
        }
        return gpu, sample

    def _memory(self, nvml: Any, h: Any) -> tuple[int, int, int | None]:
        """(total, used, reserved): v2 counts the driver's reserved memory apart from ``used``."""
        version = getattr(nvml, "nvmlMemory_v2", None)
        v2 = () if version is None else (("nvmlDeviceGetMemoryInfo", h, version),)
        mem = self._newest("memory", *v2, ("nvmlDeviceGetMemoryInfo", h))
        reserved = getattr(mem, "reserved", None)
        return int(mem.total), int(mem.used), None if reserved is None else int(reserved)

    def _processes(self, nvml: Any, h: Any, uuid: str) -> list[Any]:
        """Compute processes with a plausible pid (v3, else v2, else v1 on old drivers)."""
        procs = self._newest(
            "processes",
            ("nvmlDeviceGetComputeRunningProcesses_v3", h),
            ("nvmlDeviceGetComputeRunningProcesses_v2", h),
            (processes_v1, h),
        )
        pid_max = self._read_pid_max()
        kept = [p for p in procs if 0 < int(p.pid) < pid_max]
        if len(kept) < len(procs):
            bad = sorted({int(p.pid) for p in procs} - {int(p.pid) for p in kept})
            if (uuid, "implausible_pids") not in self._warned:
                self._warned.add((uuid, "implausible_pids"))
                log.warning(
                    "GPU %s: dropped process records with implausible pids %s (pid_max %d); "
                    "nvidia-ml-py and the driver may disagree on the record layout",
                    uuid,
                    bad[:5],
                    pid_max,
                )
        return kept

    def _read_pid_max(self) -> int:
        if self._pid_max is None:
            try:
                self._pid_max = int(self._pid_max_path.read_text().strip())
            except (OSError, ValueError):
                self._pid_max = PID_MAX_DEFAULT
        return self._pid_max

    def _process_sm_util(self, nvml: Any, h: Any, uuid: str) -> dict[int, float] | None:
        """Per-pid SM utilization (%) from samples newer than the last ones seen; None if unknown."""
        since = self._proc_util_ts.get(uuid, 0)
        try:
            rows = nvml.nvmlDeviceGetProcessUtilization(h, since)
        except nvml.NVMLError as e:
            name = error_name(e)
            if name in _DOWN:
                raise _GpuDown(name) from e
            if name == "NotFound":  # no samples since ``since``: the processes were idle
                return {}
            self._warn_once(uuid, "process_utilization", name)
            return None
        except AttributeError:
            self._warn_once(uuid, "process_utilization", "not in this nvidia-ml-py")
            return None
        util: dict[int, float] = {}
        for row in rows:
            if row.timeStamp > since:
                util[int(row.pid)] = max(util.get(int(row.pid), 0.0), float(min(100, row.smUtil)))
        if rows:
            self._proc_util_ts[uuid] = max(since, *(int(r.timeStamp) for r in rows))
        return util

    def _mig_instances(
        self, nvml: Any, h: Any, uuid: str, procs: list[Any]
    ) -> list[dict[str, Any]] | None:
        count = self._safe(uuid, "mig_devices", lambda: nvml.nvmlDeviceGetMaxMigDeviceCount(h))
        if count is None:
            return None
        instances = []
        for i in range(count):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except nvml.NVMLError as e:
                if error_name(e) in _DOWN:
                    raise _GpuDown(error_name(e)) from e
                continue  # NotFound: an empty slot
            instances.append(self._mig_instance(nvml, mig, uuid, procs))
        return instances

    def _mig_instance(self, nvml: Any, mig: Any, uuid: str, procs: list[Any]) -> dict[str, Any]:
        s = self._safe
        name = s(uuid, "mig_name", lambda: text(nvml.nvmlDeviceGetName(mig)))
        mem = s(uuid, "mig_memory", lambda: self._memory(nvml, mig))
        gi = s(uuid, "mig_gi", lambda: int(nvml.nvmlDeviceGetGpuInstanceId(mig)))
        ci = s(uuid, "mig_ci", lambda: int(nvml.nvmlDeviceGetComputeInstanceId(mig)))
        on_it = [  # v2/v3 process records name their GPU and compute instance
            int(p.pid)
            for p in procs
            if gi is not None
            and (getattr(p, "gpuInstanceId", None), getattr(p, "computeInstanceId", None))
            == (gi, ci)
        ]
        return {
            "uuid": s(uuid, "mig_uuid", lambda: text(nvml.nvmlDeviceGetUUID(mig))),
            "gi_id": gi,
            "ci_id": ci,
            # "NVIDIA A100-SXM4-80GB MIG 1g.10gb" → "1g.10gb"
            "profile": None if name is None else name.rpartition("MIG ")[2] or name,
            "memory_total_bytes": None if mem is None else mem[0],
            "memory_used_bytes": None if mem is None else mem[1],
            "pids": on_it,
        }

    # -- PCIe ---------------------------------------------------------------------------------
    def refresh_pcie(self) -> None:
        """Read every open GPU's PCIe throughput (each call blocks ~20 ms in the driver)."""
        nvml = self._nvml
        for key, h in list(self._pcie_handles.items()):
            self._pcie[key] = (self._pcie_read(nvml, key, h, 1), self._pcie_read(nvml, key, h, 0))

    def _pcie_read(self, nvml: Any, key: str, h: Any, counter: int) -> int | None:
        field = "pcie_rx" if counter == 1 else "pcie_tx"  # NVML_PCIE_UTIL_RX_BYTES = 1
        try:
            return int(nvml.nvmlDeviceGetPcieThroughput(h, counter))
        except nvml.NVMLError as e:
            if error_name(e) not in _DOWN:  # a lost GPU is reported by collect()
                self._warn_once(key, field, error_name(e))
        except AttributeError:
            self._warn_once(key, field, "not in this nvidia-ml-py")
        return None

    def _start_pcie_thread(self, every: float) -> None:
        ref, stop = weakref.ref(self), self._pcie_stop

        def run() -> None:
            while not stop.wait(every):
                collector = ref()
                if collector is None:  # the collector is gone; so is the thread
                    return
                try:
                    collector.refresh_pcie()
                except Exception:  # a reading thread that dies would freeze PCIe silently
                    log.exception("PCIe throughput refresh failed")
                del collector

        self._pcie_thread = threading.Thread(target=run, name="nvml-pcie", daemon=True)
        self._pcie_thread.start()

    # -- XID events ---------------------------------------------------------------------------
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
            self._warn_once(uuid, "xid_events", error_name(e))

    def _poll_xids(self, nvml: Any) -> dict[str, list[int]]:
        """XID codes per GPU uuid since the last poll; waits 0 ms, never blocks."""
        found: dict[str, list[int]] = {}
        if self._events is None:
            return found
        for _ in range(1000):  # a storm of events must not hold up the loop either
            try:
                event = nvml.nvmlEventSetWait(self._events, 0)
            except nvml.NVMLError as e:
                if error_name(e) != "Timeout":
                    log.debug("XID poll: %s", error_name(e))
                break
            if not int(event.eventType) & _XID_EVENT:
                continue
            try:
                uuid = text(nvml.nvmlDeviceGetUUID(event.device))
            except nvml.NVMLError:
                continue
            xid = int(event.eventData)
            found.setdefault(uuid, []).append(xid)
            self.last_xid[uuid] = xid
            self.xid_total[uuid] = self.xid_total.get(uuid, 0) + 1
            log.error("GPU %s: XID %d", uuid, xid)
        return found
