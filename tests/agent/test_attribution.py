"""Process owners from fixture /proc trees: Unix user, Kubernetes pod and container, Slurm."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.attribution import Attributor, parse_cgroup

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
