"""Who owns a GPU process: Unix user, Kubernetes pod and container, Slurm job.

Everything comes from files, so tests point ``proc_root`` at fixture trees:

- ``/proc/<pid>/status`` ``Uid:`` → the Unix user (``passwd`` file, else the ``pwd`` module);
- ``/proc/<pid>/cgroup`` → pod UID and container id, for cgroup v1 and v2 with the systemd
  (``kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``) and cgroupfs
  (``/kubepods/burstable/pod<uid>/<id>``) drivers, containerd, CRI-O, Docker and Podman
  (``libpod-<id>.scope``); a static pod's UID is its 32-hex config hash (``pod<hash>``); a Slurm
  job id from ``/slurm/uid_<n>/job_<id>/`` or ``slurmstepd.scope/job_<id>/``;
- ``/proc/<pid>/environ`` (readable as root) → ``SLURM_JOB_ID``, ``SLURM_JOB_USER``,
  ``SLURM_JOB_ACCOUNT``; a job array task is named ``<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>``
  (``1234_7``), as ``squeue`` and ``sacct`` show it, where the cgroup path has the raw job id;
- the kubelet's ``/var/log/pods/<namespace>_<pod>_<uid>`` directories → pod name and namespace.

Owners are cached per (pid, start time), so a reused pid is looked up afresh. A pod name not yet
in ``/var/log/pods`` is looked up again once that directory changes.
"""

from __future__ import annotations

import contextlib
import logging
import pwd
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# An API pod's UID (dashes, or underscores under the systemd driver), or a static pod's UID: the
# kubelet's 32-hex hash of its manifest, without dashes.
_POD = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
    r"|[0-9a-f]{32})(?![0-9a-f])"
)
# A path element: docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
# libpod-<id>.scope (Podman) or <id>.
_CONTAINER = re.compile(
    r"^(?:docker-|cri-containerd-|crio-|containerd-|libpod-)?([0-9a-f]{64})(?:\.scope)?$"
)
_SLURM_JOB = re.compile(r"/job_(\d+)(?:/|$)")
_SLURM_ENV = {"SLURM_JOB_ID": "job_id", "SLURM_JOB_USER": "user", "SLURM_JOB_ACCOUNT": "account"}
_SLURM_ARRAY = ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
PODS_LOG_DIR = Path("/var/log/pods")
CACHE_MAX = 4096


def parse_cgroup(text: str) -> dict[str, str]:
    """Pod UID, container id and Slurm job id from the text of ``/proc/<pid>/cgroup``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        # v1: "12:memory:/kubepods/...", v2: "0::/kubepods.slice/..."
        path = line.split(":", 2)[-1]
        if "pod_uid" not in found and (m := _POD.search(path)):
            found["pod_uid"] = m.group(1).replace("_", "-")
        if "container_id" not in found:
            for part in reversed(path.split("/")):
                if m := _CONTAINER.match(part):
                    found["container_id"] = m.group(1)
                    break
        if "job_id" not in found and "slurm" in path and (m := _SLURM_JOB.search(path)):
            found["job_id"] = m.group(1)
    return found


def environ_vars(raw: bytes, names: Collection[str]) -> dict[str, str]:
    """The non-empty ``names`` among the NUL-separated ``KEY=value`` bytes of ``environ``."""
    found: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        name = key.decode(errors="replace")
        if sep and value and name in names:
            found[name] = value.decode(errors="replace")
    return found


def slurm_job_id(env: dict[str, str]) -> str | None:
    """The job id as Slurm shows it: ``<array job>_<task>`` for an array task, else the raw id."""
    array_job, task = (env.get(name) for name in _SLURM_ARRAY)
    if array_job and task:
        return f"{array_job}_{task}"
    return env.get("SLURM_JOB_ID")


def parse_environ(raw: bytes) -> dict[str, str]:
    """Slurm owner fields from the NUL-separated bytes of ``/proc/<pid>/environ``."""
    env = environ_vars(raw, {*_SLURM_ENV, *_SLURM_ARRAY})
    found = {field: env[name] for name, field in _SLURM_ENV.items() if name in env}
    job_id = slurm_job_id(env)
    if job_id:
        found["job_id"] = job_id
    return found


def read_uid(status: str) -> int | None:
    """The real uid from the text of ``/proc/<pid>/status``."""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            parts = line.split()
            return int(parts[1]) if len(parts) > 1 else None
    return None


class Attributor:
    """``attributor(pid)`` → owner fields in the wire's ``ProcessOwner`` shape."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        *,
        passwd: Path | None = None,
        pods_log_dir: Path = PODS_LOG_DIR,
    ) -> None:
        self.proc_root = proc_root
        self.passwd = passwd
        self.pods_log_dir = pods_log_dir
        self._cache: dict[tuple[int, str], dict[str, Any]] = {}
        self._users: dict[int, str] | None = None
        self._pods: dict[str, tuple[str, str]] = {}
        self._pods_mtime: int | None = None  # of pods_log_dir when last listed

    def __call__(self, pid: int) -> dict[str, Any]:
        base = self.proc_root / str(pid)
        try:
            # Field 22 of stat, the start time, tells a reused pid from the old one.
            stat = (base / "stat").read_text()
            start = stat.rpartition(")")[2].split()[19]
        except (OSError, IndexError):
            return {}  # the process is gone, or in another pid namespace
        key = (pid, start)
        owner = self._cache.get(key)
        if owner is None:
            owner = self._lookup(base)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = owner
        elif "pod_uid" in owner and "pod_name" not in owner:
            self._name_pod(owner)  # its log directory may have appeared since
        return owner

    def _lookup(self, base: Path) -> dict[str, Any]:
        owner: dict[str, Any] = {}
        try:
            uid = read_uid((base / "status").read_text())
        except OSError:
            uid = None
        if uid is not None:
            owner["user"] = self._user_name(uid)
        with contextlib.suppress(OSError):
            owner.update(parse_cgroup((base / "cgroup").read_text()))
        # Another user's environment needs root (or CAP_SYS_PTRACE): then no Slurm fields.
        with contextlib.suppress(OSError):
            owner.update(parse_environ((base / "environ").read_bytes()))
        if "pod_uid" in owner:
            self._name_pod(owner)
        return owner

    def _name_pod(self, owner: dict[str, Any]) -> None:
        pod = self._pod(owner["pod_uid"])
        if pod is not None:
            owner["namespace"], owner["pod_name"] = pod

    def user_name(self, uid: int) -> str:
        """The login name of ``uid`` (``passwd`` file, else the ``pwd`` module), else the number."""
        return self._user_name(uid)

    def _user_name(self, uid: int) -> str:
        if self._users is None:
            self._users = {}
            if self.passwd is not None:
                try:
                    for line in self.passwd.read_text().splitlines():
                        parts = line.split(":")
                        if len(parts) > 2 and parts[2].isdigit():
                            self._users[int(parts[2])] = parts[0]
                except OSError as e:
                    log.warning("cannot read %s: %s", self.passwd, e)
        if uid in self._users:
            return self._users[uid]
        if self.passwd is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
            return name
        return str(uid)

    def _pod(self, uid: str) -> tuple[str, str] | None:
        """(namespace, pod name) from the kubelet's log directory names.

        A miss lists the directory again only when its mtime changed (an entry was added or
        removed), so a pod whose directory appears later is named then, at the cost of one
        ``stat`` per lookup meanwhile.
        """
        if uid not in self._pods:
            try:
                mtime = self.pods_log_dir.stat().st_mtime_ns
                if mtime != self._pods_mtime:
                    pods = {}
                    for entry in self.pods_log_dir.iterdir():
                        namespace, _, rest = entry.name.partition("_")
                        name, _, pod_uid = rest.rpartition("_")
                        if namespace and name and pod_uid:
                            pods[pod_uid] = (namespace, name)
                    self._pods, self._pods_mtime = pods, mtime
            except OSError:
                return None
        return self._pods.get(uid)
