"""Who holds each GPU, whether or not a process runs on it: Slurm job, Kubernetes pod.

A GPU that a job or pod holds and leaves idle has no process, so process attribution
(``attribution.py``) cannot name its holder. ``AllocationCollector.collect`` asks the
schedulers' own records instead, each source optional:

- Kubernetes: the kubelet's pod-resources API (gRPC ``v1.PodResourcesLister/List`` on
  ``/var/lib/kubelet/pod-resources/kubelet.sock``) names the pod and container each device of
  ``nvidia.com/gpu`` or ``nvidia.com/mig-*`` is assigned to. Device ids are GPU or MIG UUIDs
  (indices with the device plugin's index strategy); a shared device's ``::<n>`` suffix is cut,
  as dcgm-exporter does (``internal/pkg/transformation/kubernetes.go``).
- Slurm, from files a prolog writes (``deploy/slurm/``) and removes in the epilog:
  dcgm-exporter's ``--hpc-job-mapping-dir`` convention (a file per GPU named ``<gpu id>`` or, for
  a MIG instance, ``<gpu id>.<GPU instance id>``, one job id per line; NVIDIA/dcgm-exporter
  ``internal/pkg/transformation/hpc.go``), and Princeton jobstats' ``/run/gpustat/<GPU index or
  MIG UUID>`` files holding ``<job id> <uid>`` (PrincetonUniversity/jobstats
  ``slurm/prolog.d/gpustats_helper.sh``), to which GPU Ledger's prolog adds the user and account.
- Slurm, from the jobs' processes: ``SLURM_JOB_GPUS`` / ``SLURM_STEP_GPUS`` in
  ``/proc/<pid>/environ`` are physical GPU indices (``CUDA_VISIBLE_DEVICES`` is renumbered
  inside the job's device cgroup, so it is not read). ``/proc`` is scanned every
  ``environ_scan_seconds``; each process is read once per (pid, start time).

The result maps device keys (GPU index ``"0"``, GPU UUID, MIG UUID, dcgm's ``"<gpu>.<gi>"``) to
``{job_id, user, account, pod, namespace, container}`` (only the keys known);
``allocation_for`` picks one GPU's holder from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from agent.collectors.attribution import environ_vars, slurm_job_id

log = logging.getLogger(__name__)

GPUSTAT_DIR = Path("/run/gpustat")
POD_RESOURCES_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
POD_RESOURCES_TIMEOUT_SECONDS = 2.0
ENVIRON_SCAN_SECONDS = 30.0
GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# dcgm-exporter's file names: "<gpu id>" or "<gpu id>.<GPU instance id>" (validGPUFile).
_DCGM_FILE = re.compile(r"^\d+(\.\d+)?$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_SLURM_ENV = (
    "SLURM_JOB_ID",
    "SLURM_JOB_USER",
    "SLURM_JOB_ACCOUNT",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
)
_NO_ENV: dict[str, str] = {}

Holders = dict[str, dict[str, str]]


class HolderSource(Protocol):
    """What the agent loop asks each cycle: device key → holder (``AllocationCollector``, or a
    simulated node's)."""

    def collect(self, monotonic: float) -> Holders: ...


def parse_gpu_list(text: str) -> list[str]:
    """``"0-2,6"`` → ``["0", "1", "2", "6"]``; other entries (MIG UUIDs) are kept as they are."""
    out: list[str] = []
    for item in text.split(","):
        item = item.strip()
        if m := _RANGE.match(item):
            out += [str(i) for i in range(int(m.group(1)), int(m.group(2)) + 1)]
        elif item:
            out.append(item)
    return out


def pod_resource_holders(response: Any) -> Holders:
    """Device id → {pod, namespace, container} from a ``ListPodResourcesResponse``."""
    held: Holders = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for device in container.devices:
                name = device.resource_name
                if name != GPU_RESOURCE and not name.startswith(MIG_RESOURCE_PREFIX):
                    continue
                for device_id in device.device_ids:
                    # Time-slicing replicas are "<id>::<n>"; GKE's shared GPUs "<id>/vgpu<n>".
                    key = device_id.partition("::")[0].partition("/vgpu")[0]
                    holder = {
                        "pod": pod.name,
                        "namespace": pod.namespace,
                        "container": container.name,
                    }
                    held.setdefault(key, {k: v for k, v in holder.items() if v})
    return held


def allocation_for(gpu: dict[str, Any], held: Holders) -> dict[str, str] | None:
    """One GPU's holder (``gpu`` as in the batch's ``gpus``): by UUID, then index, else the first
    of its MIG instances that is held (by MIG UUID, then ``<index>.<gi>``)."""
    index = gpu.get("index")
    found = _merged([gpu.get("uuid"), None if index is None else str(index)], held)
    if found:
        return found
    for instance in gpu.get("mig_instances") or []:
        gi = instance.get("gi_id")
        keys = [instance.get("uuid"), None if index is None or gi is None else f"{index}.{gi}"]
        if found := _merged(keys, held):
            return found
    return None


def _merged(keys: Iterable[str | None], held: Holders) -> dict[str, str]:
    """The fields of every key's holder; an earlier key wins a field both name."""
    found: dict[str, str] = {}
    for key in keys:
        if key is not None:
            for field, value in held.get(key, {}).items():
                found.setdefault(field, value)
    return found


class PodResources:
    """The kubelet's pod-resources API over its unix socket; ``holders()`` → device id → pod.

    A missing socket means this is no Kubernetes node: nothing is logged. A failed call is
    logged once (until a call succeeds again) and tried again, on a new channel, next time.
    """

    def __init__(self, socket: Path, *, timeout: float = POD_RESOURCES_TIMEOUT_SECONDS) -> None:
        self.socket = socket
        self.timeout = timeout
        self._channel: Any = None
        self._stub: Any = None
        self._failing = False

    def holders(self) -> Holders:
        if not self.socket.exists():
            self.close()
            return {}
        try:
            # Imported here: grpc costs memory that a node without Kubernetes need not pay.
            import grpc

            from agent.proto.podresources.v1 import api_pb2, api_pb2_grpc
        except ImportError as e:
            self._fail(f"the gRPC client is not installed ({e})")
            return {}
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix://{self.socket.absolute()}")
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        try:
            response = self._stub.List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout)
        except grpc.RpcError as e:
            # The error of a finished call is also a grpc.Call: its status code and details.
            why = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.Call) else repr(e)
            self._fail(why)
            self.close()  # a fresh channel next time, not one waiting out a reconnect backoff
            return {}
        if self._failing:
            log.warning("kubelet pod-resources API at %s answers again", self.socket)
            self._failing = False
        return pod_resource_holders(response)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def _fail(self, why: str) -> None:
        if not self._failing:
            log.warning("kubelet pod-resources API at %s: %s; trying again", self.socket, why)
            self._failing = True


class AllocationCollector:
    """``collect(monotonic)`` → device key → holder (Slurm job, Kubernetes pod) of every held GPU."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        *,
        hpc_job_mapping_dir: Path | None = None,
        gpustat_dir: Path | None = GPUSTAT_DIR,
        pod_resources_socket: Path | None = POD_RESOURCES_SOCKET,
        user_name: Callable[[int], str] = str,
        environ_scan_seconds: float = ENVIRON_SCAN_SECONDS,
        timeout: float = POD_RESOURCES_TIMEOUT_SECONDS,
    ) -> None:
        self.proc_root = proc_root
        self.hpc_job_mapping_dir = hpc_job_mapping_dir
        self.gpustat_dir = gpustat_dir
        self.pods = (
            None
            if pod_resources_socket is None
            else PodResources(pod_resources_socket, timeout=timeout)
        )
        self.user_name = user_name
        self.environ_scan_seconds = environ_scan_seconds
        self._environ: dict[tuple[int, str], dict[str, str]] = {}
        self._last_scan: float | None = None
        self._env_gpus: dict[str, dict[str, str]] = {}  # GPU index → job (raw id under "raw")
        self._env_jobs: dict[str, dict[str, str]] = {}  # raw job id → job
        self._warned: set[Path] = set()

    def collect(self, monotonic: float) -> Holders:
        """Every held GPU's holder, by device key; never raises for a missing or broken source."""
        if self._last_scan is None or monotonic - self._last_scan >= self.environ_scan_seconds:
            self._scan_environ()
            self._last_scan = monotonic
        jobs: dict[str, dict[str, str]] = {}
        # Live processes first: a mapping file left behind by a failed epilog loses to them.
        for key, job in self._env_gpus.items():
            _add_job(jobs, key, job)
        if self.gpustat_dir is not None:
            for key, job in self._read_gpustat(self.gpustat_dir).items():
                _add_job(jobs, key, job)
        if self.hpc_job_mapping_dir is not None:
            for key, job in self._read_mapping_dir(self.hpc_job_mapping_dir).items():
                _add_job(jobs, key, job)
        held: Holders = {}
        for key, job in jobs.items():
            live = self._env_jobs.get(job["raw"], {})
            # The environment knows what a prolog does not: an array task's <job>_<task> id.
            merged = {**job, **live}
            held[key] = {k: v for k, v in merged.items() if k != "raw" and v}
        if self.pods is not None:
            for key, pod in self.pods.holders().items():
                held[key] = {**held.get(key, {}), **pod}
        return held

    def _scan_environ(self) -> None:
        """Slurm jobs and their GPUs from every process's environment (root or CAP_SYS_PTRACE)."""
        seen: dict[tuple[int, str], dict[str, str]] = {}
        try:
            entries = [e.name for e in os.scandir(self.proc_root) if e.name.isdigit()]
        except OSError as e:
            self._warn(self.proc_root, e)
            entries = []
        for name in entries:
            base = self.proc_root / name
            try:
                start = (base / "stat").read_text().rpartition(")")[2].split()[19]
            except (OSError, IndexError):
                continue  # gone, or a kernel thread's stat cut short
            key = (int(name), start)
            env = self._environ.get(key)
            if env is None:
                env = _NO_ENV
                with contextlib.suppress(OSError):
                    raw = (base / "environ").read_bytes()
                    if b"SLURM_JOB_ID=" in raw:
                        env = environ_vars(raw, _SLURM_ENV)
            seen[key] = env
        self._environ = seen  # forget processes that ended
        gpus: dict[str, dict[str, str]] = {}
        jobs: dict[str, dict[str, str]] = {}
        for env in seen.values():
            raw_id = env.get("SLURM_JOB_ID")
            if not raw_id:
                continue
            job = {"raw": raw_id, "job_id": slurm_job_id(env) or raw_id}
            for var, field in (("SLURM_JOB_USER", "user"), ("SLURM_JOB_ACCOUNT", "account")):
                if env.get(var):
                    job[field] = env[var]
            jobs.setdefault(raw_id, {k: v for k, v in job.items() if k != "raw"})
            for var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
                for index in parse_gpu_list(env.get(var, "")):
                    gpus.setdefault(index, job)
        self._env_gpus, self._env_jobs = gpus, jobs

    def _read_gpustat(self, directory: Path) -> dict[str, dict[str, str]]:
        """jobstats' ``<index or MIG UUID>`` files: ``<job id> <uid> [<user> [<account>]]``
        (``-`` for unknown); without a user, the uid is looked up."""
        found: dict[str, dict[str, str]] = {}
        for path in self._files(directory, optional=directory == GPUSTAT_DIR):
            if path.name.startswith("."):
                continue
            try:
                fields = path.read_text().split()
            except (OSError, UnicodeDecodeError):
                continue  # removed by an epilog meanwhile
            if not fields:
                continue
            uid, user, account = (*fields[1:4], "-", "-", "-")[:3]
            job = {"raw": fields[0], "job_id": fields[0]}
            if user != "-":
                job["user"] = user
            elif uid.isdigit():
                job["user"] = self.user_name(int(uid))
            if account != "-":
                job["account"] = account
            found[path.name] = job
        return found

    def _read_mapping_dir(self, directory: Path) -> dict[str, dict[str, str]]:
        """dcgm-exporter's ``<gpu id>[.<gi>]`` files, one job per line (the first one is used);
        a line may go on with the user and account."""
        found: dict[str, dict[str, str]] = {}
        for path in self._files(directory, optional=False):
            if not _DCGM_FILE.match(path.name):
                continue
            try:
                lines = path.read_text().split("\n")
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                fields = line.split()
                if fields:
                    extra = zip(("user", "account"), fields[1:3], strict=False)
                    job = {"raw": fields[0], "job_id": fields[0]}
                    job.update((field, value) for field, value in extra if value != "-")
                    found[path.name] = job
                    break
        return found

    def _files(self, directory: Path, *, optional: bool) -> list[Path]:
        try:
            return [p for p in directory.iterdir() if p.is_file()]
        except FileNotFoundError as e:
            if not optional:
                self._warn(directory, e)
            return []
        except OSError as e:
            self._warn(directory, e)
            return []

    def _warn(self, path: Path, error: OSError) -> None:
        if path not in self._warned:
            log.warning("cannot read %s: %s", path, error.strerror or error)
            self._warned.add(path)


def _add_job(jobs: dict[str, dict[str, str]], key: str, job: dict[str, str]) -> None:
    """Keep the first source's job for a device; a later source fills its blanks, same job only."""
    have = jobs.get(key)
    if have is None:
        jobs[key] = dict(job)
    elif have["raw"] == job["raw"]:
        for field, value in job.items():
            have.setdefault(field, value)
