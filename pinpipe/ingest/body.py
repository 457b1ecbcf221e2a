"""Request plumbing shared by both dialects: who is calling, the content type, and a bounded body.

A body is bounded three ways: its size (``api.max_body_bytes``, 413), the time it may take to arrive
(``api.body_timeout_s``, 408), and, across every connection, the bytes held by bodies still arriving
(``api.max_pending_body_bytes``, 503 with ``Retry-After``). The last two close the connection, so a client
that sends part of a body and stalls holds neither memory nor a connection for longer than the timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from starlette.requests import ClientDisconnect, Request

from pinpipe.errors import ConfigError, ErrorCode
from pinpipe.ingest.auth import KeyRing, Principal, RateLimiter, authorize
from pinpipe.ingest.errors import ApiError


class PendingBytes:
    """Bytes held by request bodies still arriving, across connections (used from the event loop only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class Gate:
    """Authentication, authorization, rate limit and body limits, in that order."""

    def __init__(
        self,
        keys: KeyRing,
        limiter: RateLimiter,
        max_body_bytes: int,
        body_timeout_s: float = 30.0,
        max_pending_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if body_timeout_s <= 0:
            raise ConfigError(f"api.body_timeout_s must be positive, got {body_timeout_s}")
        if max_pending_body_bytes < max_body_bytes:
            raise ConfigError(
                f"api.max_pending_body_bytes ({max_pending_body_bytes}) must be at least "
                f"api.max_body_bytes ({max_body_bytes}): a body that large could never arrive"
            )
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.pending = PendingBytes(max_pending_body_bytes)

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
        declared length first, then while reading, so an oversized body is never held in memory), 408
        when it does not arrive within ``body_timeout_s``, 503 when the bodies arriving on every
        connection would hold more than ``max_pending_body_bytes``."""
        check_content_type(request.headers.get("content-type"), accepted, allow_missing)
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        too_big = ApiError(ErrorCode.BODY_TOO_LARGE, f"request body larger than {limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks = []
        size = 0  # held in ``chunks`` and counted in ``pending``
        try:
            async with asyncio.timeout(self.body_timeout_s):  # lighter than anyio's cancel scope
                async for chunk in request.stream():
                    if size + len(chunk) > limit:
                        raise too_big
                    if not self.pending.take(len(chunk)):
                        raise ApiError(
                            ErrorCode.BODIES_PENDING,
                            "the server holds too many unfinished request bodies; retry",
                            {"Retry-After": "1", "Connection": "close"},
                        )
                    size += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                ErrorCode.BODY_TIMEOUT,
                f"request body not received within {self.body_timeout_s:g} s",
                {"Connection": "close"},
            ) from None
        except ClientDisconnect:
            raise ApiError(
                ErrorCode.MALFORMED_BODY, "client disconnected before the body was complete"
            ) from None
        finally:
            self.pending.give(size)
        return b"".join(chunks)


def check_content_type(given: str | None, accepted: Collection[str], allow_missing: bool) -> None:
    if given is None or not given.strip():
        if allow_missing:
            return
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"missing Content-Type: use {' or '.join(sorted(accepted))}"
        )
    media_type = given.split(";", 1)[0].strip().lower()
    if media_type not in accepted:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported Content-Type {media_type!r}: use {' or '.join(sorted(accepted))}",
        )


def error_docs(model: Any, *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these HTTP statuses, all with the error ``model`` (in the media
    type of the route's response class)."""
    return {code: {"model": model} for code in codes}
