"""Cloud identity: provider, instance id, instance type and region, the key to a node's bill.

Configured values win; what is missing is asked of the metadata services in turn, each with a
short timeout: AWS IMDSv2 (a session token from ``PUT /latest/api/token``, then GETs), GCP
(``Metadata-Flavor: Google``) and Azure (``Metadata: true`` with an ``api-version``). Off a
cloud every probe fails fast and the node is reported without a provider. Base URLs can be
pointed at a local fake server (tests).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

log = logging.getLogger(__name__)

METADATA_TIMEOUT_SECONDS = 0.5
AWS_BASE = "http://169.254.169.254"
GCP_BASE = "http://metadata.google.internal"
AZURE_BASE = "http://169.254.169.254"
AZURE_API_VERSION = "2021-02-01"
AWS_TOKEN_TTL_SECONDS = 60


@dataclass(frozen=True)
class CloudIdentity:
    provider: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    region: str | None = None


class _Probe:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def fetch(self, url: str, headers: dict[str, str], method: str = "GET") -> str:
        request = urllib.request.Request(url, headers=headers, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout) as r:  # noqa: S310
            return str(r.read().decode())


def probe_aws(base: str = AWS_BASE, timeout: float = METADATA_TIMEOUT_SECONDS) -> CloudIdentity:
    """AWS IMDSv2: a token first (PUT), then the identity document."""
    p = _Probe(timeout)
    token = p.fetch(
        f"{base}/latest/api/token",
        {"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL_SECONDS)},
        method="PUT",
    )
    doc = json.loads(
        p.fetch(
            f"{base}/latest/dynamic/instance-identity/document",
            {"X-aws-ec2-metadata-token": token},
        )
    )
    return CloudIdentity("aws", doc.get("instanceId"), doc.get("instanceType"), doc.get("region"))


def probe_gcp(base: str = GCP_BASE, timeout: float = METADATA_TIMEOUT_SECONDS) -> CloudIdentity:
    """GCP: instance id, machine type and zone (region = zone less its last part)."""
    p = _Probe(timeout)
    headers = {"Metadata-Flavor": "Google"}
    root = f"{base}/computeMetadata/v1/instance"
    instance_id = p.fetch(f"{root}/id", headers)
    # "projects/123/machineTypes/a3-highgpu-8g", "projects/123/zones/us-central1-a"
    machine = p.fetch(f"{root}/machine-type", headers).rpartition("/")[2]
    zone = p.fetch(f"{root}/zone", headers).rpartition("/")[2]
    return CloudIdentity("gcp", instance_id, machine, zone.rpartition("-")[0] or zone)


def probe_azure(base: str = AZURE_BASE, timeout: float = METADATA_TIMEOUT_SECONDS) -> CloudIdentity:
    """Azure IMDS compute document: vmId, vmSize, location."""
    p = _Probe(timeout)
    doc = json.loads(
        p.fetch(
            f"{base}/metadata/instance/compute?api-version={AZURE_API_VERSION}&format=json",
            {"Metadata": "true"},
        )
    )
    # The resource id is what Azure cost exports name; fall back to the VM id.
    instance = doc.get("resourceId") or doc.get("vmId")
    return CloudIdentity("azure", instance, doc.get("vmSize"), doc.get("location"))


def detect(
    configured: CloudIdentity,
    *,
    enabled: bool = True,
    aws_base: str = AWS_BASE,
    gcp_base: str = GCP_BASE,
    azure_base: str = AZURE_BASE,
    timeout: float = METADATA_TIMEOUT_SECONDS,
) -> CloudIdentity:
    """``configured`` filled in from the first metadata service that answers."""
    if not enabled or configured.provider in ("onprem", "other"):
        return configured
    if all(
        (configured.provider, configured.instance_id, configured.instance_type, configured.region)
    ):
        return configured
    probes = {
        "aws": lambda: probe_aws(aws_base, timeout),
        "gcp": lambda: probe_gcp(gcp_base, timeout),
        "azure": lambda: probe_azure(azure_base, timeout),
    }
    order = [configured.provider] if configured.provider in probes else list(probes)
    for name in order:
        try:
            found = probes[str(name)]()
        except (OSError, ValueError, urllib.error.URLError) as e:
            log.debug("no %s metadata service: %s", name, e)
            continue
        log.info("cloud identity from the %s metadata service: %s", name, found)
        return CloudIdentity(
            configured.provider or found.provider,
            configured.instance_id or found.instance_id,
            configured.instance_type or found.instance_type,
            configured.region or found.region,
        )
    log.info("no cloud metadata service answered; reporting the node without a cloud identity")
    return configured
