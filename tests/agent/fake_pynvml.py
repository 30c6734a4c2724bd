"""A fake ``pynvml`` module: real function names, return shapes and error classes.

Each ``FakeDevice`` holds plain values; ``unsupported`` names functions that raise
``NVMLError_NotSupported``; ``lost = True`` makes every call raise ``NVMLError_GpuIsLost``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """As pynvml's: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):  # noqa: N801  (pynvml's names)
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


class NVMLError_NotFound(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_FOUND)


class NVMLError_Timeout(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_TIMEOUT)


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_GPU_IS_LOST)


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


@dataclass
class FakeMig:
    gi: int
    ci: int
    name: str
    total: int
    used: int


@dataclass
class FakeDevice:
    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    util: tuple[int, int] = (87, 40)
    memory: tuple[int, int] = (80 * 1024**3, 20 * 1024**3)  # total, used
    power_mw: int = 312_456
    limit_mw: int = 400_000
    energy_mj: int = 9_876_543
    temperature: int = 61
    clocks: tuple[int, int] = (1410, 1593)  # SM, memory
    pcie_kb: tuple[int, int] = (1200, 300)  # RX, TX
    reasons: int = 0
    ecc: int = 0
    mig: list[FakeMig] | None = None
    processes: list[tuple[int, int]] = field(default_factory=list)  # pid, used bytes
    process_util: list[tuple[int, int, int]] = field(default_factory=list)  # pid, ts_us, sm
    unsupported: set[str] = field(default_factory=set)
    lost: bool = False


class FakeNvml:
    """Pass as ``NvmlCollector(FakeNvml(...))``; records calls in ``calls``."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_Timeout = NVMLError_Timeout
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(
        self, devices: list[FakeDevice], *, no_driver: bool = False, old_bindings: bool = False
    ) -> None:
        self.devices = devices
        self.no_driver = no_driver
        self.inits = 0
        self.calls: list[str] = []
        self.events: list[tuple[FakeDevice, int]] = []
        self.waits: list[int] = []
        if old_bindings:
            # nvidia-ml-py before 12.535 has only the "throttle" name.
            self.nvmlDeviceGetCurrentClocksEventReasons = None  # type: ignore[assignment]

    def _dev(self, h: Any, fn: str) -> Any:
        self.calls.append(fn)
        if isinstance(h, FakeMig):
            return h
        if h.lost:
            raise NVMLError_GpuIsLost()
        if fn in h.unsupported:
            raise NVMLError_NotSupported()
        return h

    def nvmlInit(self) -> None:  # noqa: N802
        self.inits += 1
        if self.no_driver:
            raise NVMLError_LibraryNotFound()

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeDevice:  # noqa: N802
        return self.devices[i]

    def nvmlDeviceGetUUID(self, h: Any) -> str:  # noqa: N802
        return str(self._dev(h, "uuid").uuid)

    def nvmlDeviceGetName(self, h: Any) -> str:  # noqa: N802
        return str(self._dev(h, "name").name)

    def nvmlDeviceGetUtilizationRates(self, h: FakeDevice) -> Any:  # noqa: N802
        d = self._dev(h, "utilization")
        return SimpleNamespace(gpu=d.util[0], memory=d.util[1])

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:  # noqa: N802
        d = self._dev(h, "memory")
        total, used = (d.total, d.used) if isinstance(d, FakeMig) else d.memory
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetPowerUsage(self, h: FakeDevice) -> int:  # noqa: N802
        return int(self._dev(h, "power").power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeDevice) -> int:  # noqa: N802
        return int(self._dev(h, "power_limit").limit_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeDevice) -> int:  # noqa: N802
        return int(self._dev(h, "energy").energy_mj)

    def nvmlDeviceGetTemperature(self, h: FakeDevice, sensor: int) -> int:  # noqa: N802
        assert sensor == self.NVML_TEMPERATURE_GPU
        return int(self._dev(h, "temperature").temperature)

    def nvmlDeviceGetClockInfo(self, h: FakeDevice, kind: int) -> int:  # noqa: N802
        d = self._dev(h, "clock")
        return int(d.clocks[0] if kind == self.NVML_CLOCK_SM else d.clocks[1])

    def nvmlDeviceGetPcieThroughput(self, h: FakeDevice, counter: int) -> int:  # noqa: N802
        d = self._dev(h, "pcie")
        return int(d.pcie_kb[0] if counter == 1 else d.pcie_kb[1])  # 1: RX_BYTES, 0: TX_BYTES

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeDevice) -> int:  # noqa: N802
        return int(self._dev(h, "clock_event_reasons").reasons)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeDevice) -> int:  # noqa: N802
        return int(self._dev(h, "clock_throttle_reasons").reasons)

    def nvmlDeviceGetTotalEccErrors(self, h: FakeDevice, kind: int, counter: int) -> int:  # noqa: N802
        assert (kind, counter) == (1, 0)  # uncorrected, volatile
        return int(self._dev(h, "ecc").ecc)

    def nvmlDeviceGetMigMode(self, h: FakeDevice) -> list[int]:  # noqa: N802
        d = self._dev(h, "mig")
        return [1, 1] if d.mig is not None else [0, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: FakeDevice) -> int:  # noqa: N802
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeDevice, i: int) -> FakeMig:  # noqa: N802
        if h.mig is None or i >= len(h.mig):
            raise NVMLError_NotFound()
        return h.mig[i]

    def nvmlDeviceGetGpuInstanceId(self, h: FakeMig) -> int:  # noqa: N802
        return h.gi

    def nvmlDeviceGetComputeInstanceId(self, h: FakeMig) -> int:  # noqa: N802
        return h.ci

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeDevice) -> list[Any]:  # noqa: N802
        d = self._dev(h, "processes")
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in d.processes]

    def nvmlDeviceGetProcessUtilization(self, h: FakeDevice, since: int) -> list[Any]:  # noqa: N802
        d = self._dev(h, "process_utilization")
        rows = [
            SimpleNamespace(pid=p, timeStamp=t, smUtil=sm, memUtil=0, encUtil=0, decUtil=0)
            for p, t, sm in d.process_util
            if t > since
        ]
        if not rows:
            raise NVMLError_NotFound()
        return rows

    def nvmlEventSetCreate(self) -> str:  # noqa: N802
        return "event-set"

    def nvmlDeviceGetSupportedEventTypes(self, h: FakeDevice) -> int:  # noqa: N802
        return 0x8 if "events" not in self._dev(h, "supported_events").unsupported else 0

    def nvmlDeviceRegisterEvents(self, h: FakeDevice, types: int, event_set: str) -> None:  # noqa: N802
        assert (types, event_set) == (0x8, "event-set")

    def nvmlEventSetWait(self, event_set: str, timeout_ms: int) -> Any:  # noqa: N802
        self.waits.append(timeout_ms)
        if not self.events:
            raise NVMLError_Timeout()
        device, xid = self.events.pop(0)
        return SimpleNamespace(device=device, eventType=0x8, eventData=xid)
