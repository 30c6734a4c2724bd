"""A bounded disk spool: batches survive a crash, a reboot or a long network outage.

Each batch is one segment file, gzip JSON, written atomically (temporary file, fsync, rename,
fsync of the directory), so a SIGKILL leaves either the whole segment or nothing. A segment holds
exactly the request body, and the sender ships its bytes as they are: it never decompresses or
parses them. Its name, ``<seq>.<crc32>.<batch_id>.batch.gz``, carries what the sender needs
besides: the order, a CRC-32 of the file's bytes (a segment damaged on disk is set aside as
``.corrupt``, never sent) and the Idempotency-Key. A segment named ``<seq>.batch.gz`` (an older
agent's, or a batch id unfit for a file name) is checked by decompressing and parsing it.

Segments are read oldest first; one is deleted only after the server answered 2xx (``ack``).
When the spool would pass ``max_bytes`` the oldest segment is dropped and counted. A batch the
server refused for good (a 4xx other than 429) is moved to ``parked/`` for an operator to look
at, never retried.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any

from agent.pusher import EncodedBatch, batch_key, encode_batch

log = logging.getLogger(__name__)

SPOOL_MAX_BYTES = 256 * 1024**2
SEGMENT_SUFFIX = ".batch.gz"
# <seq>.<crc32 of the file>.<batch_id>.batch.gz, or <seq>.batch.gz without the two.
SEGMENT_NAME = re.compile(
    r"([0-9]+)(?:\.([0-9a-f]{8})\.([0-9A-Za-z_-]{1,64}))?" + re.escape(SEGMENT_SUFFIX)
)
NAMEABLE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
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
            (int(m[1]), p, p.stat().st_size)
            for p in directory.glob("*" + SEGMENT_SUFFIX)
            if (m := SEGMENT_NAME.fullmatch(p.name))
        )
        self._bytes = sum(size for _, _, size in self._segments)
        self._next = self._segments[-1][0] + 1 if self._segments else 1
        self._peeked: Path | None = None
        # The batch just put: when the sender keeps up, it is sent without reading its file.
        self._cache: tuple[Path, EncodedBatch] | None = None
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
        """Encode one batch and write it durably; drop the oldest segments first if full."""
        encoded = encode_batch(batch)
        body = encoded.body
        if NAMEABLE_ID.fullmatch(encoded.batch_id):
            name = f".{zlib.crc32(body):08x}.{encoded.batch_id}{SEGMENT_SUFFIX}"
        else:
            name = SEGMENT_SUFFIX
        with self._lock:
            seq = self._next
            self._next += 1
            path = self.directory / f"{seq:016d}{name}"
            _write_atomically(path, body)
            self._segments.append((seq, path, len(body)))
            self._bytes += len(body)
            self._cache = (path, encoded)
            while self._bytes > self.max_bytes and len(self._segments) > 1:
                _, oldest, size = self._segments.pop(0)
                oldest.unlink(missing_ok=True)
                self._bytes -= size
                self.dropped += 1
                log.warning("spool full (%d bytes max): dropped the oldest batch", self.max_bytes)

    def peek(self) -> EncodedBatch | None:
        """The oldest batch's bytes, or None; an unreadable segment is set aside and skipped."""
        with self._lock:
            while self._segments:
                _, path, _ = self._segments[0]
                self._peeked = path
                if self._cache is not None and self._cache[0] == path:
                    return self._cache[1]
                try:
                    encoded = read_segment(path)
                except (OSError, EOFError, ValueError, zlib.error) as e:
                    log.error("spool segment %s is unreadable (%s); setting it aside", path, e)
                    self._remove_first(path)
                    with contextlib.suppress(OSError):
                        path.rename(path.with_suffix(".corrupt"))
                    continue
                return encoded
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


def read_segment(path: Path) -> EncodedBatch:
    """A segment's bytes as they are, checked against the CRC-32 in its name.

    Raises ValueError (or what gzip and zlib raise) for a segment that is not what was written.
    """
    body = path.read_bytes()
    m = SEGMENT_NAME.fullmatch(path.name)
    if m is not None and m[2] is not None:
        if zlib.crc32(body) != int(m[2], 16):
            raise ValueError("CRC-32 mismatch: the file changed after it was written")
        return EncodedBatch(m[3], body)
    # No checksum in the name: a full read is the check, as gzip verifies its own CRC and size.
    batch: Any = json.loads(gzip.decompress(body))
    if not isinstance(batch, dict):
        raise ValueError("not a JSON object")
    return EncodedBatch(batch_key(batch), body)


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
