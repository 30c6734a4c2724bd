"""The simulated driver's library and device calls: the ``nvml…`` symbols behind the wire
format's readings (``nvml_driver.py`` holds the driver and registers these on import)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from agent.collectors.nvml_driver import (
    ARGUMENT_VERSION_MISMATCH,
    DRIVER_NOT_LOADED,
    INSUFFICIENT_SIZE,
    INVALID_ARGUMENT,
    MAX_MIG_DEVICES,
    NOT_AVAILABLE_ID,
    NOT_AVAILABLE_MEMORY,
    NOT_FOUND,
    NOT_SUPPORTED,
    SUCCESS,
    TIMEOUT,
    SimGpu,
    SimMigInstance,
    SimProcess,
    SimulatedDriver,
    address_of,
    as_int,
    put,
    put_text,
    set_pointer,
    symbol,
    target,
)

_MEMORY_V2 = 0x02000028  # nvmlMemory_v2
_TEMPERATURE_V1 = 0x100000C  # nvmlTemperature_v1
_CLOCK_MEM = 2  # NVML_CLOCK_MEM
_PCIE_RX = 1  # NVML_PCIE_UTIL_RX_BYTES
_EVENT_SET = 0x6E750000


class _ProcessDetail(ctypes.Structure):
    # nvmlProcessDetail_v1_t: 32 bytes where nvmlProcessInfo_v2_t has 24.
    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
        ("usedGpuCcProtectedMemory", ctypes.c_ulonglong),
    ]


# -- library ------------------------------------------------------------------------------------
@symbol("nvmlInitWithFlags", "init")
def _init(drv: SimulatedDriver, _flags: Any = 0) -> int:
    drv.init_attempts += 1
    if drv.init_attempts <= drv.init_failures:
        return DRIVER_NOT_LOADED
    drv.initialised = True
    return SUCCESS


symbol("nvmlInit_v2", "init")(_init)


@symbol("nvmlShutdown", "init")
def _shutdown(drv: SimulatedDriver) -> int:
    drv.initialised = False
    return SUCCESS


@symbol("nvmlErrorString", "init")
def _error_string(_drv: SimulatedDriver, code: Any) -> bytes:
    return f"NVML error {as_int(code)}".encode()


@symbol("nvmlSystemGetDriverVersion", "lib")
def _driver_version(drv: SimulatedDriver, buf: Any, size: Any) -> int:
    return put_text(buf, size, drv.version)


@symbol("nvmlDeviceGetCount_v2", "lib")
def _count(drv: SimulatedDriver, count: Any) -> int:
    return put(count, len(drv.gpus))


@symbol("nvmlDeviceGetHandleByIndex_v2", "lib")
def _by_index(drv: SimulatedDriver, index: Any, device: Any) -> int:
    i = as_int(index)
    if i >= len(drv.gpus):
        return INVALID_ARGUMENT
    gpu = drv.gpus[i]
    code = gpu.faults.get("nvmlDeviceGetHandleByIndex_v2", gpu.faults.get("*"))
    if code:
        return code
    set_pointer(target(device), drv._handle(gpu))
    return SUCCESS


@symbol("nvmlEventSetCreate", "lib")
def _event_set(drv: SimulatedDriver, event_set: Any) -> int:
    set_pointer(target(event_set), _EVENT_SET)
    return SUCCESS


@symbol("nvmlEventSetFree", "lib")
def _event_free(_drv: SimulatedDriver, _event_set: Any) -> int:
    return SUCCESS


@symbol("nvmlEventSetWait_v2", "lib")
def _event_wait(drv: SimulatedDriver, event_set: Any, data: Any, timeout_ms: Any) -> int:
    if address_of(event_set) != _EVENT_SET:
        return INVALID_ARGUMENT
    drv.event_waits.append(as_int(timeout_ms))
    with drv._lock:
        ready = [e for e in drv._events if drv._registered.get(e[0], 0) & e[1]]
        if not ready:
            return TIMEOUT
        drv._events.remove(ready[0])
    index, kind, value = ready[0]
    out = target(data)
    device = type(out).device  # write the handle into the struct's device field
    ctypes.c_void_p.from_address(ctypes.addressof(out) + device.offset).value = drv._handle(
        drv.gpus[index]
    )
    out.eventType, out.eventData = kind, value
    out.gpuInstanceId = out.computeInstanceId = NOT_AVAILABLE_ID
    return SUCCESS


# -- per GPU ------------------------------------------------------------------------------------
@symbol("nvmlDeviceGetUUID", "mig")
def _uuid(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, buf: Any, n: Any) -> int:
    return put_text(buf, n, gpu.uuid if mig is None else mig.uuid)


@symbol("nvmlDeviceGetName", "mig")
def _name(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, buf: Any, n: Any) -> int:
    return put_text(buf, n, gpu.name if mig is None else f"{gpu.name} MIG {mig.profile}")


@symbol("nvmlDeviceGetPciInfo_v3")
def _pci(_d: SimulatedDriver, gpu: SimGpu, _m: None, info: Any) -> int:
    out = target(info)
    domain, bus, rest = gpu.pci_bus_id.split(":")
    out.domain, out.bus, out.device = int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    out.busId = gpu.pci_bus_id.encode()
    out.busIdLegacy = f"{out.domain:04x}:{bus}:{rest}".encode()  # the 16-byte field of old drivers
    out.pciDeviceId = 0x233010DE
    return SUCCESS


@symbol("nvmlDeviceGetMemoryInfo", "mig")
def _memory(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    # v1: "used" counts the reserved memory too (nvml.h, nvmlMemory_t).
    total, used, reserved = _memory_of(gpu, mig)
    mem = target(out)
    mem.total, mem.used, mem.free = total, used + reserved, total - used - reserved
    return SUCCESS


@symbol("nvmlDeviceGetMemoryInfo_v2", "mig")
def _memory_v2(_d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    mem = target(out)
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


@symbol("nvmlDeviceGetUtilizationRates")
def _utilization(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
    if gpu.mig_instances is not None:
        return NOT_SUPPORTED  # a MIG-enabled GPU has no device-wide utilization
    util = target(out)
    util.gpu, util.memory = gpu.utilization_gpu, gpu.utilization_memory
    return SUCCESS


def _reading(name: str, value: Callable[..., int]) -> None:
    """A symbol that writes one number: ``value(gpu, *inputs)`` into its last argument."""

    def read(_d: SimulatedDriver, gpu: SimGpu, _m: None, *args: Any) -> int:
        *inputs, out = args
        return put(out, value(gpu, *(as_int(x) for x in inputs)))

    symbol(name)(read)


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
_reading(
    "nvmlDeviceGetMaxMigDeviceCount",
    lambda g: MAX_MIG_DEVICES if g.mig_instances is not None else 0,
)
_reading("nvmlDeviceGetSupportedEventTypes", lambda g: g.supported_events)


@symbol("nvmlDeviceGetTemperatureV")
def _temperature_v(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
    temp = target(out)
    if temp.version != _TEMPERATURE_V1:
        return ARGUMENT_VERSION_MISMATCH
    temp.temperature = gpu.temperature_c
    return SUCCESS


@symbol("nvmlDeviceGetMigMode")
def _mig_mode(_d: SimulatedDriver, gpu: SimGpu, _m: None, current: Any, pending: Any) -> int:
    mode = int(gpu.mig_instances is not None)
    put(current, mode)
    return put(pending, mode)


@symbol("nvmlDeviceGetMigDeviceHandleByIndex")
def _mig_handle(drv: SimulatedDriver, gpu: SimGpu, _m: None, index: Any, device: Any) -> int:
    instances = gpu.mig_instances
    if instances is None:
        return INVALID_ARGUMENT
    i = as_int(index)
    if i >= len(instances):
        return NOT_FOUND  # an empty slot
    set_pointer(target(device), drv._handle(gpu, instances[i]))
    return SUCCESS


@symbol("nvmlDeviceIsMigDeviceHandle", "mig")
def _is_mig(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return put(out, int(mig is not None))


@symbol("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", "mig")
def _parent(drv: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    if mig is None:
        return INVALID_ARGUMENT
    set_pointer(target(out), drv._handle(gpu))
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstanceId", "mig")
def _gi(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return NOT_SUPPORTED if mig is None else put(out, mig.gi_id)


@symbol("nvmlDeviceGetComputeInstanceId", "mig")
def _ci(_d: SimulatedDriver, _g: SimGpu, mig: SimMigInstance | None, out: Any) -> int:
    return NOT_SUPPORTED if mig is None else put(out, mig.ci_id)


def _processes(
    _d: SimulatedDriver, gpu: SimGpu, mig: SimMigInstance | None, count: Any, infos: Any
) -> int:
    """The count-in/count-out protocol of nvmlDeviceGetComputeRunningProcesses (all versions)."""
    procs = [
        p for p in gpu.processes if mig is None or (p.gi_id, p.ci_id) == (mig.gi_id, mig.ci_id)
    ]
    counter = target(count)
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
    symbol(f"nvmlDeviceGetComputeRunningProcesses{_version}", "mig")(_processes)


@symbol("nvmlDeviceGetProcessUtilization")
def _process_util(
    _d: SimulatedDriver, gpu: SimGpu, _m: None, samples: Any, count: Any, since: Any
) -> int:
    if gpu.mig_instances is not None:
        return NOT_SUPPORTED
    last_seen = as_int(since)
    rows = [r for r in gpu.process_samples if r[1] > last_seen]
    if not rows:
        return NOT_FOUND  # no sample since ``since``
    counter = target(count)
    if samples is None or counter.value < len(rows):
        counter.value = len(rows)
        return INSUFFICIENT_SIZE
    counter.value = len(rows)
    for out, (pid, ts, sm) in zip(samples, rows, strict=False):
        out.pid, out.timeStamp, out.smUtil, out.memUtil = pid, ts, sm, sm // 2
    return SUCCESS


@symbol("nvmlDeviceRegisterEvents")
def _register(drv: SimulatedDriver, gpu: SimGpu, _m: None, types: Any, event_set: Any) -> int:
    if address_of(event_set) != _EVENT_SET:
        return INVALID_ARGUMENT
    index = drv.gpus.index(gpu)
    drv._registered[index] = drv._registered.get(index, 0) | as_int(types)
    return SUCCESS
