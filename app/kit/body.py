"""Request bodies: gzip with a cap on the inflated size, JSON into a validated model."""

from __future__ import annotations

import zlib

from fastapi import Request

from app.errors import AppError, PayloadTooLarge


class BadEncoding(AppError):
    status_code = 400
    error = "bad_encoding"


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``, at most ``max_bytes``."""
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > max_bytes:
            raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
        return raw
    if encoding != "gzip":
        raise BadEncoding(f"unsupported Content-Encoding {encoding!r}; send gzip or identity")
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise BadEncoding(f"body is not valid gzip: {e}") from e
    # Checking the inflated size guards against gzip bombs: a few KiB can expand to GiB.
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"inflated body is larger than {max_bytes} bytes")
    return body
