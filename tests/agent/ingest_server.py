"""A tiny local ingest server that records what agents send (bodies, batches, headers)."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class IngestServer:
    """Answers ``status`` (default 200) to ``POST /api/v1/ingest`` on 127.0.0.1, a free port."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.bodies: list[bytes] = []  # each request's body as it came, whatever the answer
        self.batches: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests.append(dict(self.headers))
                    outer.bodies.append(body)
                    status = outer.status
                    if status == 200:
                        if self.headers.get("Content-Encoding") == "gzip":
                            body = gzip.decompress(body)
                        outer.batches.append(json.loads(body))
                self.send_response(status)
                for k, v in outer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> IngestServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def batch_ids(self) -> list[str]:
        with self.lock:
            return [b["batch_id"] for b in self.batches]
