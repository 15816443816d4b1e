"""Conditional GETs: a JSON answer with an ETag, and a bodiless 304 when the client already holds it."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response


def body_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def json_with_etag(request: Request, body: bytes, *, cache_control: str, etag: str | None = None) -> Response:
    """``body`` (JSON) with ``etag`` (default: a digest of the body); 304 when ``If-None-Match`` names it."""
    tag = etag or body_etag(body)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if tag in {candidate.strip() for candidate in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
