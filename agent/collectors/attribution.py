"""Who owns a GPU process: Unix user, Kubernetes pod and container, Slurm job.

Everything comes from files, so tests point ``proc_root`` at fixture trees:

- ``/proc/<pid>/status`` ``Uid:`` → the Unix user (``passwd`` file, else the ``pwd`` module);
- ``/proc/<pid>/cgroup`` → pod UID and container id, for cgroup v1 and v2 with the systemd
  (``kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``) and cgroupfs
  (``/kubepods/burstable/pod<uid>/<id>``) drivers, containerd, CRI-O and Docker; a Slurm job id
  from ``/slurm/uid_<n>/job_<id>/`` or ``slurmstepd.scope/job_<id>/``;
- ``/proc/<pid>/environ`` (readable as root) → ``SLURM_JOB_ID``, ``SLURM_JOB_USER``,
  ``SLURM_JOB_ACCOUNT``;
- the kubelet's ``/var/log/pods/<namespace>_<pod>_<uid>`` directories → pod name and namespace.

Owners are cached per (pid, start time), so a reused pid is looked up afresh.
"""

from __future__ import annotations

import contextlib
import logging
import pwd
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
# The last path element: docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope or <id>.
_CONTAINER = re.compile(
    r"^(?:docker-|cri-containerd-|crio-|containerd-)?([0-9a-f]{64})(?:\.scope)?$"
)
_SLURM_JOB = re.compile(r"/job_(\d+)(?:/|$)")
_SLURM_ENV = {"SLURM_JOB_ID": "job_id", "SLURM_JOB_USER": "user", "SLURM_JOB_ACCOUNT": "account"}
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


def parse_environ(raw: bytes) -> dict[str, str]:
    """Slurm owner fields from the NUL-separated bytes of ``/proc/<pid>/environ``."""
    found: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        name = _SLURM_ENV.get(key.decode(errors="replace"))
        if sep and name and value:
            found[name] = value.decode(errors="replace")
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
            pod = self._pod(owner["pod_uid"])
            if pod is not None:
                owner["namespace"], owner["pod_name"] = pod
        return owner

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
        """(namespace, pod name) from the kubelet's log directory names."""
        if uid not in self._pods:
            try:
                for entry in self.pods_log_dir.iterdir():
                    namespace, _, rest = entry.name.partition("_")
                    name, _, pod_uid = rest.rpartition("_")
                    if namespace and name and pod_uid:
                        self._pods[pod_uid] = (namespace, name)
            except OSError:
                return None
        return self._pods.get(uid)
