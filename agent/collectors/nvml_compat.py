"""What nvidia-ml-py versions and drivers differ on: error names, the v1 process records of
drivers before R450, strings as bytes or str, and NVML's "value not available"."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace
from typing import Any

_SUCCESS, _INSUFFICIENT_SIZE = 0, 7


def error_name(exc: BaseException) -> str:
    """pynvml's name for an NVML error (``NotSupported``, ``GpuIsLost``, ...)."""
    # pynvml.NVMLError(code) builds the subclass NVMLError_<Name> for every code it knows.
    return type(exc).__name__.removeprefix("NVMLError_")


class _ProcessInfoV1(ctypes.Structure):
    # nvmlProcessInfo_v1_t: what drivers before the _v2 call (R450 and older) write.
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


def processes_v1(nvml: Any, h: Any) -> list[Any]:
    """Compute processes through the unversioned call, as v1 records (pid and memory)."""
    # nvidia-ml-py no longer wraps the unversioned call (its wrapper now means v3), so call the
    # symbol through the binding's own lookup, as nvitop does for old drivers.
    fn = nvml._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses")
    count = ctypes.c_uint(0)
    ret = fn(h, ctypes.byref(count), None)
    if ret == _SUCCESS:
        return []
    if ret != _INSUFFICIENT_SIZE:
        raise nvml.NVMLError(ret)
    count.value = count.value * 2 + 5
    records = (_ProcessInfoV1 * count.value)()
    ret = fn(h, ctypes.byref(count), records)
    if ret != _SUCCESS:
        raise nvml.NVMLError(ret)
    return [
        SimpleNamespace(pid=r.pid, usedGpuMemory=r.usedGpuMemory) for r in records[: count.value]
    ]


def text(value: str | bytes) -> str:
    """A string NVML returned, whichever type the binding gave it."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def memory_bytes(value: int | None) -> int | None:
    """A process's memory in bytes, None when NVML cannot tell."""
    # NVML reports NVML_VALUE_NOT_AVAILABLE (2**64 - 1) under some containers and on Windows.
    if value is None or value >= 2**63:
        return None
    return int(value)
