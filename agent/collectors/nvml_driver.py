"""A simulated NVIDIA driver library for the real ``pynvml`` binding (demos, tests, benchmarks).

nvidia-ml-py resolves every C function by attribute access on its loaded library
(``pynvml.nvmlLib``, see ``_nvmlGetFunctionPointer``), calls it with ctypes arguments and reads
the ``nvmlReturn_t`` it returns. ``SimulatedDriver.library`` stands in for that ``CDLL``: each
``nvml...`` symbol is a Python callable that takes the same arguments (``byref``/``pointer``
out-parameters, ``c_uint`` values, NVIDIA's own structs and arrays, char buffers), fills them
and returns the code. A symbol it does not define is missing, as on an older driver: the binding
raises ``NVMLError_FunctionNotFound`` (``NVMLLibraryMismatchError`` from its unversioned
wrappers, which is not an ``NVMLError``).

The symbols live in ``nvml_driver_calls.py`` (library and device calls behind the wire
format's readings) and ``nvml_driver_metrics.py`` (what only ``/metrics`` reads: field values,
fan, encoder and decoder, GPM profiling samples on Hopper and later GPUs); this module registers
them on import. A ``SimGpu`` field set to ``None`` is a reading that GPU does not have.

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
ALL_LINKS = 0xFFFFFFFF  # a field value's scopeId for "every NVLink of the GPU"
# GPM (GPU performance monitoring) came with Hopper: these model names have it.
GPM_MODELS = ("H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200")

# Symbols an R470 driver does not have (added in R510-R555); pass as ``missing=``.
R470_MISSING = frozenset(
    {
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetMemoryInfo_v2",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetTemperatureV",
        "nvmlGpmQueryDeviceSupport",
        "nvmlGpmSampleAlloc",
        "nvmlGpmSampleFree",
        "nvmlGpmSampleGet",
        "nvmlGpmMetricsGet",
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
    ecc_uncorrected: int = 0  # double-bit (uncorrected), volatile
    ecc_corrected: int | None = 0  # single-bit, volatile; None: ECC off (no ECC counters)
    ecc_corrected_aggregate: int = 0
    ecc_uncorrected_aggregate: int = 0
    memory_temperature_c: int | None = 45  # None: no memory sensor (GDDR boards)
    fan_speed_percent: int | None = None  # None: no fan (SXM boards)
    encoder_utilization: int | None = 0
    decoder_utilization: int | None = 0
    nvlink_rx_kib: int | None = 0  # data received over all NVLinks (KiB); None: no NVLink
    nvlink_tx_kib: int | None = 0
    pcie_replays: int = 0
    remapped_rows_correctable: int | None = 0  # None: no row remapping (before Ampere)
    remapped_rows_uncorrectable: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    # GPM profiling ratios follow utilization: graphics engine = GPU, SM = 90 %, tensor pipes
    # = 60 % of it, DRAM = memory utilization. None: as the model has GPM (GPM_MODELS).
    gpm_supported: bool | None = None
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


_BASE = 0x6E760000  # handle addresses: _BASE + (gpu index << 8) + MIG slot (0: the GPU itself)
_Impl = Callable[..., Any]
# name → (implementation, kind): "init" (callable before nvmlInit), "lib", "gpu" (a device
# handle first) or "mig" (a device or MIG device handle first).
_SYMBOLS: dict[str, tuple[_Impl, str]] = {}


def symbol(name: str, kind: str = "gpu") -> Callable[[_Impl], _Impl]:
    """Register an implementation of the C function ``name`` (see ``_SYMBOLS`` for kinds)."""

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: epoch seconds, for field-value timestamps."""
        self.gpus = gpus
        self.version = version
        self.missing = set(missing)
        self.faults = dict(faults or {})  # symbol → nvmlReturn_t, for every call
        self.init_failures = init_failures  # DRIVER_NOT_LOADED for this many init attempts
        self.pcie_delay_s = pcie_delay_s
        self.sleep = sleep
        self.before_call = before_call
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.init_attempts = 0
        self.initialised = False
        self.event_waits: list[int] = []  # timeouts (ms) the binding waited with
        self._events: list[tuple[int, int, int]] = []  # (gpu index, event type, data)
        self._registered: dict[int, int] = {}  # gpu index → event types
        # GPM sample address → (gpu index, sequence number, readings); None until it is taken.
        self.gpm_samples: dict[int, tuple[int, int, dict[int, float]] | None] = {}
        self._gpm_taken = 0
        self._lock = threading.Lock()
        self.library = SimulatedLibrary(self)

    def raise_event(self, index: int, data: int, event_type: int = XID_EVENT) -> None:
        """Queue an event (an XID by default) on GPU ``index`` for ``nvmlEventSetWait``."""
        with self._lock:
            self._events.append((index, event_type, data))

    def _device(self, handle: Any) -> tuple[SimGpu, SimMigInstance | None] | None:
        address = address_of(handle)
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
def target(arg: Any) -> Any:
    """The object an out-parameter points at: ``byref(x)`` or ``pointer(x)`` → ``x``."""
    obj = getattr(arg, "_obj", None)  # a byref() argument
    if obj is not None:
        return obj
    if isinstance(arg, ctypes._Pointer):
        return arg.contents
    return arg


def as_int(arg: Any) -> int:
    """A ``c_uint``-like argument (or a plain int) as an int."""
    return arg if isinstance(arg, int) else int(arg.value)


def address_of(handle: Any) -> int | None:
    """The address a handle (a ctypes pointer) holds."""
    if handle is None or isinstance(handle, int):
        return handle
    return int.from_bytes(bytes(handle), sys.byteorder)  # the pointer's own bytes: its address


def set_pointer(pointer: Any, address: int) -> None:
    """Make an out-parameter pointer hold ``address``."""
    ctypes.c_void_p.from_buffer(pointer).value = address


def put(arg: Any, value: int) -> int:
    """Write ``value`` through an out-parameter."""
    target(arg).value = value
    return SUCCESS


def put_text(buf: Any, size: Any, text: str) -> int:
    """Write ``text`` into a char buffer of ``size`` bytes."""
    data = text.encode()
    if len(data) + 1 > as_int(size):
        return INSUFFICIENT_SIZE
    buf.value = data
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


# The nvml… symbols themselves, registered with ``symbol`` on import.
from agent.collectors import nvml_driver_calls, nvml_driver_metrics  # noqa: E402, F401
