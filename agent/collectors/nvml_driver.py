"""A simulated NVIDIA driver library for the real ``pynvml`` binding (demos, tests, benchmarks).

nvidia-ml-py resolves every C function by attribute access on its loaded library
(``pynvml.nvmlLib``, see ``_nvmlGetFunctionPointer``), calls it with ctypes arguments and reads
the ``nvmlReturn_t`` it returns. ``SimulatedDriver.library`` stands in for that ``CDLL``: each
``nvml...`` symbol is a Python callable that takes the same arguments (``byref``/``pointer``
out-parameters, ``c_uint`` values, NVIDIA's own structs and arrays, char buffers), fills them
and returns the code. A symbol it does not define is missing, as on an older driver: the binding
raises ``NVMLError_FunctionNotFound`` (``NVMLLibraryMismatchError`` from its unversioned
wrappers, which is not an ``NVMLError``).

``installed(driver)`` points the process's ``pynvml`` at a driver for a ``with`` block;
``load_binding(driver)`` gives a private copy of the binding bound to it, so that several
simulated nodes run in one process. GPUs are described by ``SimGpu``; faults are injected per
driver or per GPU and symbol (``faults``), and with ``missing``, ``init_failures``,
``pcie_delay_s`` and ``SimGpu.record_size_mismatch``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# nvmlReturn_t (nvml.h)
SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
INSUFFICIENT_SIZE = 7
DRIVER_NOT_LOADED = 9
TIMEOUT = 10
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999

GIB = 1024**3
MIB = 1024**2
XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
DBE_EVENT = 0x2  # nvmlEventTypeDoubleBitEccError
NOT_AVAILABLE_ID = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of a process outside MIG
NOT_AVAILABLE_MEMORY = 2**64 - 1  # NVML_VALUE_NOT_AVAILABLE for usedGpuMemory
PCIE_DELAY_SECONDS = 0.02  # nvmlDeviceGetPcieThroughput samples the bus for ~20 ms
MAX_MIG_DEVICES = 7
_MEMORY_V2 = 0x02000028  # nvmlMemory_v2
_TEMPERATURE_V1 = 0x100000C  # nvmlTemperature_v1
_CLOCK_MEM = 2  # NVML_CLOCK_MEM
_PCIE_RX = 1  # NVML_PCIE_UTIL_RX_BYTES

# Symbols an R470 driver does not have (added in R510-R555); pass as ``missing=``.
R470_MISSING = frozenset(
    {
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetMemoryInfo_v2",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetTemperatureV",
    }
)
# Deprecated symbols a future driver drops (NVML marks them "will be removed in CUDA 14.0").
DEPRECATED = frozenset({"nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksThrottleReasons"})


@dataclass
class SimProcess:
    pid: int
    used_memory_bytes: int | None = GIB  # None: NVML_VALUE_NOT_AVAILABLE
    gi_id: int = NOT_AVAILABLE_ID  # the MIG GPU instance and compute instance it runs on
    ci_id: int = NOT_AVAILABLE_ID


@dataclass
class SimMigInstance:
    uuid: str  # "MIG-..."
    gi_id: int
    ci_id: int = 0
    profile: str = "1g.10gb"
    memory_total_bytes: int = 10 * GIB
    memory_used_bytes: int = 0


@dataclass
class SimGpu:
    """One GPU as the driver reports it; change the fields between calls to move time on."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: str = "00000000:18:00.0"
    memory_total_bytes: int = 80 * GIB
    memory_used_bytes: int = 0  # allocated, without the reserved memory
    memory_reserved_bytes: int = 512 * MIB  # held by the driver and firmware
    utilization_gpu: int = 0
    utilization_memory: int = 0
    power_mw: int = 70_000
    power_limit_mw: int = 700_000
    energy_mj: int = 0
    temperature_c: int = 35
    sm_clock_mhz: int = 345
    mem_clock_mhz: int = 2619
    pcie_rx_kb: int = 0
    pcie_tx_kb: int = 0
    clock_event_reasons: int = 0
    ecc_uncorrected: int = 0
    processes: list[SimProcess] = field(default_factory=list)
    # What nvmlDeviceGetProcessUtilization keeps: (pid, timestamp in µs, SM %).
    process_samples: list[tuple[int, int, int]] = field(default_factory=list)
    mig_instances: list[SimMigInstance] | None = None  # None: MIG mode off
    supported_events: int = XID_EVENT | DBE_EVENT
    # Symbol (or "*" for every call on this GPU) → the nvmlReturn_t to answer; SUCCESS for a
    # symbol exempts it from "*" (a lost GPU whose PCI info still reads).
    faults: dict[str, int] = field(default_factory=dict)
    # Process records written in a larger layout than the binding's (a binding/driver mismatch):
    # the binding then reads shifted records with implausible pids.
    record_size_mismatch: bool = False


class _ProcessDetail(ctypes.Structure):
    # nvmlProcessDetail_v1_t: 32 bytes where nvmlProcessInfo_v2_t has 24.
    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
        ("usedGpuCcProtectedMemory", ctypes.c_ulonglong),
    ]


_BASE = 0x6E760000  # handle addresses: _BASE + (gpu index << 8) + MIG slot (0: the GPU itself)
_EVENT_SET = 0x6E750000
_Impl = Callable[..., Any]
# name → (implementation, kind): "init" (callable before nvmlInit), "lib", "gpu" (a device
# handle first) or "mig" (a device or MIG device handle first).
_SYMBOLS: dict[str, tuple[_Impl, str]] = {}


def _symbol(name: str, kind: str = "gpu") -> Callable[[_Impl], _Impl]:
    def register(fn: _Impl) -> _Impl:
        _SYMBOLS[name] = (fn, kind)
        return fn

    return register


class SimulatedDriver:
    """GPUs behind a fake ``libnvidia-ml.so``; ``calls`` counts the symbols the binding used."""

    def __init__(
        self,
        gpus: list[SimGpu],
        *,
        version: str = "550.54.15",
        missing: frozenset[str] | set[str] = frozenset(),
        faults: dict[str, int] | None = None,
        init_failures: int = 0,
        pcie_delay_s: float = PCIE_DELAY_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        before_call: Callable[[], None] | None = None,
    ) -> None:
        self.gpus = gpus
        self.version = version
        self.missing = set(missing)
        self.faults = dict(faults or {})  # symbol → nvmlReturn_t, for every call
        self.init_failures = init_failures  # DRIVER_NOT_LOADED for this many init attempts
        self.pcie_delay_s = pcie_delay_s
        self.sleep = sleep
        self.before_call = before_call
        self.calls: Counter[str] = Counter()
        self.init_attempts = 0
        self.initialised = False
        self.event_waits: list[int] = []  # timeouts (ms) the binding waited with
        self._events: list[tuple[int, int, int]] = []  # (gpu index, event type, data)
        self._registered: dict[int, int] = {}  # gpu index → event types
        self._lock = threading.Lock()
        self.library = SimulatedLibrary(self)

    def raise_event(self, index: int, data: int, event_type: int = XID_EVENT) -> None:
        """Queue an event (an XID by default) on GPU ``index`` for ``nvmlEventSetWait``."""
        with self._lock:
            self._events.append((index, event_type, data))

    def _device(self, handle: Any) -> tuple[SimGpu, SimMigInstance | None] | None:
        address = _address(handle)
        if address is None or address < _BASE:
            return None
        index, slot = divmod(address - _BASE, 256)
        if index >= len(self.gpus):
            return None
        gpu = self.gpus[index]
        if slot == 0:
            return gpu, None
        instances = gpu.mig_instances or []
        return (gpu, instances[slot - 1]) if slot <= len(instances) else None

    def _handle(self, gpu: SimGpu, mig: SimMigInstance | None = None) -> int:
        base = _BASE + (self.gpus.index(gpu) << 8)
        return base if mig is None else base + 1 + (gpu.mig_instances or []).index(mig)

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        self.calls[name] += 1
        if self.before_call is not None:
            self.before_call()
        impl, kind = _SYMBOLS[name]
        code = self.faults.get(name)
        if code is not None:
            return code
        if kind == "init":
            return impl(self, *args)
        if not self.initialised:
            return UNINITIALIZED
        if kind == "lib":
            return impl(self, *args)
        found = self._device(args[0]) if args else None
        if found is None:
            return INVALID_ARGUMENT
        gpu, mig = found
        code = gpu.faults.get(name, gpu.faults.get("*"))
        if code:
            return code
        if mig is not None and kind != "mig":
            return NOT_SUPPORTED  # most per-GPU readings do not exist on a MIG device handle
        if name == "nvmlDeviceGetPcieThroughput" and self.pcie_delay_s > 0:
            self.sleep(self.pcie_delay_s)
        return impl(self, gpu, mig, *args[1:])


class SimulatedLibrary:
    """What ``pynvml.nvmlLib`` holds: symbols by attribute, like a ``ctypes.CDLL``."""

    def __init__(self, driver: SimulatedDriver) -> None:
        # Weak, so that a binding left bound to this library does not keep the driver alive.
        self._driver = weakref.ref(driver)

    def __getattr__(self, name: str) -> _Symbol:
        driver = self._driver()
        if driver is None or name not in _SYMBOLS or name in driver.missing:
            raise AttributeError(name)  # the binding answers NVMLError_FunctionNotFound
        return _Symbol(self._driver, name)


class _Symbol:
    """One C function: callable, and takes ``restype``/``argtypes`` as ctypes functions do."""

    def __init__(self, driver: weakref.ref[SimulatedDriver], name: str) -> None:
        self._driver, self.__name__ = driver, name
        self.restype: Any = ctypes.c_int
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        driver = self._driver()
        return UNINITIALIZED if driver is None else driver.call(self.__name__, args)


# -- ctypes plumbing ---------------------------------------------------------------------------
def _out(arg: Any) -> Any:
    """The object an out-parameter points at: ``byref(x)`` or ``pointer(x)`` → ``x``."""
    obj = getattr(arg, "_obj", None)  # a byref() argument
    if obj is not None:
        return obj
    if isinstance(arg, ctypes._Pointer):
        return arg.contents
    return arg


def _value(arg: Any) -> int:
    return arg if isinstance(arg, int) else int(arg.value)


def _address(handle: Any) -> int | None:
    if handle is None or isinstance(handle, int):
        return handle
    return int.from_bytes(bytes(handle), sys.byteorder)  # the pointer's own bytes: its address


def _set_pointer(target: Any, address: int) -> None:
    ctypes.c_void_p.from_buffer(target).value = address


def _put(arg: Any, value: int) -> int:
    _out(arg).value = value
    return SUCCESS


def _text(buf: Any, size: Any, text: str) -> int:
    data = text.encode()
    if len(data) + 1 > _value(size):
        return INSUFFICIENT_SIZE
    buf.value = data
    return SUCCESS


# -- library ------------------------------------------------------------------------------------
@_symbol("nvmlInitWithFlags", "init")
def _init(drv: SimulatedDriver, _flags: Any = 0) -> int:
    drv.init_attempts += 1
    if drv.init_attempts <= drv.init_failures:
        return DRIVER_NOT_LOADED
    drv.initialised = True
    return SUCCESS


_symbol("nvmlInit_v2", "init")(_init)


@_symbol("nvmlShutdown", "init")
def _shutdown(drv: SimulatedDriver) -> int:
    drv.initialised = False
    return SUCCESS


@_symbol("nvmlErrorString", "init")
def _error_string(_drv: SimulatedDriver, code: Any) -> bytes:
    return f"NVML error {_value(code)}".encode()


@_symbol("nvmlSystemGetDriverVersion", "lib")
def _driver_version(drv: SimulatedDriver, buf: Any, size: Any) -> int:
    return _text(buf, size, drv.version)


@_symbol("nvmlDeviceGetCount_v2", "lib")
def _count(drv: SimulatedDriver, count: Any) -> int:
    return _put(count, len(drv.gpus))


@_symbol("nvmlDeviceGetHandleByIndex_v2", "lib")
def _by_index(drv: SimulatedDriver, index: Any, device: Any) -> int:
    i = _value(index)
    if i >= len(drv.gpus):
        return INVALID_ARGUMENT
    gpu = drv.gpus[i]
    code = gpu.faults.get("nvmlDeviceGetHandleByIndex_v2", gpu.faults.get("*"))
    if code:
        return code
    _set_pointer(_out(device), drv._handle(gpu))
    return SUCCESS


@_symbol("nvmlEventSetCreate", "lib")
def _event_set(drv: SimulatedDriver, event_set: Any) -> int:
    _set_pointer(_out(event_set), _EVENT_SET)
    return SUCCESS


@_symbol("nvmlEventSetFree", "lib")
def _event_free(_drv: SimulatedDriver, _event_set: Any) -> int:
    return SUCCESS


@_symbol("nvmlEventSetWait_v2", "lib")
def _event_wait(drv: SimulatedDriver, event_set: Any, data: Any, timeout_ms: Any) -> int:
    if _address(event_set) != _EVENT_SET:
        return INVALID_ARGUMENT
    drv.event_waits.append(_value(timeout_ms))
    with drv._lock:
        ready = [e for e in drv._events if drv._registered.get(e[0], 0) & e[1]]
        if not ready:
            return TIMEOUT
        drv._events.remove(ready[0])
    index, kind, value = ready[0]
    out = _out(data)
    device = type(out).device  # write the handle into the struct's device field
    ctypes.c_void_p.from_address(ctypes.addressof(out) + device.offset).value = drv._handle(
        drv.gpus[index]
    )
    out.eventType, out.eventData = kind, value
    out.gpuInstanceId = out.computeInstanceId = NOT_AVAILABLE_ID
    return SUCCESS


# -- per GPU ------------------------------------------------------------------------------------
@_symbol("nvmlDeviceGetUUID", "mig")
def _uuid(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, buf: Any, n: Any) -> int:
    return _text(buf, n, gpu.uuid if mig is None else mig.uuid)


@_symbol("nvmlDeviceGetName", "mig")
def _name(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, buf: Any, n: Any) -> int:
    return _text(buf, n, gpu.name if mig is None else f"{gpu.name} MIG {mig.profile}")


@_symbol("nvmlDeviceGetPciInfo_v3")
def _pci(_d: SimulatedDriver, gpu: SimGpu, _m: None, info: Any) -> int:
    out = _out(info)
    domain, bus, rest = gpu.pci_bus_id.split(":")
    out.domain, out.bus, out.device = int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    out.busId = gpu.pci_bus_id.encode()
    out.busIdLegacy = f"{out.domain:04x}:{bus}:{rest}".encode()  # the 16-byte field of old drivers
    out.pciDeviceId = 0x233010DE
    return SUCCESS


@_symbol("nvmlDeviceGetMemoryInfo", "mig")
def _memory(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    # v1: "used" counts the reserved memory too (nvml.h, nvmlMemory_t).
    total, used, reserved = _memory_of(gpu, mig)
    mem = _out(out)
    mem.total, mem.used, mem.free = total, used + reserved, total - used - reserved
    return SUCCESS


@_symbol("nvmlDeviceGetMemoryInfo_v2", "mig")
def _memory_v2(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    mem = _out(out)
    if mem.version != _MEMORY_V2:
        return ARGUMENT_VERSION_MISMATCH
    total, used, reserved = _memory_of(gpu, mig)
    mem.total, mem.reserved, mem.used = total, reserved, used
    mem.free = total - reserved - used
    return SUCCESS


def _memory_of(gpu: SimGpu, mig: SimMigInstance | None) -> tuple[int, int, int]:
    if mig is not None:
        return mig.memory_total_bytes, mig.memory_used_bytes, 0
    return gpu.memory_total_bytes, gpu.memory_used_bytes, gpu.memory_reserved_bytes


@_symbol("nvmlDeviceGetUtilizationRates")
def _utilization(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
    if gpu.mig_instances is not None:
        return NOT_SUPPORTED  # a MIG-enabled GPU has no device-wide utilization
    util = _out(out)
    util.gpu, util.memory = gpu.utilization_gpu, gpu.utilization_memory
    return SUCCESS


def _reading(name: str, value: Callable[..., int]) -> None:
    """A symbol that writes one number: ``value(gpu, *inputs)`` into its last argument."""

    def read(_d: SimulatedDriver, gpu: SimGpu, _m: None, *args: Any) -> int:
        *inputs, out = args
        return _put(out, value(gpu, *(_value(x) for x in inputs)))

    _symbol(name)(read)


_reading("nvmlDeviceGetPowerUsage", lambda g: g.power_mw)
_reading("nvmlDeviceGetEnforcedPowerLimit", lambda g: g.power_limit_mw)
_reading("nvmlDeviceGetTotalEnergyConsumption", lambda g: g.energy_mj)
_reading("nvmlDeviceGetCurrentClocksEventReasons", lambda g: g.clock_event_reasons)
_reading("nvmlDeviceGetCurrentClocksThrottleReasons", lambda g: g.clock_event_reasons)
_reading("nvmlDeviceGetTemperature", lambda g, _sensor: g.temperature_c)
_reading(
    "nvmlDeviceGetClockInfo",
    lambda g, kind: g.mem_clock_mhz if kind == _CLOCK_MEM else g.sm_clock_mhz,
)
_reading(
    "nvmlDeviceGetPcieThroughput",
    lambda g, counter: g.pcie_rx_kb if counter == _PCIE_RX else g.pcie_tx_kb,
)
_reading("nvmlDeviceGetTotalEccErrors", lambda g, _kind, _counter: g.ecc_uncorrected)
_reading(
    "nvmlDeviceGetMaxMigDeviceCount",
    lambda g: MAX_MIG_DEVICES if g.mig_instances is not None else 0,
)
_reading("nvmlDeviceGetSupportedEventTypes", lambda g: g.supported_events)


@_symbol("nvmlDeviceGetTemperatureV")
def _temperature_v(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
    temp = _out(out)
    if temp.version != _TEMPERATURE_V1:
        return ARGUMENT_VERSION_MISMATCH
    temp.temperature = gpu.temperature_c
    return SUCCESS


@_symbol("nvmlDeviceGetMigMode")
def _mig_mode(_d: SimulatedDriver, gpu: SimGpu, _m: None, current: Any, pending: Any) -> int:
    mode = int(gpu.mig_instances is not None)
    _put(current, mode)
    return _put(pending, mode)


@_symbol("nvmlDeviceGetMigDeviceHandleByIndex")
def _mig_handle(drv: SimulatedDriver, gpu: SimGpu, _m: None, index: Any, device: Any) -> int:
    instances = gpu.mig_instances
    if instances is None:
        return INVALID_ARGUMENT
    i = _value(index)
    if i >= len(instances):
        return NOT_FOUND  # an empty slot
    _set_pointer(_out(device), drv._handle(gpu, instances[i]))
    return SUCCESS


@_symbol("nvmlDeviceIsMigDeviceHandle", "mig")
def _is_mig(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return _put(out, int(mig is not None))


@_symbol("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", "mig")
def _parent(drv: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    if mig is None:
        return INVALID_ARGUMENT
    _set_pointer(_out(out), drv._handle(gpu))
    return SUCCESS


@_symbol("nvmlDeviceGetGpuInstanceId", "mig")
def _gi(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return NOT_SUPPORTED if mig is None else _put(out, mig.gi_id)


@_symbol("nvmlDeviceGetComputeInstanceId", "mig")
def _ci(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return NOT_SUPPORTED if mig is None else _put(out, mig.ci_id)


def _processes(
    _d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, count: Any, infos: Any
) -> int:
    """The count-in/count-out protocol of nvmlDeviceGetComputeRunningProcesses (all versions)."""
    procs = [
        p for p in gpu.processes if mig is None or (p.gi_id, p.ci_id) == (mig.gi_id, mig.ci_id)
    ]
    counter = _out(count)
    if not procs:
        counter.value = 0
        return SUCCESS
    if infos is None or counter.value < len(procs):
        counter.value = len(procs)
        return INSUFFICIENT_SIZE
    counter.value = len(procs)
    if gpu.record_size_mismatch:
        records = (_ProcessDetail * len(procs))()
        for rec, p in zip(records, procs, strict=True):
            rec.pid, rec.gpuInstanceId, rec.computeInstanceId = p.pid, p.gi_id, p.ci_id
            rec.usedGpuMemory = rec.usedGpuCcProtectedMemory = _used(p)
        ctypes.memmove(infos, records, min(ctypes.sizeof(records), ctypes.sizeof(infos)))
        return SUCCESS
    for rec, p in zip(infos, procs, strict=False):
        rec.pid, rec.usedGpuMemory = p.pid, _used(p)
        if hasattr(rec, "gpuInstanceId"):  # v2/v3 records; v1 has pid and memory only
            rec.gpuInstanceId, rec.computeInstanceId = p.gi_id, p.ci_id
    return SUCCESS


def _used(p: SimProcess) -> int:
    return NOT_AVAILABLE_MEMORY if p.used_memory_bytes is None else p.used_memory_bytes


for _version in ("", "_v2", "_v3"):
    _symbol(f"nvmlDeviceGetComputeRunningProcesses{_version}", "mig")(_processes)


@_symbol("nvmlDeviceGetProcessUtilization")
def _process_util(
    _d: SimulatedDriver, gpu: SimGpu, _m: None, samples: Any, count: Any, since: Any
) -> int:
    if gpu.mig_instances is not None:
        return NOT_SUPPORTED
    last_seen = _value(since)
    rows = [r for r in gpu.process_samples if r[1] > last_seen]
    if not rows:
        return NOT_FOUND  # no sample since ``since``
    counter = _out(count)
    if samples is None or counter.value < len(rows):
        counter.value = len(rows)
        return INSUFFICIENT_SIZE
    counter.value = len(rows)
    for out, (pid, ts, sm) in zip(samples, rows, strict=False):
        out.pid, out.timeStamp, out.smUtil, out.memUtil = pid, ts, sm, sm // 2
    return SUCCESS


@_symbol("nvmlDeviceRegisterEvents")
def _register(drv: SimulatedDriver, gpu: SimGpu, _m: None, types: Any, event_set: Any) -> int:
    if _address(event_set) != _EVENT_SET:
        return INVALID_ARGUMENT
    index = drv.gpus.index(gpu)
    drv._registered[index] = drv._registered.get(index, 0) | _value(types)
    return SUCCESS


# -- installing ---------------------------------------------------------------------------------
def bind(module: ModuleType, driver: SimulatedDriver | None) -> None:
    """Point a loaded ``pynvml`` at ``driver`` (None: unloaded), as ``_LoadNvmlLibrary`` would."""
    _load(module, None if driver is None else driver.library)


def _load(module: ModuleType, library: Any) -> None:
    with module.libLoadLock:
        vars(module).update(nvmlLib=library, _nvmlLib_refcount=0)
        # Function pointers are cached by name: stale ones would call the previous library.
        module._nvmlGetFunctionPointer_cache.clear()


@contextmanager
def installed(driver: SimulatedDriver) -> Iterator[ModuleType]:
    """The process's ``pynvml`` over ``driver`` for the block; the previous library after it."""
    import pynvml

    saved = pynvml.nvmlLib
    bind(pynvml, driver)
    try:
        yield pynvml
    finally:
        _load(pynvml, saved)


_bindings_made = 0
_bindings_lock = threading.Lock()


def load_binding(driver: SimulatedDriver) -> ModuleType:
    """A private copy of nvidia-ml-py bound to ``driver``.

    Each copy has its own library, function-pointer cache and error classes, so simulated nodes
    do not share the process's one ``pynvml.nvmlLib``. A copy costs a few ms and about 1.5 MB.
    """
    global _bindings_made
    spec = importlib.util.find_spec("pynvml")
    if spec is None or spec.origin is None:
        raise ImportError("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    with _bindings_lock:
        _bindings_made += 1
        name = f"_gpuledger_pynvml_{_bindings_made}"
    copy = importlib.util.spec_from_file_location(name, spec.origin)
    if copy is None or copy.loader is None:
        raise ImportError(f"cannot load {spec.origin}")
    module = importlib.util.module_from_spec(copy)
    # The binding builds its error classes on sys.modules[__name__]; the copy needs its own.
    sys.modules[name] = module
    try:
        copy.loader.exec_module(module)
    finally:
        del sys.modules[name]
    bind(module, driver)
    return module
