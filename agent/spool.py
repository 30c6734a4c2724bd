"""A bounded disk spool: batches survive a crash, a reboot or a long network outage.

Each batch is one segment file, gzip JSON, written atomically (temporary file, fsync, rename,
fsync of the directory), so a SIGKILL leaves either the whole segment or nothing. Segments are
named by a sequence number and read oldest first; one is deleted only after the server answered
2xx (``ack``). When the spool would pass ``max_bytes`` the oldest segment is dropped and counted.
A batch the server refused for good (a 4xx other than 429) is moved to ``parked/`` for an
operator to look at, never retried.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPOOL_MAX_BYTES = 256 * 1024**2
SEGMENT_SUFFIX = ".batch.gz"
PARKED_DIR = "parked"
PARKED_MAX_FILES = 1000


class DiskSpool:
    """The ``Outbox`` protocol (put/peek/ack/park/len) over segment files in ``directory``."""

    def __init__(self, directory: Path, *, max_bytes: int = SPOOL_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self.parked = 0
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for tmp in directory.glob(".tmp-*"):
            # A write that a crash interrupted before its rename: never acknowledged to anyone.
            tmp.unlink(missing_ok=True)
        self._segments: list[tuple[int, Path, int]] = sorted(
            (int(p.name.removesuffix(SEGMENT_SUFFIX)), p, p.stat().st_size)
            for p in directory.glob("*" + SEGMENT_SUFFIX)
            if p.name.removesuffix(SEGMENT_SUFFIX).isdigit()
        )
        self._bytes = sum(size for _, _, size in self._segments)
        self._next = self._segments[-1][0] + 1 if self._segments else 1
        self._peeked: Path | None = None
        self._cache: tuple[Path, dict[str, Any]] | None = None
        if self._segments:
            log.info(
                "spool %s: %d batch(es), %d bytes waiting from before",
                directory,
                len(self._segments),
                self._bytes,
            )

    @property
    def bytes(self) -> int:
        """Bytes of segments waiting to be sent."""
        with self._lock:
            return self._bytes

    def put(self, batch: dict[str, Any]) -> None:
        """Write one batch durably; drop the oldest segments first if the spool is full."""
        body = gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), compresslevel=5)
        with self._lock:
            seq = self._next
            self._next += 1
            path = self.directory / f"{seq:016d}{SEGMENT_SUFFIX}"
            _write_atomically(path, body)
            self._segments.append((seq, path, len(body)))
            self._bytes += len(body)
            self._cache = (path, batch)
            while self._bytes > self.max_bytes and len(self._segments) > 1:
                _, oldest, size = self._segments.pop(0)
                oldest.unlink(missing_ok=True)
                self._bytes -= size
                self.dropped += 1
                log.warning("spool full (%d bytes max): dropped the oldest batch", self.max_bytes)

    def peek(self) -> dict[str, Any] | None:
        """The oldest batch, or None; an unreadable segment is set aside and skipped."""
        with self._lock:
            while self._segments:
                _, path, _ = self._segments[0]
                self._peeked = path
                if self._cache is not None and self._cache[0] == path:
                    return self._cache[1]
                try:
                    batch: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
                except (OSError, EOFError, ValueError) as e:
                    log.error("spool segment %s is unreadable (%s); setting it aside", path, e)
                    self._remove_first(path)
                    with contextlib.suppress(OSError):
                        path.rename(path.with_suffix(".corrupt"))
                    continue
                return batch
            self._peeked = None
            return None

    def ack(self) -> None:
        """The peeked batch was delivered: delete its segment."""
        with self._lock:
            if self._peeked is not None:
                self._remove_first(self._peeked)
                self._peeked.unlink(missing_ok=True)
                self._peeked = None

    def park(self) -> None:
        """The peeked batch was refused for good: keep it under ``parked/``, stop sending it."""
        with self._lock:
            path = self._peeked
            if path is None:
                return
            self._remove_first(path)
            self._peeked = None
            parked = self.directory / PARKED_DIR
            parked.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.rename(parked / path.name)
                self.parked += 1
            kept = sorted(parked.iterdir())
            for old in kept[: max(0, len(kept) - PARKED_MAX_FILES)]:
                old.unlink(missing_ok=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._segments)

    def _remove_first(self, path: Path) -> None:
        # The segment may already be gone: dropped as the oldest while it was being sent.
        for i, (_, p, size) in enumerate(self._segments):
            if p == path:
                del self._segments[i]
                self._bytes -= size
                break
        if self._cache is not None and self._cache[0] == path:
            self._cache = None


def _write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    # The rename itself must reach the disk too, or a power cut could forget the segment.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
