"""The simulated driver's readings for ``/metrics``: field values (memory temperature, NVLink
data counters, ECC totals, PCIe replays, remapped rows), ECC totals by type, fan, encoder and
decoder, and GPM profiling samples on Hopper and later GPUs (``nvml_driver.py`` registers these
on import). A ``SimGpu`` field set to ``None`` is a reading that GPU does not have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.collectors.nvml_driver import (
    ALL_LINKS,
    ARGUMENT_VERSION_MISMATCH,
    GPM_MODELS,
    INVALID_ARGUMENT,
    NOT_SUPPORTED,
    SUCCESS,
    SimGpu,
    SimulatedDriver,
    address_of,
    as_int,
    put,
    set_pointer,
    symbol,
    target,
)

_GPM_SUPPORT_VERSION = 1  # NVML_GPM_SUPPORT_VERSION
_GPM_METRICS_GET_VERSION = 1  # NVML_GPM_METRICS_GET_VERSION


# -- readings for /metrics --------------------------------------------------------------------
@symbol("nvmlDeviceGetTotalEccErrors")
def _ecc_total(
    _d: SimulatedDriver, gpu: SimGpu, _m: None, kind: Any, counter: Any, out: Any
) -> int:
    # kind: NVML_MEMORY_ERROR_TYPE_CORRECTED 0 / UNCORRECTED 1; counter: VOLATILE 0 / AGGREGATE 1
    value = _ecc(gpu, as_int(kind), as_int(counter))
    return NOT_SUPPORTED if value is None else put(out, value)


def _ecc(gpu: SimGpu, kind: int, counter: int) -> int | None:
    if gpu.ecc_corrected is None:
        return None  # ECC off: no counters at all
    volatile = (gpu.ecc_corrected, gpu.ecc_uncorrected)
    aggregate = (gpu.ecc_corrected_aggregate, gpu.ecc_uncorrected_aggregate)
    return (aggregate if counter else volatile)[kind]


def _optional(name: str, value: Callable[[SimGpu], int | None]) -> None:
    """A one-number symbol that answers NOT_SUPPORTED where ``value`` is None."""

    def read(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
        v = value(gpu)
        return NOT_SUPPORTED if v is None else put(out, v)

    symbol(name)(read)


_optional("nvmlDeviceGetFanSpeed", lambda g: g.fan_speed_percent)


def _codec(name: str, value: Callable[[SimGpu], int | None]) -> None:
    """nvmlDevice{Encoder,Decoder}Utilization: (utilization %, sampling period µs)."""

    def read(_d: SimulatedDriver, gpu: SimGpu, _m: None, util: Any, period: Any) -> int:
        v = value(gpu)
        if v is None:
            return NOT_SUPPORTED
        put(period, 167_000)
        return put(util, v)

    symbol(name)(read)


_codec("nvmlDeviceGetEncoderUtilization", lambda g: g.encoder_utilization)
_codec("nvmlDeviceGetDecoderUtilization", lambda g: g.decoder_utilization)

# nvmlValueType_t
_DOUBLE, _UINT, _ULL = 0, 1, 3


def _field(gpu: SimGpu, field_id: int, scope: int) -> tuple[int, float | None] | None:
    """(value type, value) of one NVML field; None: an id this driver does not know; value
    None: not supported on this GPU."""
    ecc_on = gpu.ecc_corrected is not None
    remap_on = gpu.remapped_rows_correctable is not None
    if field_id in (138, 139):  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX / _RX (KiB)
        total = gpu.nvlink_tx_kib if field_id == 138 else gpu.nvlink_rx_kib
        return _ULL, None if total is None or scope != ALL_LINKS else total
    if field_id in (3, 4, 5, 6):  # NVML_FI_DEV_ECC_{SBE,DBE}_{VOL,AGG}_TOTAL
        kind, counter = (field_id - 3) % 2, (field_id - 3) // 2
        return _ULL, _ecc(gpu, kind, counter) if ecc_on else None
    readings: dict[int, tuple[int, float | None]] = {
        82: (_UINT, gpu.memory_temperature_c),  # NVML_FI_DEV_MEMORY_TEMP
        94: (_UINT, gpu.pcie_replays),  # NVML_FI_DEV_PCIE_REPLAY_COUNTER
        142: (_UINT, gpu.remapped_rows_correctable),  # NVML_FI_DEV_REMAPPED_COR
        143: (_UINT, gpu.remapped_rows_uncorrectable if remap_on else None),
        144: (_UINT, int(gpu.remap_pending) if remap_on else None),
        145: (_UINT, int(gpu.remap_failure) if remap_on else None),
    }
    return readings.get(field_id)


@symbol("nvmlDeviceGetFieldValues")
def _field_values(drv: SimulatedDriver, gpu: SimGpu, _m: None, count: Any, values: Any) -> int:
    array = target(values)
    stamp = int(drv.clock() * 1_000_000)
    for fv in array[: as_int(count)]:
        found = _field(gpu, int(fv.fieldId), int(fv.scopeId))
        fv.timestamp, fv.latencyUsec = stamp, 0
        if found is None:
            fv.nvmlReturn = INVALID_ARGUMENT  # an id this driver does not know
            continue
        kind, value = found
        fv.valueType = kind
        if value is None:
            fv.nvmlReturn = NOT_SUPPORTED
        elif kind == _DOUBLE:
            fv.nvmlReturn, fv.value.dVal = SUCCESS, float(value)
        elif kind == _UINT:
            fv.nvmlReturn, fv.value.uiVal = SUCCESS, int(value)
        else:
            fv.nvmlReturn, fv.value.ullVal = SUCCESS, int(value)
    return SUCCESS


# -- GPM (GPU performance monitoring, Hopper and later) -----------------------------------------
_GPM_BASE = 0x6E740000  # sample addresses
_GPM_GRAPHICS, _GPM_SM, _GPM_TENSOR, _GPM_DRAM = 1, 2, 5, 10  # NVML_GPM_METRIC_* ids


def gpm_supported(gpu: SimGpu) -> bool:
    """Whether the simulated GPU has GPM: as configured, else by its model (Hopper and later)."""
    if gpu.gpm_supported is not None:
        return gpu.gpm_supported
    return any(model in gpu.name for model in GPM_MODELS)


def gpm_readings(gpu: SimGpu) -> dict[int, float]:
    """The GPM metrics (in %) a sample of ``gpu`` holds now."""
    util = float(gpu.utilization_gpu)
    return {
        _GPM_GRAPHICS: util,
        _GPM_SM: util * 0.9,
        _GPM_TENSOR: util * 0.6,
        _GPM_DRAM: float(gpu.utilization_memory),
    }


@symbol("nvmlGpmQueryDeviceSupport")
def _gpm_support(_d: SimulatedDriver, gpu: SimGpu, _m: None, out: Any) -> int:
    support = target(out)
    if support.version != _GPM_SUPPORT_VERSION:
        return ARGUMENT_VERSION_MISMATCH
    support.isSupportedDevice = int(gpm_supported(gpu))
    return SUCCESS


@symbol("nvmlGpmSampleAlloc", "lib")
def _gpm_alloc(drv: SimulatedDriver, sample: Any) -> int:
    with drv._lock:
        address = _GPM_BASE + 16 * len(drv.gpm_samples)
        drv.gpm_samples[address] = None
    set_pointer(target(sample), address)
    return SUCCESS


@symbol("nvmlGpmSampleFree", "lib")
def _gpm_free(drv: SimulatedDriver, sample: Any) -> int:
    address = address_of(sample)
    if address not in drv.gpm_samples:
        return INVALID_ARGUMENT
    del drv.gpm_samples[address]
    return SUCCESS


@symbol("nvmlGpmSampleGet")
def _gpm_sample(drv: SimulatedDriver, gpu: SimGpu, _m: None, sample: Any) -> int:
    address = address_of(sample)
    if address not in drv.gpm_samples:
        return INVALID_ARGUMENT
    if not gpm_supported(gpu):
        return NOT_SUPPORTED
    with drv._lock:
        drv._gpm_taken += 1
        drv.gpm_samples[address] = (drv.gpus.index(gpu), drv._gpm_taken, gpm_readings(gpu))
    return SUCCESS


@symbol("nvmlGpmMetricsGet", "lib")
def _gpm_metrics(drv: SimulatedDriver, metrics_get: Any) -> int:
    """The metrics between two samples of one GPU, the second taken after the first: the
    activity the second one saw."""
    get = target(metrics_get)
    if get.version != _GPM_METRICS_GET_VERSION:
        return ARGUMENT_VERSION_MISMATCH
    first = drv.gpm_samples.get(address_of(get.sample1) or 0)
    second = drv.gpm_samples.get(address_of(get.sample2) or 0)
    if first is None or second is None or first[0] != second[0] or first[1] >= second[1]:
        return INVALID_ARGUMENT
    readings = second[2]
    for i in range(get.numMetrics):
        metric = get.metrics[i]
        value = readings.get(int(metric.metricId))
        if value is None:
            metric.nvmlReturn = NOT_SUPPORTED
        else:
            metric.nvmlReturn, metric.value = SUCCESS, value
    return SUCCESS
