"""Request plumbing shared by both dialects: who is calling, the content type, and a size-limited body."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.requests import ClientDisconnect, Request

from pinpipe.ingest.auth import KeyRing, Principal, RateLimiter, authorize
from pinpipe.ingest.errors import ApiError


class Gate:
    """Authentication, authorization, rate limit and body limits, in that order."""

    def __init__(self, keys: KeyRing, limiter: RateLimiter, max_body_bytes: int) -> None:
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    def caller(self, request: Request, name: str | None = None) -> Principal:
        """The authenticated caller (40101), allowed to use ``name`` (40301), within its rate (42901)."""
        headers = request.headers
        principal = self.keys.authenticate(headers.get("x-api-key"), headers.get("authorization"))
        if name is not None:
            authorize(principal, name)
        self.limiter.check(principal.name)
        return principal

    async def body(self, request: Request, accepted: Collection[str], allow_missing: bool = False) -> bytes:
        """The raw body: 415 for another content type, 413 beyond ``max_body_bytes`` (checked on the
        declared length first, then while reading, so an oversized body is never held in memory)."""
        check_content_type(request.headers.get("content-type"), accepted, allow_missing)
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        too_big = ApiError(41301, f"request body larger than {limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
        except ClientDisconnect:
            raise ApiError(40001, "client disconnected before the body was complete") from None
        return b"".join(chunks)


def check_content_type(given: str | None, accepted: Collection[str], allow_missing: bool) -> None:
    if given is None or not given.strip():
        if allow_missing:
            return
        raise ApiError(41501, f"missing Content-Type: use {' or '.join(sorted(accepted))}")
    media_type = given.split(";", 1)[0].strip().lower()
    if media_type not in accepted:
        raise ApiError(41501, f"unsupported Content-Type {media_type!r}: use {' or '.join(sorted(accepted))}")


def error_docs(model: Any, *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these HTTP statuses, all with the error ``model`` (in the media
    type of the route's response class)."""
    return {code: {"model": model} for code in codes}
