"""Cloud identity against a local fake metadata server (AWS IMDSv2, GCP, Azure)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.collectors.cloud import CloudIdentity, detect

AWS_DOC = {"instanceId": "i-0abc123", "instanceType": "p5.48xlarge", "region": "us-east-1"}
AZURE_DOC = {
    "vmId": "0f1e2d3c",
    "resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/gpu1",
    "vmSize": "Standard_ND96asr_v4",
    "location": "eastus",
}


class FakeMetadata:
    """Answers like one cloud's metadata service; records the requests."""

    def __init__(self, cloud: str) -> None:
        self.cloud = cloud
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                outer.seen.append((method, self.path, dict(self.headers)))
                status, body = outer.route(method, self.path, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:
                self._answer("GET")

            def do_PUT(self) -> None:
                self._answer("PUT")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, headers: Any) -> tuple[int, str]:
        if self.cloud == "aws":
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if method == "PUT" and path == "/latest/api/token" and ttl:
                return 200, "tok-123"
            if path == "/latest/dynamic/instance-identity/document":
                # IMDSv2 only: no token, no answer.
                if headers.get("X-aws-ec2-metadata-token") == "tok-123":
                    return 200, json.dumps(AWS_DOC)
                return 401, ""
        if self.cloud == "gcp" and headers.get("Metadata-Flavor") == "Google":
            answers = {
                "/computeMetadata/v1/instance/id": "1234567890",
                "/computeMetadata/v1/instance/machine-type": "projects/99/machineTypes/a3-highgpu-8g",
                "/computeMetadata/v1/instance/zone": "projects/99/zones/us-central1-a",
            }
            if path in answers:
                return 200, answers[path]
        if (
            self.cloud == "azure"
            and headers.get("Metadata") == "true"
            and path.startswith("/metadata/instance/compute?api-version=")
        ):
            return 200, json.dumps(AZURE_DOC)
        return 404, ""

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def nowhere() -> str:
    """A URL where nothing listens (a port we bound and closed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    server.server_close()
    return url


def _detect(cloud: str, nowhere: str, configured: CloudIdentity | None = None) -> CloudIdentity:
    fake = FakeMetadata(cloud)
    try:
        base = {c: (fake.url if c == cloud else nowhere) for c in ("aws", "gcp", "azure")}
        return detect(
            configured or CloudIdentity(),
            timeout=2,
            aws_base=base["aws"],
            gcp_base=base["gcp"],
            azure_base=base["azure"],
        )
    finally:
        fake.close()


def test_aws_imdsv2(nowhere: str) -> None:
    found = _detect("aws", nowhere)
    assert found == CloudIdentity("aws", "i-0abc123", "p5.48xlarge", "us-east-1")


def test_gcp(nowhere: str) -> None:
    found = _detect("gcp", nowhere)
    assert found == CloudIdentity("gcp", "1234567890", "a3-highgpu-8g", "us-central1")


def test_azure(nowhere: str) -> None:
    found = _detect("azure", nowhere)
    assert found == CloudIdentity("azure", AZURE_DOC["resourceId"], "Standard_ND96asr_v4", "eastus")


def test_configured_values_win(nowhere: str) -> None:
    found = _detect("aws", nowhere, CloudIdentity(instance_type="p4d.24xlarge"))
    assert found == CloudIdentity("aws", "i-0abc123", "p4d.24xlarge", "us-east-1")


def test_fully_configured_asks_nobody() -> None:
    configured = CloudIdentity("aws", "i-1", "p5.48xlarge", "eu-west-1")
    fake = FakeMetadata("aws")
    try:
        assert detect(configured, aws_base=fake.url) == configured
        assert fake.seen == []
    finally:
        fake.close()


def test_disabled_asks_nobody() -> None:
    fake = FakeMetadata("aws")
    try:
        found = detect(
            CloudIdentity(),
            enabled=False,
            aws_base=fake.url,
            gcp_base=fake.url,
            azure_base=fake.url,
        )
        assert found == CloudIdentity()
        assert fake.seen == []
    finally:
        fake.close()


def test_off_cloud_gives_nothing(nowhere: str) -> None:
    found = detect(CloudIdentity(), aws_base=nowhere, gcp_base=nowhere, azure_base=nowhere)
    assert found == CloudIdentity()
