"""Ship batches to the backend: gzip JSON over HTTP(S), retry with backoff and full jitter.

Collection never waits on the network: the loop puts batches in an outbox (``agent.spool`` on
disk, ``MemoryOutbox`` for demos) and a sender thread drains it. A batch is encoded once, when it
is put, and its bytes are sent as they are, on every try. Only a 2xx removes a batch; 5xx, 429
and connection errors are retried (honouring Retry-After); any other 4xx is logged and parked,
never retried forever. ``batch_id`` travels as the Idempotency-Key.
"""

from __future__ import annotations

import collections
import email.utils
import gzip
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 30.0
GZIP_LEVEL = 5


@dataclass(frozen=True)
class EncodedBatch:
    """One batch as it goes on the wire: the gzip JSON body and its ``batch_id``."""

    batch_id: str
    body: bytes


def batch_key(batch: dict[str, Any]) -> str:
    """The batch's idempotency key, as the Idempotency-Key header carries it."""
    return str(batch.get("batch_id", ""))


def encode_batch(batch: dict[str, Any]) -> EncodedBatch:
    """The request body for ``batch``: compact JSON, gzip (mtime 0, so the same batch gives the
    same bytes)."""
    body = json.dumps(batch, separators=(",", ":")).encode()
    return EncodedBatch(batch_key(batch), gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))


class Outbox(Protocol):
    """Where batches wait to be sent, oldest first; ``put`` encodes, ``peek`` gives the bytes."""

    def put(self, batch: dict[str, Any]) -> None: ...
    def peek(self) -> EncodedBatch | None: ...
    def ack(self) -> None: ...
    def park(self) -> None: ...
    def __len__(self) -> int: ...


@dataclass
class MemoryOutbox:
    """A bounded in-memory outbox: when full, the oldest batch is dropped and counted."""

    max_batches: int = 1000
    dropped: int = 0
    parked: int = 0
    _items: collections.deque[EncodedBatch] = field(default_factory=collections.deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, batch: dict[str, Any]) -> None:
        encoded = encode_batch(batch)
        with self._lock:
            if len(self._items) >= self.max_batches:
                self._items.popleft()
                self.dropped += 1
            self._items.append(encoded)

    def peek(self) -> EncodedBatch | None:
        with self._lock:
            return self._items[0] if self._items else None

    def ack(self) -> None:
        with self._lock:
            if self._items:
                self._items.popleft()

    def park(self) -> None:
        # Nowhere to keep it in memory: a refused batch is counted and let go.
        with self._lock:
            if self._items:
                self._items.popleft()
                self.parked += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retry: bool
    status: int | None = None
    retry_after: float | None = None
    message: str = ""


def full_jitter(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): U(0, min(cap, base·2^n))."""
    return rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt, 20)))


class Pusher:
    """POSTs batches to ``{server}/api/v1/ingest`` with the node token."""

    def __init__(
        self, server: str, token: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self.url = server.rstrip("/") + "/api/v1/ingest"
        self._token = token
        self.timeout = timeout
        self.sent = 0
        self.failures = 0
        self.parked = 0

    def send(self, batch: dict[str, Any]) -> SendResult:
        """Encode and POST one batch (for callers that keep no outbox)."""
        return self.post(encode_batch(batch))

    def post(self, encoded: EncodedBatch) -> SendResult:
        """POST an encoded batch's bytes as they are."""
        request = urllib.request.Request(  # noqa: S310  (the URL is the operator's --server)
            self.url,
            data=encoded.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Authorization": f"Bearer {self._token}",
                "Idempotency-Key": encoded.batch_id,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read()
                self.sent += 1
                return SendResult(ok=True, retry=False, status=response.status)
        except urllib.error.HTTPError as e:
            self.failures += 1
            detail = e.read()[:500].decode(errors="replace")
            retryable = e.code == 429 or e.code >= 500
            return SendResult(
                ok=False,
                retry=retryable,
                status=e.code,
                retry_after=_retry_after(e.headers.get("Retry-After")),
                message=detail,
            )
        except (urllib.error.URLError, OSError) as e:
            self.failures += 1
            return SendResult(ok=False, retry=True, message=str(e))


RETRY_AFTER_MAX_SECONDS = 3600.0


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP-date), capped at an hour."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return min(RETRY_AFTER_MAX_SECONDS, max(0.0, seconds))


class Sender(threading.Thread):
    """Drains an outbox through a pusher until stopped."""

    def __init__(self, outbox: Outbox, pusher: Pusher, *, seed: int | None = None) -> None:
        super().__init__(name="gpuledger-sender", daemon=True)
        self.outbox = outbox
        self.pusher = pusher
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._rng = random.Random(seed)
        self._attempt = 0

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def send_next(self) -> float | None:
        """Offer the oldest batch once: None when there is none, else seconds to wait before
        the next try (0 after a delivery or a refusal)."""
        encoded = self.outbox.peek()
        if encoded is None:
            return None
        result = self.pusher.post(encoded)
        if result.ok:
            self.outbox.ack()
            self._attempt = 0
            return 0.0
        if not result.retry:
            self.pusher.parked += 1
            log.error(
                "server refused batch %s with %s, parked, not retrying: %s",
                encoded.batch_id,
                result.status,
                result.message,
            )
            self.outbox.park()
            self._attempt = 0
            return 0.0
        delay = (
            result.retry_after
            if result.retry_after is not None
            else full_jitter(self._attempt, self._rng)
        )
        self._attempt += 1
        log.warning("send failed (%s %s); retrying in %.1fs", result.status, result.message, delay)
        return delay

    def run(self) -> None:
        while not self.stopping.is_set():
            delay = self.send_next()
            if delay is None:
                self.wake.wait(1.0)
                self.wake.clear()
            elif delay > 0:
                self.stopping.wait(delay)

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty (for ``--once`` and shutdown); False on timeout."""
        deadline = threading.Event()
        waited = 0.0
        while len(self.outbox) and waited < timeout:
            self.wake.set()
            deadline.wait(0.05)
            waited += 0.05
        return not len(self.outbox)
