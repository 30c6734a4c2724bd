"""Who holds each GPU, process or not: Slurm files and environments, the kubelet's pod-resources
API (a real gRPC server on a unix socket), the Slurm prolog/epilog, and the agent loop."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from agent import cli
from agent.cli import build_parser, main, make_agent, settings_from_args
from agent.collectors.allocation import (
    POD_RESOURCES_SOCKET,
    AllocationCollector,
    PodResources,
    allocation_for,
    parse_gpu_list,
)
from agent.collectors.attribution import Attributor
from agent.collectors.nvml import NvmlCollector
from agent.collectors.simulator import SimulatedNvml
from agent.config import AgentSettings, from_env
from agent.proto.podresources.v1 import api_pb2, api_pb2_grpc
from app.ingest.schemas import IngestBatch

ROOT = Path(__file__).parents[2]
PASSWD = ROOT / "tests" / "fixtures" / "proc" / "attribution-passwd"
PROLOG = ROOT / "deploy" / "slurm" / "prolog.sh"
EPILOG = ROOT / "deploy" / "slurm" / "epilog.sh"
GPU0 = "GPU-6b1d0f4e-0000-4000-8000-000000000010"
MIG = "MIG-2ce7a541-c516-5dbc-a76e-26cc100d9b55"


def _process(proc: Path, pid: int, env: dict[str, str], *, start: int = 100) -> None:
    """A /proc/<pid> with a stat line (start time ``start``) and an environ."""
    d = proc / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "stat").write_text(
        f"{pid} (python3) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"
    )
    (d / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in env.items()))


def _collector(tmp_path: Path, **kw: Any) -> AllocationCollector:
    kw.setdefault("gpustat_dir", None)
    kw.setdefault("pod_resources_socket", None)
    return AllocationCollector(tmp_path / "proc", **kw)


class TestSlurmFiles:
    def test_gpu_lists_expand_ranges_and_keep_mig_uuids(self) -> None:
        assert parse_gpu_list("0-2,6") == ["0", "1", "2", "6"]
        assert parse_gpu_list(f"{MIG}, 3,") == [MIG, "3"]
        assert parse_gpu_list("") == []

    def test_gpustat_files_name_job_user_and_account(self, tmp_path: Path) -> None:
        gpustat = tmp_path / "gpustat"
        gpustat.mkdir()
        (gpustat / "0").write_text("4242 1000 alice vision\n")
        (gpustat / MIG).write_text("77 1001\n")  # jobstats' own prolog: job id and uid only
        (gpustat / "2").write_text("78 4321 - -\n")  # unknown user and account
        (gpustat / ".0.tmp").write_text("1 1 x y\n")  # a prolog's file being written
        collector = _collector(
            tmp_path, gpustat_dir=gpustat, user_name=Attributor(passwd=PASSWD).user_name
        )
        assert collector.collect(0.0) == {
            "0": {"job_id": "4242", "user": "alice", "account": "vision"},
            MIG: {"job_id": "77", "user": "bob"},
            "2": {"job_id": "78", "user": "4321"},
        }

    def test_dcgm_mapping_dir_follows_dcgm_exporters_names(self, tmp_path: Path) -> None:
        mapping = tmp_path / "map"
        mapping.mkdir()
        (mapping / "0").write_text("4242\n4243\n")  # two jobs share GPU 0: the first is taken
        (mapping / "3.1").write_text("\n900 carol physics\n")  # MIG: <gpu>.<GPU instance>
        (mapping / "notes.txt").write_text("5\n")
        (mapping / ".lock").write_text("")
        (mapping / "7").mkdir()
        held = _collector(tmp_path, hpc_job_mapping_dir=mapping).collect(0.0)
        assert held == {
            "0": {"job_id": "4242"},
            "3.1": {"job_id": "900", "user": "carol", "account": "physics"},
        }

    def test_files_are_read_afresh_each_cycle(self, tmp_path: Path) -> None:
        gpustat = tmp_path / "gpustat"
        gpustat.mkdir()
        collector = _collector(tmp_path, gpustat_dir=gpustat)
        assert collector.collect(0.0) == {}
        (gpustat / "1").write_text("55 0 root ops\n")
        assert collector.collect(10.0) == {"1": {"job_id": "55", "user": "root", "account": "ops"}}
        (gpustat / "1").unlink()
        assert collector.collect(20.0) == {}

    def test_a_configured_missing_directory_is_logged_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        collector = _collector(tmp_path, hpc_job_mapping_dir=tmp_path / "absent")
        with caplog.at_level(logging.WARNING):
            assert collector.collect(0.0) == {}
            assert collector.collect(10.0) == {}
        assert [r.getMessage() for r in caplog.records if "absent" in r.getMessage()] == [
            f"cannot read {tmp_path / 'absent'}: No such file or directory"
        ]


class TestSlurmEnvironment:
    def test_job_gpus_from_environ_physical_indices_only(self, tmp_path: Path) -> None:
        proc = tmp_path / "proc"
        batch = {"SLURM_JOB_ID": "88", "SLURM_JOB_USER": "alice", "SLURM_JOB_ACCOUNT": "vision"}
        _process(proc, 10, {**batch, "SLURM_JOB_GPUS": "0-1,3", "CUDA_VISIBLE_DEVICES": "0,1,2"})
        _process(proc, 11, {"SLURM_JOB_ID": "89", "SLURM_STEP_GPUS": "5"})
        # Inside the job's device cgroup CUDA_VISIBLE_DEVICES is renumbered from 0: not read.
        _process(proc, 12, {"SLURM_JOB_ID": "90", "CUDA_VISIBLE_DEVICES": "2"})
        _process(proc, 13, {"HOME": "/root"})
        held = _collector(tmp_path).collect(0.0)
        job = {"job_id": "88", "user": "alice", "account": "vision"}
        assert held == {"0": job, "1": job, "3": job, "5": {"job_id": "89"}}

    def test_array_task_is_named_as_slurm_shows_it(self, tmp_path: Path) -> None:
        env = {
            "SLURM_JOB_ID": "1240",
            "SLURM_ARRAY_JOB_ID": "1234",
            "SLURM_ARRAY_TASK_ID": "7",
            "SLURM_JOB_GPUS": "0",
        }
        _process(tmp_path / "proc", 20, env)
        assert _collector(tmp_path).collect(0.0)["0"]["job_id"] == "1234_7"

    def test_environment_completes_a_prolog_file_of_the_same_job(self, tmp_path: Path) -> None:
        # The prolog sees only the raw id; a process of the job has the array task's id.
        gpustat = tmp_path / "gpustat"
        gpustat.mkdir()
        (gpustat / "2").write_text("1240 - - -\n")
        env = {"SLURM_JOB_ID": "1240", "SLURM_ARRAY_JOB_ID": "1234", "SLURM_ARRAY_TASK_ID": "7"}
        _process(tmp_path / "proc", 21, {**env, "SLURM_JOB_USER": "dave"})
        held = _collector(tmp_path, gpustat_dir=gpustat).collect(0.0)
        assert held == {"2": {"job_id": "1234_7", "user": "dave"}}

    def test_live_job_beats_a_stale_file(self, tmp_path: Path) -> None:
        gpustat = tmp_path / "gpustat"
        gpustat.mkdir()
        (gpustat / "0").write_text("999 1000 alice vision\n")  # an epilog that never ran
        (gpustat / "1").write_text("88 1000 alice vision\n")
        _process(tmp_path / "proc", 30, {"SLURM_JOB_ID": "88", "SLURM_JOB_GPUS": "0,1"})
        held = _collector(tmp_path, gpustat_dir=gpustat).collect(0.0)
        assert held["0"] == {"job_id": "88"}  # not 999's user and account
        assert held["1"] == {"job_id": "88", "user": "alice", "account": "vision"}

    def test_proc_is_scanned_on_its_own_cadence(self, tmp_path: Path) -> None:
        proc = tmp_path / "proc"
        collector = _collector(tmp_path, environ_scan_seconds=30.0)
        assert collector.collect(100.0) == {}
        _process(proc, 40, {"SLURM_JOB_ID": "5", "SLURM_JOB_GPUS": "0"})
        assert collector.collect(110.0) == {}  # the next scan is due at 130
        assert collector.collect(130.0) == {"0": {"job_id": "5"}}

    def test_each_process_is_read_once_per_start_time(self, tmp_path: Path) -> None:
        proc = tmp_path / "proc"
        _process(proc, 50, {"SLURM_JOB_ID": "5", "SLURM_JOB_GPUS": "0"})
        collector = _collector(tmp_path, environ_scan_seconds=1.0)
        assert collector.collect(0.0) == {"0": {"job_id": "5"}}
        # Same pid and start time: the cached environment stands (it cannot change).
        (proc / "50" / "environ").write_bytes(b"SLURM_JOB_ID=6\0SLURM_JOB_GPUS=1\0")
        assert collector.collect(1.0) == {"0": {"job_id": "5"}}
        # A new process under the same pid is read afresh; an ended one is forgotten.
        _process(proc, 50, {"SLURM_JOB_ID": "6", "SLURM_JOB_GPUS": "1"}, start=200)
        assert collector.collect(2.0) == {"1": {"job_id": "6"}}
        (proc / "50" / "stat").unlink()
        assert collector.collect(3.0) == {}


def _response(*pods: tuple[str, str, str, str, list[str]]) -> Any:
    """A ListPodResourcesResponse from (namespace, pod, container, resource, device ids)."""
    return api_pb2.ListPodResourcesResponse(
        pod_resources=[
            api_pb2.PodResources(
                name=pod,
                namespace=namespace,
                containers=[
                    api_pb2.ContainerResources(
                        name=container,
                        devices=[api_pb2.ContainerDevices(resource_name=resource, device_ids=ids)],
                    )
                ],
            )
            for namespace, pod, container, resource, ids in pods
        ]
    )


class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    """``v1.PodResourcesLister`` answering a fixed response (or holding each call until
    ``release`` is set, when ``hold`` is)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.calls = 0
        self.hold = False
        self.release = threading.Event()

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802  (the gRPC method name)
        self.calls += 1
        if self.hold:
            self.release.wait()
        return self.response


class Kubelet:
    """A real gRPC server for ``FakeKubelet`` on a unix socket, started and stopped at will."""

    def __init__(self, path: Path, servicer: FakeKubelet) -> None:
        self.path = path
        self.servicer = servicer
        self.server: Any = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self.servicer, self.server)
        self.server.add_insecure_port(f"unix://{self.path}")
        self.server.start()

    def stop(self) -> None:
        self.servicer.release.set()
        if self.server is not None:
            self.server.stop(None).wait()
            self.server = None


@pytest.fixture
def kubelet() -> Iterator[Kubelet]:
    # A short directory: a unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="gl-kubelet-") as d:
        server = Kubelet(
            Path(d) / "kubelet.sock",
            FakeKubelet(
                _response(
                    ("ml", "trainer-0", "main", "nvidia.com/gpu", [GPU0]),
                    ("ml", "notebook", "lab", "nvidia.com/mig-1g.10gb", [f"{MIG}::3"]),
                    ("net", "router", "fpga", "example.com/fpga", ["fpga-0"]),
                    # Time-slicing: a second replica of GPU0; the first holder is kept.
                    ("ml", "trainer-1", "main", "nvidia.com/gpu", [f"{GPU0}::1"]),
                )
            ),
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


class TestPodResources:
    def test_devices_map_to_pod_namespace_and_container(self, kubelet: Kubelet) -> None:
        pods = PodResources(kubelet.path)
        try:
            assert pods.holders() == {
                GPU0: {"pod": "trainer-0", "namespace": "ml", "container": "main"},
                MIG: {"pod": "notebook", "namespace": "ml", "container": "lab"},
            }
        finally:
            pods.close()
        assert kubelet.servicer.calls == 1

    def test_pods_and_slurm_jobs_merge_per_device(self, kubelet: Kubelet, tmp_path: Path) -> None:
        gpustat = tmp_path / "gpustat"
        gpustat.mkdir()
        (gpustat / GPU0).write_text("31 - alice vision\n")  # Slurm in pods (e.g. Slinky)
        collector = AllocationCollector(
            tmp_path / "proc", gpustat_dir=gpustat, pod_resources_socket=kubelet.path
        )
        held = collector.collect(0.0)
        assert held[GPU0] == {
            "job_id": "31",
            "user": "alice",
            "account": "vision",
            "pod": "trainer-0",
            "namespace": "ml",
            "container": "main",
        }

    def test_no_socket_is_no_kubernetes_and_says_nothing(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="agent"):
            assert PodResources(tmp_path / "kubelet.sock").holders() == {}
        assert caplog.records == []

    def test_a_failing_kubelet_is_logged_once_and_tried_again(
        self, kubelet: Kubelet, caplog: pytest.LogCaptureFixture
    ) -> None:
        kubelet.stop()
        # The socket file is there but nothing accepts on it: a kubelet that is down.
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(kubelet.path))
        pods = PodResources(kubelet.path)
        try:
            with caplog.at_level(logging.WARNING, logger="agent"):
                assert pods.holders() == {}
                assert pods.holders() == {}
                assert [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
                assert len(caplog.records) == 1
                dead.close()
                kubelet.start()  # the kubelet comes back: the next cycle reads it
                assert GPU0 in pods.holders()
                assert "answers again" in caplog.records[-1].getMessage()
        finally:
            pods.close()

    def test_a_call_that_hangs_gives_up_after_the_timeout(
        self, kubelet: Kubelet, caplog: pytest.LogCaptureFixture
    ) -> None:
        kubelet.servicer.hold = True  # the server never answers before the client gives up
        pods = PodResources(kubelet.path, timeout=0.2)
        try:
            with caplog.at_level(logging.WARNING, logger="agent"):
                assert pods.holders() == {}
            assert "DEADLINE_EXCEEDED" in caplog.records[0].getMessage()
        finally:
            pods.close()


class TestMatching:
    HELD = {  # noqa: RUF012  (read-only fixture)
        GPU0: {"pod": "trainer-0", "namespace": "ml"},
        "0": {"job_id": "7", "pod": "other"},
        "1": {"job_id": "8"},
        "2.1": {"job_id": "9"},
        MIG: {"pod": "notebook"},
    }

    def test_uuid_first_then_index(self) -> None:
        assert allocation_for({"uuid": GPU0, "index": 0}, self.HELD) == {
            "pod": "trainer-0",
            "namespace": "ml",
            "job_id": "7",
        }
        assert allocation_for({"uuid": "GPU-x", "index": 1}, self.HELD) == {"job_id": "8"}
        assert allocation_for({"uuid": "GPU-x", "index": 4}, self.HELD) is None

    def test_mig_instances_by_uuid_or_gpu_dot_instance(self) -> None:
        gpu = {"uuid": "GPU-y", "index": 2, "mig_instances": [{"gi_id": 0}, {"gi_id": 1}]}
        assert allocation_for(gpu, self.HELD) == {"job_id": "9"}
        gpu = {"uuid": "GPU-y", "index": 3, "mig_instances": [{"gi_id": 5, "uuid": MIG}]}
        assert allocation_for(gpu, self.HELD) == {"pod": "notebook"}


def _sim_agent(tmp_path: Path, gpustat: Path) -> Any:
    settings = AgentSettings(node_name="n1", simulate=2, scenarios=["unallocated", "training"])
    t = [datetime(2026, 11, 1, tzinfo=UTC).timestamp()]
    agent = make_agent(settings, clock=lambda: t[0])
    agent.allocations = _collector(tmp_path, gpustat_dir=gpustat)
    return agent, t


def test_collect_once_puts_the_holder_on_a_gpu_without_process(tmp_path: Path) -> None:
    gpustat = tmp_path / "gpustat"
    gpustat.mkdir()
    (gpustat / "0").write_text("4242 - alice vision\n")
    agent, t = _sim_agent(tmp_path, gpustat)
    for _ in range(2):
        t[0] += 10
        agent.record(*agent.collect_once(datetime.fromtimestamp(t[0], UTC), t[0]))
    _, samples, _ = agent.latest
    idle, busy = samples
    assert idle["processes"] == []  # the "unallocated" scenario: nothing runs on GPU 0
    assert idle["allocation"] == {"job_id": "4242", "user": "alice", "account": "vision"}
    assert "allocation" not in busy
    batch = IngestBatch.model_validate(json.loads(json.dumps(agent.make_batch())))
    assert [s.allocation and s.allocation.job_id for s in batch.samples] == ["4242", None] * 2


def test_once_print_shows_the_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real command line (NVML simulated): ``--once --print`` carries the holder."""
    monkeypatch.setattr(cli, "NvmlCollector", lambda: NvmlCollector(SimulatedNvml(["unallocated"])))
    gpustat = tmp_path / "gpustat"
    gpustat.mkdir()
    (gpustat / "0").write_text("31 - alice vision\n")
    argv = ["--once", "--print", "--no-cloud-metadata", "--proc-root", str(tmp_path / "proc")]
    argv += ["--gpustat-dir", str(gpustat), "--pod-resources-socket", ""]
    assert main(argv) == 0
    batch = json.loads(capsys.readouterr().out)
    assert batch["samples"][0]["allocation"] == {
        "job_id": "31",
        "user": "alice",
        "account": "vision",
    }
    IngestBatch.model_validate(batch)


class TestSettings:
    def test_flags_env_and_off_switches(self, tmp_path: Path) -> None:
        base = from_env({"GPULEDGER_AGENT_HPC_JOB_MAPPING_DIR": "/run/dcgm-job-map"})
        assert base.hpc_job_mapping_dir == Path("/run/dcgm-job-map")
        assert base.gpustat_dir == Path("/run/gpustat")
        assert base.pod_resources_socket == Path("/var/lib/kubelet/pod-resources/kubelet.sock")
        args = build_parser().parse_args(["--gpustat-dir", "", "--pod-resources-socket", "/k.sock"])
        s = settings_from_args(args, base)
        assert (s.gpustat_dir, s.pod_resources_socket, s.allocation) == (
            None,
            Path("/k.sock"),
            True,
        )
        assert from_env({"GPULEDGER_AGENT_GPUSTAT_DIR": ""}).gpustat_dir is None
        assert from_env({"GPULEDGER_AGENT_ALLOCATION": "false"}).allocation is False
        s = settings_from_args(build_parser().parse_args(["--no-allocation"]), AgentSettings())
        assert s.allocation is False

    def test_make_agent_wires_the_sources(self, tmp_path: Path) -> None:
        settings = AgentSettings(proc_root=tmp_path, hpc_job_mapping_dir=tmp_path / "map")
        agent = make_agent(settings)
        assert isinstance(agent.allocations, AllocationCollector)
        assert agent.allocations.hpc_job_mapping_dir == tmp_path / "map"
        assert agent.allocations.proc_root == tmp_path
        settings.allocation = False
        assert make_agent(settings).allocations is None

    def test_help_documents_the_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["--help"])
        text = capsys.readouterr().out
        for option in (
            "--hpc-job-mapping-dir",
            "--gpustat-dir",
            "--pod-resources-socket",
            "--no-allocation",
        ):
            assert option in text, option


def _run(script: Path, env: dict[str, str]) -> None:
    """A prolog/epilog as slurmd runs it: bash, no PATH, only the job's variables."""
    done = subprocess.run(["/bin/bash", str(script)], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


class TestPrologEpilog:
    @pytest.fixture
    def dirs(self, tmp_path: Path) -> dict[str, str]:
        return {
            "GPULEDGER_GPUSTAT_DIR": str(tmp_path / "gpustat"),
            "GPULEDGER_HPC_JOB_MAPPING_DIR": str(tmp_path / "map"),
        }

    def test_prolog_writes_what_the_agent_reads(self, tmp_path: Path, dirs: dict[str, str]) -> None:
        job = {"SLURM_JOB_UID": "1000", "SLURM_JOB_USER": "alice", "SLURM_JOB_ACCOUNT": "vision"}
        _run(PROLOG, {**dirs, **job, "SLURM_JOB_ID": "4242", "SLURM_JOB_GPUS": "0-1,3"})
        _run(
            PROLOG, {**dirs, "SLURM_JOB_ID": "4243", "SLURM_JOB_USER": "bob", "SLURM_JOB_GPUS": "3"}
        )
        gpustat, mapping = tmp_path / "gpustat", tmp_path / "map"
        assert (gpustat / "0").read_text() == "4242 1000 alice vision\n"
        assert (gpustat / "3").read_text() == "4243 - bob -\n"
        assert sorted(p.name for p in mapping.iterdir() if not p.name.startswith(".")) == [
            "0",
            "1",
            "3",
        ]
        assert (mapping / "3").read_text() == "4242\n4243\n"  # dcgm-exporter: a job id per line
        held = _collector(tmp_path, gpustat_dir=gpustat, hpc_job_mapping_dir=mapping).collect(0.0)
        assert held["1"] == {"job_id": "4242", "user": "alice", "account": "vision"}
        assert held["3"] == {"job_id": "4243", "user": "bob"}

    def test_prolog_takes_mig_uuids_from_cuda_visible_devices(
        self, tmp_path: Path, dirs: dict[str, str]
    ) -> None:
        env = {**dirs, "SLURM_JOB_ID": "5", "SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": MIG}
        _run(PROLOG, env)
        assert [p.name for p in (tmp_path / "gpustat").iterdir()] == [MIG]
        # dcgm-exporter names MIG instances <gpu>.<gi>, which a prolog cannot know: none written.
        assert [p.name for p in (tmp_path / "map").iterdir() if not p.name.startswith(".")] == []

    def test_epilog_removes_only_its_own_job(self, tmp_path: Path, dirs: dict[str, str]) -> None:
        _run(PROLOG, {**dirs, "SLURM_JOB_ID": "4242", "SLURM_JOB_GPUS": "0,3"})
        _run(PROLOG, {**dirs, "SLURM_JOB_ID": "4243", "SLURM_JOB_GPUS": "3"})
        _run(EPILOG, {**dirs, "SLURM_JOB_ID": "4242"})  # no GPU list: the epilog looks itself
        gpustat, mapping = tmp_path / "gpustat", tmp_path / "map"
        assert sorted(os.listdir(gpustat)) == ["3"]
        assert (gpustat / "3").read_text().split()[0] == "4243"
        assert (mapping / "3").read_text() == "4243\n"
        assert not (mapping / "0").exists()
        _run(EPILOG, {**dirs, "SLURM_JOB_ID": "4243"})
        assert os.listdir(gpustat) == []
        assert [p for p in os.listdir(mapping) if not p.startswith(".")] == []

    def test_scripts_never_fail_the_job(self, tmp_path: Path) -> None:
        # No job id, no GPUs, an unwritable directory: still exit 0 (a failure drains the node).
        _run(PROLOG, {})
        _run(PROLOG, {"SLURM_JOB_ID": "1", "GPULEDGER_GPUSTAT_DIR": str(tmp_path / "g")})
        assert not (tmp_path / "g").exists()
        blocked = tmp_path / "file"
        blocked.write_text("")
        env = {"SLURM_JOB_ID": "1", "SLURM_JOB_GPUS": "0", "GPULEDGER_GPUSTAT_DIR": str(blocked)}
        done = subprocess.run(["/bin/bash", str(PROLOG)], env=env, capture_output=True, text=True)
        assert done.returncode == 0
        _run(EPILOG, {"SLURM_JOB_ID": "1", "GPULEDGER_GPUSTAT_DIR": str(tmp_path / "none")})


def test_daemonset_mounts_the_pod_resources_socket_read_only() -> None:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "daemonset.yaml").read_text())
    pod = next(d for d in docs if d and d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    mount = next(m for m in agent["volumeMounts"] if m["name"] == "pod-resources")
    assert (mount["mountPath"], mount["readOnly"]) == (str(POD_RESOURCES_SOCKET.parent), True)
    volume = next(v for v in pod["volumes"] if v["name"] == "pod-resources")
    assert volume["hostPath"]["path"] == str(POD_RESOURCES_SOCKET.parent)
