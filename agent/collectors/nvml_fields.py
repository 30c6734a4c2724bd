"""NVML readings for the local ``/metrics`` only (not on the wire): what dcgm-exporter adds.

``MetricsReadings.read`` is called by ``NvmlCollector`` for each readable GPU, with its ``safe``
wrapper, and returns the readings by name (``READINGS``). What it asks, per GPU and collection:

- one ``nvmlDeviceGetFieldValues`` call for the memory temperature and the NVLink data counters
  of all links (scope ``0xFFFFFFFF``, as DCGM asks; DCGM's ``DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL``
  is their change per second / 1000, NVIDIA/DCGM ``DcgmCacheManager.cpp``
  ``ReadAndCacheNvLinkBandwidth``);
- ``nvmlDeviceGetEncoderUtilization``, ``nvmlDeviceGetDecoderUtilization``,
  ``nvmlDeviceGetFanSpeed``;
- GPM (Hopper and later): ``nvmlGpmSampleGet`` into one of two samples, then
  ``nvmlGpmMetricsGet`` between the last two (the profiling ratios since the last collection);
- every ``SLOW_REFRESH_SECONDS``, one more field-values call for what changes rarely: ECC totals,
  PCIe replays, remapped rows (the values in between are the last ones read).

A call or field the GPU does not support is not asked again: an SXM board has no fan, a GDDR
board no memory sensor, an A100 no GPM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Safe = Callable[[str, Callable[[], T]], T | None]  # (field, reading) → value or None

SLOW_REFRESH_SECONDS = 60.0
ALL_LINKS = 0xFFFFFFFF  # a field value's scopeId for every NVLink of the GPU
_NOT_SUPPORTED, _INVALID_ARGUMENT = 3, 2  # a field this GPU lacks, an id this driver lacks
# nvml.h field ids → reading names.
_FAST_FIELDS = {
    82: "memory_temp_c",  # NVML_FI_DEV_MEMORY_TEMP
    139: "nvlink_rx_kib",  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, KiB
    138: "nvlink_tx_kib",  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
}
_SLOW_FIELDS = {
    3: "ecc_sbe_volatile",  # NVML_FI_DEV_ECC_SBE_VOL_TOTAL
    4: "ecc_dbe_volatile",  # NVML_FI_DEV_ECC_DBE_VOL_TOTAL
    5: "ecc_sbe_aggregate",  # NVML_FI_DEV_ECC_SBE_AGG_TOTAL
    6: "ecc_dbe_aggregate",  # NVML_FI_DEV_ECC_DBE_AGG_TOTAL
    94: "pcie_replays",  # NVML_FI_DEV_PCIE_REPLAY_COUNTER
    142: "remapped_rows_correctable",  # NVML_FI_DEV_REMAPPED_COR
    143: "remapped_rows_uncorrectable",  # NVML_FI_DEV_REMAPPED_UNC
    145: "row_remap_failure",  # NVML_FI_DEV_REMAPPED_FAILURE
}
_NVLINK_FIELDS = (139, 138)
# NVML_GPM_METRIC_* ids (percent) → reading names (ratios 0-1).
_GPM_METRICS = {
    1: "gr_engine_active",  # NVML_GPM_METRIC_GRAPHICS_UTIL
    2: "sm_active",  # NVML_GPM_METRIC_SM_UTIL
    5: "tensor_active",  # NVML_GPM_METRIC_ANY_TENSOR_UTIL
    10: "dram_active",  # NVML_GPM_METRIC_DRAM_BW_UTIL
}
_GPM_METRICS_GET_VERSION = 1  # NVML_GPM_METRICS_GET_VERSION
READINGS = (
    "memory_temp_c",
    "nvlink_bandwidth",  # DCGM's MB/s over all links, both directions
    "encoder_util",
    "decoder_util",
    "fan_speed",
    *_SLOW_FIELDS.values(),
    *_GPM_METRICS.values(),
)


@dataclass
class _Gpm:
    """A GPU's two GPM samples: ``last`` holds the previous collection's, ``next`` is refilled."""

    last: Any
    next: Any
    request: Any  # the nvmlGpmMetricsGet_t reused for every query


class MetricsReadings:
    """Per-GPU state between collections: GPM samples, NVLink counters, slow readings."""

    def __init__(self, *, slow_refresh_seconds: float = SLOW_REFRESH_SECONDS) -> None:
        self.slow_refresh_seconds = slow_refresh_seconds
        self._fields: dict[tuple[str, str], dict[int, str]] = {}  # fields still worth asking
        self._slow: dict[str, dict[str, float]] = {}
        self._slow_due: dict[str, float] = {}
        self._nvlink: dict[str, tuple[int, float]] = {}  # key → (KiB both ways, seconds)
        self._gpm: dict[str, _Gpm | None] = {}  # None: no GPM on this GPU
        self._nvml: Any = None

    def read(
        self, nvml: Any, h: Any, key: str, safe: Safe[Any], *, now: float, gpm: bool
    ) -> dict[str, float]:
        """This GPU's readings; ``now`` is the collector's monotonic clock, ``gpm`` False under
        MIG (GPM then samples per GPU instance, which is not read)."""
        self._nvml = nvml
        out: dict[str, float] = {}
        fast = self._field_values(nvml, h, key, "fast", _FAST_FIELDS, safe)
        if (temp := fast.get("memory_temp_c")) is not None:
            out["memory_temp_c"] = temp[0]
        if (bandwidth := self._nvlink_bandwidth(key, fast, now)) is not None:
            out["nvlink_bandwidth"] = bandwidth
        # Each answers [utilization %, sampling period µs].
        if (
            enc := safe("encoder_util", lambda: nvml.nvmlDeviceGetEncoderUtilization(h))
        ) is not None:
            out["encoder_util"] = int(enc[0])
        if (
            dec := safe("decoder_util", lambda: nvml.nvmlDeviceGetDecoderUtilization(h))
        ) is not None:
            out["decoder_util"] = int(dec[0])
        if (fan := safe("fan_speed", lambda: nvml.nvmlDeviceGetFanSpeed(h))) is not None:
            out["fan_speed"] = int(fan)
        if now >= self._slow_due.get(key, now):
            slow = self._field_values(nvml, h, key, "slow", _SLOW_FIELDS, safe)
            self._slow[key] = {name: value for name, (value, _) in slow.items()}
            self._slow_due[key] = now + self.slow_refresh_seconds
        out.update(self._slow.get(key, {}))
        if gpm:
            out.update(self._profiling(nvml, h, key, safe))
        return out

    def close(self) -> None:
        """Free the GPM samples."""
        nvml, states = self._nvml, [s for s in self._gpm.values() if s is not None]
        self._gpm.clear()
        for state in states:
            for sample in (state.last, state.next):
                try:
                    nvml.nvmlGpmSampleFree(sample)
                except nvml.NVMLError as e:
                    log.debug("GPM sample not freed: %s", e)

    def _field_values(
        self, nvml: Any, h: Any, key: str, group: str, fields: dict[int, str], safe: Safe[Any]
    ) -> dict[str, tuple[float, int]]:
        """name → (value, timestamp µs) of the fields this GPU answers; the ones it lacks are
        dropped from later calls."""
        asked = self._fields.setdefault((key, group), dict(fields))
        if not asked:
            return {}
        ids = [(fid, ALL_LINKS) if fid in _NVLINK_FIELDS else fid for fid in asked]
        values = safe(f"field_values_{group}", lambda: nvml.nvmlDeviceGetFieldValues(h, ids))
        if values is None:
            return {}
        found: dict[str, tuple[float, int]] = {}
        for fv in values:
            fid, code = int(fv.fieldId), int(fv.nvmlReturn)
            name = asked.get(fid)
            if name is None:
                continue
            if code in (_NOT_SUPPORTED, _INVALID_ARGUMENT):
                del asked[fid]
                log.info("GPU %s: %s not supported (NVML field %d); series absent", key, name, fid)
            elif code == 0:
                found[name] = (_field_value(fv), int(fv.timestamp))
        return found

    def _nvlink_bandwidth(
        self, key: str, fast: dict[str, tuple[float, int]], now: float
    ) -> float | None:
        """DCGM's NVLink bandwidth: KiB moved both ways since the last reading, per second,
        / 1000; 0 when nothing moved; None on the first reading or after a counter reset."""
        rx, tx = fast.get("nvlink_rx_kib"), fast.get("nvlink_tx_kib")
        if rx is None or tx is None:
            return None
        stamp = max(rx[1], tx[1])
        at = stamp / 1_000_000 if stamp else now  # the driver's timestamp, else ours
        total = int(rx[0] + tx[0])
        last = self._nvlink.get(key)
        self._nvlink[key] = (total, at)
        if last is None:
            return None
        moved, seconds = total - last[0], at - last[1]
        if moved == 0:
            return 0.0
        if moved < 0 or seconds <= 0:
            return None
        return moved / seconds / 1000

    def _profiling(self, nvml: Any, h: Any, key: str, safe: Safe[Any]) -> dict[str, float]:
        """GPM ratios between the last collection's sample and a new one (none the first time)."""
        if key not in self._gpm:
            self._gpm[key] = self._gpm_start(nvml, h, key, safe)
            return {}
        state = self._gpm[key]
        if (
            state is None
            or safe("gpm_sample", lambda: nvml.nvmlGpmSampleGet(h, state.next)) is None
        ):
            return {}
        request = state.request
        request.sample1, request.sample2 = state.last, state.next
        state.last, state.next = state.next, state.last
        if safe("gpm_metrics", lambda: nvml.nvmlGpmMetricsGet(request)) is None:
            return {}
        out: dict[str, float] = {}
        for i in range(len(_GPM_METRICS)):
            metric = request.metrics[i]
            name = _GPM_METRICS.get(int(metric.metricId))
            if name is not None and int(metric.nvmlReturn) == 0:
                out[name] = float(metric.value) / 100
        return out

    def _gpm_start(self, nvml: Any, h: Any, key: str, safe: Safe[Any]) -> _Gpm | None:
        support = safe("gpm", lambda: nvml.nvmlGpmQueryDeviceSupport(h))
        if support is None or not support.isSupportedDevice:
            if support is not None:
                log.info("GPU %s: no GPM (before Hopper); profiling series absent", key)
            return None
        samples = [safe("gpm_sample_alloc", nvml.nvmlGpmSampleAlloc) for _ in range(2)]
        if samples[0] is None or samples[1] is None:
            return None
        request = nvml.c_nvmlGpmMetricsGet_t()
        request.version = _GPM_METRICS_GET_VERSION
        request.numMetrics = len(_GPM_METRICS)
        for i, metric_id in enumerate(_GPM_METRICS):
            request.metrics[i].metricId = metric_id
        state = _Gpm(last=samples[0], next=samples[1], request=request)
        # Should this first sample fail, the next query fails once and the samples recover.
        safe("gpm_sample", lambda: nvml.nvmlGpmSampleGet(h, state.last))
        return state


def _field_value(fv: Any) -> float:
    """An ``nvmlFieldValue_t``'s value, by its ``valueType`` (nvmlValueType_t): a float for
    ``NVML_VALUE_TYPE_DOUBLE``, else an int."""
    kind, v = int(fv.valueType), fv.value
    if kind == 0:
        return float(v.dVal)
    return int(
        (v.uiVal, v.ulVal, v.ullVal, v.sllVal, v.siVal, v.usVal)[kind - 1]
        if kind <= 6
        else v.ullVal
    )
