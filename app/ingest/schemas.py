"""The agent → backend wire format, version 1. ``tests/contract`` holds its example payloads.

Unknown fields are ignored so that a newer agent can talk to an older backend; fields that
are present must be valid, and every error names its field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
MAX_SAMPLES_PER_BATCH = 50_000

Percent = Annotated[float, Field(ge=0, le=100)]
Ratio = Annotated[float, Field(ge=0, le=1)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Name = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
ShortText = Annotated[str, Field(max_length=255)]
# "lost": fell off the bus; "error": a reading failed (no permission, unknown error);
# "reset_required": the GPU needs a reset; "driver_mismatch": the kernel module and library differ.
GpuStatus = Literal["ok", "lost", "error", "reset_required", "driver_mismatch"]
MAX_PID = 2**32 - 1  # any 32-bit unsigned pid (stored as BIGINT)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NodeIdentity(_Wire):
    name: Name
    hostname: ShortText | None = None
    cluster: Name | None = None
    provider: Literal["aws", "gcp", "azure", "onprem", "other"] | None = None
    instance_id: ShortText | None = None
    instance_type: ShortText | None = None
    region: ShortText | None = None
    labels: dict[str, ShortText] = Field(default_factory=dict)
    agent_version: Annotated[str, Field(max_length=40)] | None = None


class MigInstance(_Wire):
    uuid: Annotated[str, Field(max_length=100)] | None = None  # MIG-<uuid>
    gi_id: NonNegInt | None = None
    ci_id: NonNegInt | None = None
    profile: ShortText | None = None
    memory_total_bytes: NonNegInt | None = None
    memory_used_bytes: NonNegInt | None = None


class GpuInfo(_Wire):
    uuid: Annotated[str, Field(min_length=1, max_length=100)]
    index: NonNegInt
    model: ShortText | None = None
    memory_total_bytes: NonNegInt | None = None
    mig_mode: bool | None = None
    mig_instances: list[MigInstance] | None = None
    status: GpuStatus = "ok"


class ProcessOwner(_Wire):
    user: Annotated[str, Field(max_length=100)] | None = None
    pod_uid: Annotated[str, Field(max_length=64)] | None = None
    pod_name: ShortText | None = None
    namespace: ShortText | None = None
    container_id: Annotated[str, Field(max_length=100)] | None = None
    job_id: Annotated[str, Field(max_length=100)] | None = None
    account: Annotated[str, Field(max_length=100)] | None = None


class Allocation(_Wire):
    """Who holds a GPU, whether or not a process runs on it: a Slurm job, a Kubernetes pod."""

    job_id: Annotated[str, Field(max_length=100)] | None = None
    user: Annotated[str, Field(max_length=100)] | None = None
    account: Annotated[str, Field(max_length=100)] | None = None
    pod: ShortText | None = None
    namespace: ShortText | None = None
    container: ShortText | None = None


class ProcessSample(_Wire):
    pid: Annotated[int, Field(gt=0, le=MAX_PID)]
    used_memory_bytes: NonNegInt | None = None
    sm_utilization: Percent | None = None
    owner: ProcessOwner = Field(default_factory=ProcessOwner)
    # On a MIG GPU: the GPU instance and compute instance the process runs on.
    gpu_instance_id: NonNegInt | None = None
    compute_instance_id: NonNegInt | None = None


class GpuSampleIn(_Wire):
    gpu_uuid: Annotated[str, Field(min_length=1, max_length=100)]
    ts: AwareDatetime
    status: GpuStatus = "ok"
    utilization_gpu: Percent | None = None
    utilization_memory: Percent | None = None
    memory_used_bytes: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None
    memory_reserved_bytes: NonNegInt | None = None  # the driver's own, not in memory_used_bytes
    power_watts: NonNegFloat | None = None
    power_limit_watts: NonNegFloat | None = None
    energy_mj: NonNegInt | None = None
    temperature_c: float | None = None
    sm_clock_mhz: NonNegInt | None = None
    mem_clock_mhz: NonNegInt | None = None
    pcie_rx_bytes_per_s: NonNegFloat | None = None
    pcie_tx_bytes_per_s: NonNegFloat | None = None
    clock_event_reasons: NonNegInt | None = None
    ecc_uncorrected: NonNegInt | None = None
    xid_errors: NonNegInt | None = None
    processes: list[ProcessSample] | None = None
    allocation: Allocation | None = None

    # The allocation as the ``gpu_samples`` columns read it (``alloc_<field>``).
    @property
    def alloc_job_id(self) -> str | None:
        return self.allocation.job_id if self.allocation else None

    @property
    def alloc_user(self) -> str | None:
        return self.allocation.user if self.allocation else None

    @property
    def alloc_account(self) -> str | None:
        return self.allocation.account if self.allocation else None

    @property
    def alloc_pod(self) -> str | None:
        return self.allocation.pod if self.allocation else None

    @property
    def alloc_namespace(self) -> str | None:
        return self.allocation.namespace if self.allocation else None

    @property
    def alloc_container(self) -> str | None:
        return self.allocation.container if self.allocation else None


class HostSampleIn(_Wire):
    ts: AwareDatetime
    cpu_busy_ratio: Ratio | None = None
    iowait_ratio: Ratio | None = None
    io_pressure_some_ratio: Ratio | None = None
    io_pressure_full_ratio: Ratio | None = None
    disk_read_bytes_per_s: NonNegFloat | None = None
    disk_write_bytes_per_s: NonNegFloat | None = None
    net_rx_bytes_per_s: NonNegFloat | None = None
    net_tx_bytes_per_s: NonNegFloat | None = None
    memory_used_bytes: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None


class IngestBatch(_Wire):
    """One agent batch: who sent it, its GPUs, and their samples."""

    schema_version: Literal[1]
    batch_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    sent_at: AwareDatetime | None = None
    node: NodeIdentity
    gpus: list[GpuInfo] = Field(default_factory=list, max_length=1024)
    samples: list[GpuSampleIn] = Field(default_factory=list, max_length=MAX_SAMPLES_PER_BATCH)
    host_samples: list[HostSampleIn] = Field(default_factory=list, max_length=MAX_SAMPLES_PER_BATCH)

    @model_validator(mode="after")
    def _samples_name_known_gpus(self) -> IngestBatch:
        known = {gpu.uuid for gpu in self.gpus}
        if len(known) != len(self.gpus):
            raise ValueError("gpus: the same uuid is listed twice")
        for i, sample in enumerate(self.samples):
            if sample.gpu_uuid not in known:
                raise ValueError(
                    f"samples[{i}].gpu_uuid: {sample.gpu_uuid!r} is not among the batch's gpus"
                )
        return self


class IngestResult(BaseModel):
    inserted: int
    duplicates: int
    host_inserted: int
    host_duplicates: int
    detail: dict[str, Any] = Field(default_factory=dict)
