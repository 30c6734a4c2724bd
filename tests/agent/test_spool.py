"""The disk spool and the sender: nothing is lost, nothing is sent twice, SIGKILL included."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from agent.payload import build_batch
from agent.pusher import MemoryOutbox, Pusher, Sender, _retry_after, encode_batch, full_jitter
from agent.spool import SEGMENT_SUFFIX, DiskSpool
from tests.agent.ingest_server import IngestServer

ROOT = Path(__file__).parents[2]


def _batch(n: int) -> dict:
    return build_batch(
        node={"name": "n1"}, gpus=[], samples=[], host_samples=[{"n": n}], batch_id=f"b{n}"
    )


def _first(spool: DiskSpool) -> str:
    encoded = spool.peek()
    assert encoded is not None
    return encoded.batch_id


def _wait(predicate, tries: int = 200, step: float = 0.05) -> bool:
    for _ in range(tries):
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class TestDiskSpool:
    def test_fifo_and_ack_deletes_the_segment(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        for n in range(3):
            spool.put(_batch(n))
        assert len(spool) == 3
        assert len(list(tmp_path.glob("*" + SEGMENT_SUFFIX))) == 3
        first = spool.peek()
        assert first is not None
        assert first.batch_id == "b0"
        assert spool.peek() == first  # peeking does not consume
        spool.ack()
        assert next(p.name for p in sorted(tmp_path.glob("*" + SEGMENT_SUFFIX))).startswith(
            "0000000000000002"
        )
        assert _first(spool) == "b1"

    def test_survives_a_restart_and_ignores_half_written_files(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        spool.put(_batch(1))
        spool.put(_batch(2))
        (tmp_path / ".tmp-0000000000000003.batch.gz").write_bytes(b"half")
        again = DiskSpool(tmp_path)
        assert len(again) == 2
        assert not list(tmp_path.glob(".tmp-*"))
        assert _first(again) == "b1"
        again.ack()
        again.put(_batch(3))  # numbering goes on after the existing segments
        assert [_first(again)] == ["b2"]
        assert len(again) == 2

    def test_segments_are_gzip_json(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        batch = _batch(7)
        spool.put(batch)
        (segment,) = tmp_path.glob("*" + SEGMENT_SUFFIX)
        body = segment.read_bytes()
        assert json.loads(gzip.decompress(body))["batch_id"] == "b7"
        # The name carries the order, a CRC-32 of the bytes and the batch id.
        assert segment.name == f"{1:016d}.{zlib.crc32(body):08x}.b7{SEGMENT_SUFFIX}"
        assert body == encode_batch(batch).body

    def test_full_spool_drops_the_oldest_and_counts(self, tmp_path: Path) -> None:
        one = len(encode_batch(_batch(0)).body)
        spool = DiskSpool(tmp_path, max_bytes=one * 3 + 10)
        for n in range(5):
            spool.put(_batch(n))
        assert len(spool) == 3
        assert spool.dropped == 2
        assert spool.bytes <= spool.max_bytes
        assert _first(spool) == "b2"

    def test_unreadable_segment_is_set_aside(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        spool.put(_batch(1))
        spool.put(_batch(2))
        (first, _) = sorted(tmp_path.glob("*" + SEGMENT_SUFFIX))
        first.write_bytes(b"not gzip")
        again = DiskSpool(tmp_path)
        assert _first(again) == "b2"
        assert list(tmp_path.glob("*.corrupt"))

    def test_park_keeps_the_batch_aside(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        spool.put(_batch(1))
        spool.peek()
        spool.park()
        assert len(spool) == 0
        assert spool.parked == 1
        assert len(list((tmp_path / "parked").iterdir())) == 1


class TestPusherAndSender:
    def test_gzip_body_token_and_idempotency_key(self) -> None:
        with IngestServer() as server:
            result = Pusher(server.url, "tok").send(_batch(1))
            assert result.ok
            headers = server.requests[0]
            assert headers["Content-Encoding"] == "gzip"
            assert headers["Authorization"] == "Bearer tok"
            assert headers["Idempotency-Key"] == "b1"
            assert server.batch_ids() == ["b1"]

    def test_5xx_and_429_are_retried_honouring_retry_after(self) -> None:
        with IngestServer(status=429, headers={"Retry-After": "7"}) as server:
            result = Pusher(server.url, "tok").send(_batch(1))
        assert (result.ok, result.retry, result.status, result.retry_after) == (False, True, 429, 7)
        with IngestServer(status=503) as server:
            assert Pusher(server.url, "tok").send(_batch(1)).retry

    def test_other_4xx_is_parked_not_retried(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        spool.put(_batch(1))
        with IngestServer(status=400) as server:
            sender = Sender(spool, Pusher(server.url, "tok"), seed=1)
            sender.start()
            assert _wait(lambda: len(spool) == 0)
            sender.stop()
            sender.join(5)
            assert len(server.requests) == 1
        assert spool.parked == 1
        assert sender.pusher.parked == 1

    def test_connection_error_is_retried(self) -> None:
        result = Pusher("http://127.0.0.1:9", "tok", timeout=2).send(_batch(1))
        assert (result.ok, result.retry) == (False, True)

    def test_full_jitter_stays_within_the_cap(self) -> None:
        rng = random.Random(3)
        delays = [full_jitter(n, rng) for n in range(40)]
        assert all(0 <= d <= 300 for d in delays)
        assert max(full_jitter(0, rng) for _ in range(100)) <= 1
        assert max(delays[20:]) > 10  # it does grow

    def test_retry_after_http_date(self) -> None:
        assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
        assert _retry_after("120") == 120
        assert _retry_after("soon") is None

    def test_memory_outbox_is_bounded(self) -> None:
        box = MemoryOutbox(max_batches=2)
        for n in range(3):
            box.put(_batch(n))
        assert (len(box), box.dropped) == (2, 1)


def _agent(server: str, spool: Path, *extra: str) -> subprocess.Popen[bytes]:
    # The agent's log goes next to its spool, for a failing test to show.
    with (spool.parent / "agent.log").open("ab") as log:
        return _start(server, spool, log, *extra)


def _start(server: str, spool: Path, log, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "--simulate",
            "2",
            "--server",
            server,
            "--token",
            "tok",
            "--node-name",
            "kill-test",
            "--interval",
            "0.1",
            "--spool-dir",
            str(spool),
            "--metrics-port",
            "0",
            "--log-level",
            "ERROR",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _spooled_ids(spool: Path) -> set[str]:
    # Not the ``.tmp-*`` file of a write in progress: it is renamed under our feet.
    return {
        json.loads(gzip.decompress(p.read_bytes()))["batch_id"]
        for p in spool.glob("[0-9]*" + SEGMENT_SUFFIX)
    }


def test_sigkill_and_restart_delivers_every_batch_exactly_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    # 1. The server is down (503): batches pile up in the spool; then the agent is SIGKILLed.
    with IngestServer(status=503, headers={"Retry-After": "60"}) as down:
        agent = _agent(down.url, spool)
        try:
            assert _wait(lambda: len(_spooled_ids(spool)) >= 5), "nothing was spooled"
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        assert down.batch_ids() == []
    before = _spooled_ids(spool)
    assert len(before) >= 5
    # 2. Restarted against a working server: the spool drains, new batches follow.
    with IngestServer() as up:
        agent = _agent(up.url, spool)
        try:
            assert _wait(
                lambda: before <= set(up.batch_ids()) and len(up.batch_ids()) > len(before)
            )
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        received = up.batch_ids()
        batches = list(up.batches)
    assert before <= set(received)
    assert len(received) == len(set(received)), "a batch arrived twice"
    keys = [(s["gpu_uuid"], s["ts"]) for b in batches for s in b["samples"]]
    assert len(keys) == len(set(keys)), "a sample arrived twice"
    assert all(b["node"]["name"] == "kill-test" for b in batches)


def test_sigterm_leaves_unsent_batches_in_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with IngestServer(status=503, headers={"Retry-After": "60"}) as down:
        agent = _agent(down.url, spool)
        assert _wait(lambda: len(_spooled_ids(spool)) >= 2)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
    assert len(_spooled_ids(spool)) >= 2


@pytest.mark.parametrize("status", [401, 422])
def test_refused_batches_are_parked_by_a_running_agent(tmp_path: Path, status: int) -> None:
    spool = tmp_path / "spool"
    with IngestServer(status=status) as server:
        agent = _agent(server.url, spool)
        try:
            assert _wait(lambda: (spool / "parked").is_dir() and any((spool / "parked").iterdir()))
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
