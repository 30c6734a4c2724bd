"""Process owners from fixture /proc trees: Unix user, Kubernetes pod and container, Slurm."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.collectors.attribution import Attributor, parse_cgroup, parse_environ

FIXTURES = Path(__file__).parents[1] / "fixtures" / "proc"
C64 = "4f0c3c8e1b2a9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e"
D64 = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def attribute() -> Attributor:
    return Attributor(
        FIXTURES / "attribution",
        passwd=FIXTURES / "attribution-passwd",
        pods_log_dir=FIXTURES / "attribution-pods",
    )


@pytest.mark.parametrize(
    ("pid", "owner"),
    [
        pytest.param(
            1001,
            {
                "user": "alice",
                "pod_uid": "1c2d3e4f-aaaa-bbbb-cccc-0123456789ab",
                "container_id": C64,
                "namespace": "ml",
                "pod_name": "trainer-0",
            },
            id="cgroup-v2-systemd-containerd",
        ),
        pytest.param(
            1002,
            {
                "user": "root",
                "pod_uid": "9f8e7d6c-5b4a-3210-fedc-ba9876543210",
                "container_id": D64,
            },
            id="cgroup-v1-cgroupfs",
        ),
        pytest.param(
            1003,
            {
                "user": "bob",
                "pod_uid": "11111111-2222-3333-4444-555555555555",
                "container_id": C64,
                "namespace": "kube-system",
                "pod_name": "nvidia-dcgm",
            },
            id="cgroup-v2-systemd-crio",
        ),
        pytest.param(1004, {"user": "alice", "container_id": D64}, id="docker-cgroupfs"),
        pytest.param(1005, {"user": "alice", "container_id": C64}, id="docker-systemd"),
        pytest.param(
            1006,
            {"user": "alice", "job_id": "4242", "account": "vision"},
            id="slurm-cgroup-v1-and-environ",
        ),
        pytest.param(1007, {"user": "bob", "job_id": "777"}, id="slurm-cgroup-v2-no-environ"),
        pytest.param(1008, {"user": "bob"}, id="plain-user"),
    ],
)
def test_owner(attribute: Attributor, pid: int, owner: dict[str, str]) -> None:
    assert attribute(pid) == owner


def test_gone_process_has_no_owner(attribute: Attributor) -> None:
    assert attribute(99999) == {}


def test_owners_are_cached_per_pid_and_start_time(tmp_path: Path) -> None:
    d = tmp_path / "5"
    d.mkdir()
    (d / "status").write_text("Uid:\t1000\t1000\t1000\t1000\n")
    (d / "stat").write_text("5 (a b) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n")
    (d / "cgroup").write_text("0::/\n")
    attribute = Attributor(tmp_path, passwd=FIXTURES / "attribution-passwd")
    assert attribute(5)["user"] == "alice"
    (d / "status").write_text("Uid:\t1001\t1001\t1001\t1001\n")
    assert attribute(5)["user"] == "alice"  # cached
    (d / "stat").write_text("5 (a b) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 200 0 0\n")
    assert attribute(5)["user"] == "bob"  # a new process with the same pid


def test_unknown_uid_is_reported_as_a_number(tmp_path: Path) -> None:
    d = tmp_path / "6"
    d.mkdir()
    (d / "status").write_text("Uid:\t4321\t4321\t4321\t4321\n")
    (d / "stat").write_text("6 (x) S 1 6 6 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
    assert Attributor(tmp_path, passwd=FIXTURES / "attribution-passwd")(6) == {"user": "4321"}


def test_parse_cgroup_ignores_unrelated_paths() -> None:
    assert parse_cgroup("0::/init.scope\n1:name=systemd:/user.slice\n") == {}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-"
            f"pod3b9e1e2c0d4d4c7a9c5e0f7b8a6d3e21.slice/cri-containerd-{C64}.scope\n",
            {"pod_uid": "3b9e1e2c0d4d4c7a9c5e0f7b8a6d3e21", "container_id": C64},
            id="static-pod-systemd",
        ),
        pytest.param(
            f"4:memory:/kubepods/burstable/pod3b9e1e2c0d4d4c7a9c5e0f7b8a6d3e21/{D64}\n",
            {"pod_uid": "3b9e1e2c0d4d4c7a9c5e0f7b8a6d3e21", "container_id": D64},
            id="static-pod-cgroupfs",
        ),
        pytest.param(
            f"0::/machine.slice/libpod-{C64}.scope/container\n",
            {"container_id": C64},
            id="podman-systemd",
        ),
        pytest.param(
            f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{D64}.scope\n",
            {"container_id": D64},
            id="podman-rootless",
        ),
        pytest.param(f"0::/machine.slice/libpod-conmon-{C64}.scope\n", {}, id="podman-conmon"),
        pytest.param(f"0::/kubepods/pod{C64}/x\n", {}, id="not-a-pod-uid"),
    ],
)
def test_parse_cgroup_static_pods_and_podman(text: str, found: dict[str, str]) -> None:
    assert parse_cgroup(text) == found


def test_array_task_is_named_as_squeue_shows_it(tmp_path: Path) -> None:
    env = b"SLURM_JOB_ID=1240\0SLURM_ARRAY_JOB_ID=1234\0SLURM_ARRAY_TASK_ID=7\0SLURM_JOB_USER=bob\0"
    assert parse_environ(env) == {"job_id": "1234_7", "user": "bob"}
    assert parse_environ(b"SLURM_JOB_ID=1240\0SLURM_ARRAY_TASK_ID=7\0") == {"job_id": "1240"}
    d = tmp_path / "9"
    d.mkdir()
    (d / "stat").write_text("9 (x) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
    (d / "cgroup").write_text("0::/system.slice/slurmstepd.scope/job_1240/step_0/user/task_0\n")
    (d / "environ").write_bytes(env)
    assert Attributor(tmp_path, passwd=FIXTURES / "attribution-passwd")(9)["job_id"] == "1234_7"


def test_a_pod_name_missing_at_first_is_found_later(tmp_path: Path) -> None:
    uid = "5e6f7a8b-1111-2222-3333-444455556666"
    d = tmp_path / "proc" / "7"
    d.mkdir(parents=True)
    (d / "stat").write_text("7 (x) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
    (d / "cgroup").write_text(f"0::/kubepods/besteffort/pod{uid}/{C64}\n")
    pods = tmp_path / "pods"
    pods.mkdir()
    os.utime(pods, ns=(0, 0))  # so that adding an entry surely changes its mtime
    attribute = Attributor(
        tmp_path / "proc", passwd=FIXTURES / "attribution-passwd", pods_log_dir=pods
    )
    assert "pod_name" not in attribute(7)
    (pods / f"ml_late-pod_{uid}").mkdir()  # the kubelet creates the pod's log directory
    assert (attribute(7)["namespace"], attribute(7)["pod_name"]) == ("ml", "late-pod")


def test_user_names_are_public(tmp_path: Path) -> None:
    attribute = Attributor(tmp_path, passwd=FIXTURES / "attribution-passwd")
    assert (attribute.user_name(1000), attribute.user_name(4321)) == ("alice", "4321")
