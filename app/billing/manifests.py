"""AWS delivery manifests: which files make one delivery of a month, and which run it is.

AWS writes a manifest next to every delivery of a Cost and Usage Report: the legacy CUR's
``<report>-Manifest.json`` (``assemblyId``, ``reportName``, ``billingPeriod``, ``reportKeys``) and
the Data Exports (CUR 2.0, FOCUS) ``<export>-Manifest.json`` (``executionId``, ``billingPeriod``,
``dataFiles``, the export's name in ``exportName`` or its ARN). A new delivery of a billing period
restates the whole period, so the files of one manifest are imported as one run of the delivery
and replace the previous run's rows, and no other delivery's.

The manifest names S3 keys; a synced copy of the bucket keeps their paths, so each key is looked
for under the manifest's folder and its parents, longest matching path first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from app.billing.rows import BillingFileError, RowError

MANIFEST_MAX_BYTES = 16 << 20  # a manifest lists files and columns; a bill is far larger
_FILE_KEYS = ("reportKeys", "dataFiles")
_RUN_KEYS = ("assemblyId", "executionId")
_PARENTS_SEARCHED = 3  # Data Exports: metadata/BILLING_PERIOD=…/ beside data/BILLING_PERIOD=…/


@dataclass(frozen=True)
class Manifest:
    """One delivery: its name (report or export and billing period), run id and local files."""

    path: Path
    delivery: str
    run: str
    files: list[Path]


def _load(path: Path) -> dict[str, Any] | None:
    if path.suffix.lower() != ".json" or path.stat().st_size > MANIFEST_MAX_BYTES:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and any(k in value for k in _FILE_KEYS) else None


def is_manifest(path: Path) -> bool:
    """Whether ``path`` is an AWS delivery manifest rather than a bill."""
    return path.is_file() and _load(path) is not None


def _key_parts(key: str) -> tuple[str, ...]:
    if key.startswith("s3://"):
        key = key.removeprefix("s3://").partition("/")[2]  # drop the bucket
    return tuple(p for p in PurePosixPath(key).parts if p not in ("", "/", ".", ".."))


def locate(key: str, folder: Path) -> Path | None:
    """The local copy of the S3 ``key``: the longest trailing part of its path that exists
    under ``folder`` or one of its first parents (old runs' files may share a base name)."""
    parts = _key_parts(key)
    bases = [folder, *list(folder.parents)[:_PARENTS_SEARCHED]]
    for k in range(len(parts)):
        for base in bases:
            candidate = base.joinpath(*parts[k:])
            if candidate.is_file():
                return candidate
    return None


def _fail(path: Path, message: str) -> BillingFileError:
    return BillingFileError(path.name, [RowError(None, None, message)], 1)


def read_manifest(path: Path) -> Manifest:
    """The delivery a manifest describes; BillingFileError when it is incomplete or a file it
    lists is not there (a partial delivery must not replace a whole one)."""
    doc = _load(path)
    if doc is None:
        raise _fail(path, "not an AWS manifest (a JSON object with reportKeys or dataFiles)")
    run = next((str(doc[k]) for k in _RUN_KEYS if doc.get(k)), None)
    if run is None:
        raise _fail(path, "manifest without assemblyId or executionId: which run is it?")
    keys: Any = next((doc[k] for k in _FILE_KEYS if k in doc), [])
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise _fail(path, "the manifest lists no data files (reportKeys / dataFiles is empty)")
    found = {key: locate(key, path.parent) for key in keys}
    missing = [key for key, local in found.items() if local is None]
    if missing:
        errors = [RowError(None, None, f"data file not found next to the manifest: {key}")
                  for key in missing[:20]]  # fmt: skip
        raise BillingFileError(path.name, errors, len(missing))
    name = doc.get("reportName") or doc.get("exportName") or _arn_name(doc.get("exportArn"))
    period = doc.get("billingPeriod") or {}
    start = str(period.get("start", "") if isinstance(period, dict) else "")
    month = "".join(c for c in start if c.isdigit())[:6]  # "20261101T…" and "2026-11-01T…"
    delivery = "aws:" + "/".join(str(p) for p in (name or path.stem, month) if p)
    return Manifest(path, delivery[:200], run[:200], [p for p in found.values() if p])


def _arn_name(arn: object) -> str | None:
    """The export's name from ``arn:aws:bcm-data-exports:…:export/<name>-<id>``."""
    if not isinstance(arn, str) or "export/" not in arn:
        return None
    return arn.rpartition("export/")[2] or None
