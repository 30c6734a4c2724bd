"""The sender ships a spooled segment's bytes as they are: no decoding, no re-encoding.

Each test drives ``Sender.send_next`` by hand against a real local HTTP server, so nothing
waits on a clock.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import agent.pusher
import agent.spool
from agent.payload import build_batch
from agent.pusher import MemoryOutbox, Outbox, Pusher, Sender, encode_batch
from agent.spool import SEGMENT_SUFFIX, DiskSpool
from tests.agent.ingest_server import IngestServer


def _batch(n: int, batch_id: str | None = None) -> dict[str, Any]:
    return build_batch(
        node={"name": "n1"},
        gpus=[],
        samples=[],
        host_samples=[{"n": n}],
        batch_id=batch_id or f"b{n}",
    )


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def _drain(outbox: Outbox, server: IngestServer) -> Sender:
    """Offer batches until the outbox is empty; every offer must be delivered or refused."""
    sender = Sender(outbox, Pusher(server.url, "tok"), seed=1)
    for _ in range(100):
        delay = sender.send_next()
        if delay is None:
            return sender
        assert delay == 0, "a try failed and would wait"
    raise AssertionError("the outbox never emptied")


class _Counting:
    """Stands in for ``json``, ``gzip`` or ``zlib`` inside one agent module, counting calls."""

    def __init__(self, module: ModuleType, calls: Counter[str]) -> None:
        self._module = module
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if not callable(attr) or isinstance(attr, type):
            return attr  # constants and exception classes, e.g. zlib.error
        key = f"{self._module.__name__}.{name}"

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[key] += 1
            return attr(*args, **kwargs)

        return counted


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the agent's spool and pusher calls into json, gzip and zlib (not the server's)."""
    counter: Counter[str] = Counter()
    for module in (agent.spool, agent.pusher):
        for lib in (json, gzip, zlib):
            if hasattr(module, lib.__name__):
                monkeypatch.setattr(module, lib.__name__, _Counting(lib, counter))
    return counter


DECODING = ("json.loads", "gzip.decompress", "zlib.decompress", "zlib.decompressobj")


class TestBytesAsTheyAre:
    def test_the_server_receives_each_segment_byte_for_byte(self, tmp_path: Path) -> None:
        before = DiskSpool(tmp_path)
        before.put(_batch(0))
        before.put(_batch(1))
        spool = DiskSpool(tmp_path)  # after a restart: these two come from disk
        spool.put(_batch(2))  # and this one from memory, as it was just written
        spooled = [p.read_bytes() for p in _segments(tmp_path)]
        with IngestServer() as server:
            _drain(spool, server)
        assert server.bodies == spooled
        assert server.batch_ids() == ["b0", "b1", "b2"]
        for request, batch_id in zip(server.requests, ["b0", "b1", "b2"], strict=True):
            assert request["Content-Encoding"] == "gzip"
            assert request["Content-Type"] == "application/json"
            assert request["Idempotency-Key"] == batch_id
        assert len(spool) == 0
        assert not _segments(tmp_path)

    def test_the_happy_path_neither_decodes_nor_encodes_again(
        self, tmp_path: Path, calls: Counter[str]
    ) -> None:
        first = DiskSpool(tmp_path)
        for n in range(3):
            first.put(_batch(n))
        spool = DiskSpool(tmp_path)
        spool.put(_batch(3))
        assert (calls["json.dumps"], calls["gzip.compress"]) == (4, 4)  # once per batch
        with IngestServer(status=503, headers={"Retry-After": "60"}) as server:
            sender = Sender(spool, Pusher(server.url, "tok"), seed=1)
            assert sender.send_next() == 60  # a retry sends the same bytes again, too
            with server.lock:
                server.status = 200
            _drain(spool, server)
        assert server.batch_ids() == ["b0", "b1", "b2", "b3"]
        assert {name: calls[name] for name in DECODING} == dict.fromkeys(DECODING, 0)
        assert (calls["json.dumps"], calls["gzip.compress"]) == (4, 4)
        # At each write, and at each read from disk: b0 twice (refused with 503, then sent).
        assert calls["zlib.crc32"] == 4 + 4

    def test_memory_outbox_sends_what_put_encoded(self, calls: Counter[str]) -> None:
        box = MemoryOutbox()
        batch = _batch(1)
        box.put(batch)
        with IngestServer() as server:
            _drain(box, server)
        assert server.bodies == [encode_batch(batch).body]
        assert server.batch_ids() == ["b1"]
        assert server.requests[0]["Idempotency-Key"] == "b1"
        assert calls["json.dumps"] == 2  # box.put and the expected body above
        assert calls["json.loads"] == calls["gzip.decompress"] == 0


class TestOutage:
    def test_outage_then_restart_and_recovery_delivers_each_batch_once(
        self, tmp_path: Path
    ) -> None:
        spool = DiskSpool(tmp_path)
        for n in range(3):
            spool.put(_batch(n))
        with IngestServer(status=503) as server:
            sender = Sender(spool, Pusher(server.url, "tok"), seed=1)
            for _ in range(4):
                delay = sender.send_next()
                assert delay is not None
                assert delay >= 0
            assert len(spool) == 3
            assert server.batch_ids() == []
            spooled = [p.read_bytes() for p in _segments(tmp_path)]
            assert server.bodies == [spooled[0]] * 4  # the head, tried again, unchanged
            # The agent restarts while the server is still down, then the server recovers.
            again = DiskSpool(tmp_path)
            again.put(_batch(3))
            with server.lock:
                server.status = 200
            _drain(again, server)
        assert server.batch_ids() == ["b0", "b1", "b2", "b3"]
        assert server.bodies[4:7] == spooled
        assert len(again) == 0

    def test_a_refused_batch_is_parked_with_its_bytes(self, tmp_path: Path) -> None:
        spool = DiskSpool(tmp_path)
        spool.put(_batch(1))
        spool.put(_batch(2))
        (segment, _) = _segments(tmp_path)
        body = segment.read_bytes()
        with IngestServer(status=422) as server:
            sender = _drain(spool, server)
        assert server.bodies[0] == body
        (parked, _) = sorted((tmp_path / "parked").iterdir())
        assert parked.read_bytes() == body
        assert (spool.parked, sender.pusher.parked, len(spool)) == (2, 2, 0)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-8])  # the gzip trailer: CRC-32 and size


def _change_gzip_mtime(path: Path) -> None:
    # Bytes gzip itself never checks: only the checksum in the name notices.
    data = bytearray(path.read_bytes())
    data[4:8] = b"\x01\x02\x03\x04"
    path.write_bytes(bytes(data))


class TestCorruption:
    @pytest.mark.parametrize(
        "damage",
        [_flip_a_byte, _truncate, _change_gzip_mtime, lambda p: p.write_bytes(b"")],
        ids=["flipped-byte", "truncated", "gzip-header", "empty"],
    )
    def test_a_segment_damaged_on_disk_is_set_aside_never_sent(
        self, tmp_path: Path, damage: Callable[[Path], None]
    ) -> None:
        first = DiskSpool(tmp_path)
        for n in range(3):
            first.put(_batch(n))
        damaged = _segments(tmp_path)[1]
        damage(damaged)
        spool = DiskSpool(tmp_path)
        with IngestServer() as server:
            _drain(spool, server)
        assert server.batch_ids() == ["b0", "b2"]
        (corrupt,) = tmp_path.glob("*.corrupt")
        assert corrupt.name.startswith(damaged.name.removesuffix(".gz"))
        assert not list((tmp_path / "parked").glob("*"))

    def test_an_older_agents_segment_is_checked_then_sent_as_it_is(self, tmp_path: Path) -> None:
        # Written as agents before checksummed names did: a plain name, gzip with a real mtime.
        old = gzip.compress(json.dumps(_batch(1)).encode(), mtime=1_700_000_000)
        (tmp_path / f"{1:016d}{SEGMENT_SUFFIX}").write_bytes(old)
        (tmp_path / f"{2:016d}{SEGMENT_SUFFIX}").write_bytes(old[:-8])
        (tmp_path / f"{3:016d}{SEGMENT_SUFFIX}").write_bytes(gzip.compress(b"[1, 2]"))
        (tmp_path / f"{4:016d}{SEGMENT_SUFFIX}").write_bytes(gzip.compress(b"\xff{"))
        # A damaged deflate stream: zlib.error, which is neither OSError nor ValueError.
        (tmp_path / f"{5:016d}{SEGMENT_SUFFIX}").write_bytes(old[:10] + b"\xff" * 8 + old[18:])
        spool = DiskSpool(tmp_path)
        spool.put(_batch(6))
        with IngestServer() as server:
            _drain(spool, server)
        assert server.bodies[0] == old
        assert server.requests[0]["Idempotency-Key"] == "b1"
        assert server.batch_ids() == ["b1", "b6"]
        assert len(list(tmp_path.glob("*.corrupt"))) == 4

    def test_an_id_unfit_for_a_file_name_still_travels_as_the_key(self, tmp_path: Path) -> None:
        DiskSpool(tmp_path).put(_batch(1, batch_id="node/1 batch.7"))
        (segment,) = _segments(tmp_path)
        assert segment.name == f"{1:016d}{SEGMENT_SUFFIX}"  # checked by a full read instead
        body = segment.read_bytes()
        spool = DiskSpool(tmp_path)
        with IngestServer() as server:
            _drain(spool, server)
        assert server.bodies == [body]
        assert server.requests[0]["Idempotency-Key"] == "node/1 batch.7"
        assert server.batch_ids() == ["node/1 batch.7"]
