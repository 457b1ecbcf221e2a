"""Request plumbing shared by both dialects: who is calling, the content type (no content coding: a body
is never decompressed), and a bounded body.

A body is bounded three ways: its size (``api.max_body_bytes``, 413), the time it may take to arrive
(``api.body_timeout_s``, 408), and the bytes held by bodies still arriving (503 with ``Retry-After``):
across every connection (``api.max_pending_body_bytes``) and those of one API key
(``api.max_pending_body_bytes_per_key``, by default a quarter of the former): one tenant's key opening
slowly sent bodies held the whole budget, and every other tenant was 503 for as long as it kept doing so.
Only the parts received before the rest of their body count: a body that arrives whole in one message, and
the last part of any body, are held across no wait, so no budget refuses them (nor the small requests that
are most of the traffic). The last two bounds close the connection, so a client that sends part of a body
and stalls holds neither memory nor a connection for longer than the timeout.

A body larger than ``INLINE_BODY_BYTES`` that only Python's parser reads exactly (numbers spelled as a
parser would not write them back, ``1.10``: about 2 MB/s) is not parsed on the event loop: the whole request
is produced in the threadpool (:func:`parsed_on_loop`); one tenant's 10 MiB body held every connection for
6 s. Threadpool calls carrying a large body take turns per API key (:class:`LargeBodyWork`); those waiting
for their turn count in the key's share of the budget above.

The gate reads the request as ASGI gives it (:class:`Sent`: the few headers it needs, found in one pass;
the body from ``receive``), so the produce fast path needs no framework request object.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive

from pinpipe import exact_json
from pinpipe.errors import ConfigError, ErrorCode
from pinpipe.ingest.auth import KeyRing, RateLimiter, authorize
from pinpipe.ingest.errors import ApiError
from pinpipe.keys import ANONYMOUS, Principal

INLINE_BODY_BYTES = 16 * 1024
"""The largest body parsed on the event loop whatever it holds: parsed at its slowest (in Python), 16 KiB
holds the other connections about 8 ms. Larger ones are parsed there only by orjson (about 1 GB/s)."""

_P = ParamSpec("_P")
_T = TypeVar("_T")


class LargeBodyWork:
    """Threadpool calls that carry a body larger than ``INLINE_BODY_BYTES``, bounded per API key: at most
    ``PER_KEY`` of one key's at a time hold threads of the pool (40, shared by every tenant), and of those
    one at a time runs Python's JSON parser (about 2 MB/s, holding the GIL). Eight of one key's 1 MB
    bodies parsed at once took another key's single-record request from 0.7 ms to 854 ms (median); one
    at a time, to 182 ms. The calls waiting for their key's turn wait on the event loop, holding no thread
    but their body, which counts in the key's share of the unfinished-body budget (:class:`PendingBytes`)
    until its turn comes: beyond the share the request is refused (503), so one key's connections cannot
    hold arrived bodies without bound either. An open API (:data:`ANONYMOUS`) cannot tell its callers
    apart: their calls take no turns. Used from the event loop; the table holds one entry per key name
    (keys come from configuration)."""

    PER_KEY = 4

    def __init__(self, pending: PendingBytes) -> None:
        self.pending = pending
        self._slots: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore, threading.Lock]] = {}

    def _of(self, who: str) -> tuple[asyncio.Semaphore, threading.Lock]:
        loop = asyncio.get_running_loop()
        found = self._slots.get(who)
        if found is None or found[0] is not loop:  # a semaphore belongs to one loop (tests run several)
            parse = found[2] if found is not None else threading.Lock()
            found = self._slots[who] = (loop, asyncio.Semaphore(self.PER_KEY), parse)
        return found[1], found[2]

    async def run(
        self, principal: Principal, body: bytes, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """``fn(*args, **kwargs)`` in the threadpool (which reads ``body``), in turn with ``principal``'s
        other calls when the body is large."""
        if len(body) <= INLINE_BODY_BYTES or principal is ANONYMOUS:
            return await run_in_threadpool(fn, *args, **kwargs)
        who = principal.name
        slots, parse = self._of(who)
        if slots.locked():  # not its turn yet: its body waits, in the key's share
            pending, size = self.pending, len(body)
            if not pending.take(who, pending.share, size):
                raise pending.refusal(principal, pending.share, size)
            try:
                await slots.acquire()
            finally:
                pending.give(who, size)
        else:
            await slots.acquire()
        try:
            return await run_in_threadpool(_parsing_under, parse, functools.partial(fn, *args, **kwargs))
        finally:
            slots.release()


def parsed_on_loop(body: bytes, parse: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``parse(*args, **kwargs)`` (which parses ``body``) on the event loop, where only a fast parse may
    run: a body larger than ``INLINE_BODY_BYTES`` that only Python's parser reads exactly raises
    :class:`~pinpipe.exact_json.NeedsPythonParse`, and the caller then produces the whole request in the
    threadpool (:meth:`LargeBodyWork.run`): the parse, and the checks and encoding of values that long,
    hold up no other connection there (a 1 MB record of such numbers takes ~36 ms to encode)."""
    if len(body) <= INLINE_BODY_BYTES:
        return parse(*args, **kwargs)
    with exact_json.fast_only():
        return parse(*args, **kwargs)


def _parsing_under(lock: threading.Lock, call: Callable[[], _T]) -> _T:
    with exact_json.python_parse_under(lock):
        return call()


class PendingBytes:
    """Bytes held by request bodies still arriving (and by a key's large bodies waiting for their turn in
    the threadpool: :class:`LargeBodyWork`), in all and per API key name (used from the event loop only).
    A key's count stays in the table at zero: keys come from configuration, so it stays small."""

    def __init__(self, limit: int, share: int) -> None:
        self.limit = limit
        self.share = share
        """What one key may hold (:meth:`Gate.read_body` lets :data:`ANONYMOUS` hold the whole ``limit``)."""
        self.held = 0
        self.by_key: dict[str, int] = {}

    def take(self, who: str, share: int, size: int) -> bool:
        """Count ``size`` more bytes for the key named ``who``; False (nothing counted) when that would
        pass its ``share`` or the limit."""
        mine = self.by_key.get(who, 0) + size
        if mine > share or self.held + size > self.limit:
            return False
        self.by_key[who] = mine
        self.held += size
        return True

    def give(self, who: str, size: int) -> None:
        self.by_key[who] -= size
        self.held -= size

    def refusal(self, principal: Principal, share: int, size: int) -> ApiError:
        """The 503 of a ``size``-byte part that :meth:`take` refused to ``principal``."""
        if self.by_key.get(principal.name, 0) + size > share and share < self.limit:
            message = (
                f"API key '{principal.name}' holds its share of request bodies still arriving or waiting "
                f"for their turn (api.max_pending_body_bytes_per_key, {share} bytes); retry once they are in"
            )
        else:
            message = "the server holds too many unfinished request bodies; retry"
        return ApiError(ErrorCode.BODIES_PENDING, message, {"Retry-After": "1", "Connection": "close"})


@dataclass(slots=True)
class Sent:
    """The request headers the API reads (the first of each, as the framework's ``headers.get``)."""

    api_key: str | None = None
    authorization: str | None = None
    content_type: str | None = None
    content_length: str | None = None
    idempotency_key: str | None = None
    content_encoding: str | None = None

    @classmethod
    def of(cls, raw: Iterable[tuple[bytes, bytes]]) -> Sent:
        """From the ASGI scope's ``headers`` (lower-case names, latin-1 values)."""
        found: dict[str, str] = {}
        for name, value in raw:
            field = _FIELDS.get(name)
            if field is not None and field not in found:
                found[field] = value.decode("latin-1")
        return cls(**found)


_FIELDS = {
    b"x-api-key": "api_key",
    b"authorization": "authorization",
    b"content-type": "content_type",
    b"content-length": "content_length",
    b"idempotency-key": "idempotency_key",
    b"content-encoding": "content_encoding",
}


class Deadlines:
    """The body timeout of every request reading its body, kept by one timer per event loop: a timer per
    request costs more than reading a small body. Every ``tick`` the timer cancels the tasks past their
    deadline; :meth:`Gate.read_body` turns that cancellation into 408. A stalled body is therefore
    answered between ``seconds`` and ``seconds + tick`` after its read began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(1.0, seconds / 8)
        self._loops: dict[asyncio.AbstractEventLoop, _Watch] = {}

    def watch(self, loop: asyncio.AbstractEventLoop) -> _Watch:
        """The watch of the running ``loop`` (one per loop: tests run apps on several)."""
        watch = self._loops.get(loop)
        if watch is None:
            for old in [old for old in self._loops if old.is_closed()]:
                del self._loops[old]
            watch = self._loops[loop] = _Watch(loop, self.seconds, self.tick)
        return watch


class _Watch:
    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, tick: float) -> None:
        self.loop = loop
        self.seconds = seconds
        self.tick = tick
        self.waiting: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[Any]) -> None:
        self.waiting[task] = self.loop.time() + self.seconds
        if self.timer is None:
            self.timer = self.loop.call_later(self.tick, self._check)

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """Forget ``task``; True when it was cancelled for its deadline."""
        del self.waiting[task]
        if self.expired and task in self.expired:
            self.expired.discard(task)
            return True
        return False

    def _check(self) -> None:
        now = self.loop.time()
        for task, deadline in self.waiting.items():
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        self.timer = self.loop.call_later(self.tick, self._check) if self.waiting else None


class Gate:
    """Authentication, authorization, rate limit and body limits, in that order."""

    def __init__(
        self,
        keys: KeyRing,
        limiter: RateLimiter,
        max_body_bytes: int,
        body_timeout_s: float = 30.0,
        max_pending_body_bytes: int = 64 * 1024 * 1024,
        max_pending_body_bytes_per_key: int = 0,
    ) -> None:
        if body_timeout_s <= 0:
            raise ConfigError(f"api.body_timeout_s must be positive, got {body_timeout_s}")
        if max_pending_body_bytes < max_body_bytes:
            raise ConfigError(
                f"api.max_pending_body_bytes ({max_pending_body_bytes}) must be at least "
                f"api.max_body_bytes ({max_body_bytes}): a body that large could never arrive"
            )
        share = max_pending_body_bytes_per_key or max(max_body_bytes, max_pending_body_bytes // 4)
        if not max_body_bytes <= share <= max_pending_body_bytes:
            raise ConfigError(
                f"api.max_pending_body_bytes_per_key ({share}) must be at least api.max_body_bytes "
                f"({max_body_bytes}), or a body that large could never arrive, and at most "
                f"api.max_pending_body_bytes ({max_pending_body_bytes})"
            )
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.pending = PendingBytes(max_pending_body_bytes, share)
        self.work = LargeBodyWork(self.pending)
        self.deadlines = Deadlines(body_timeout_s)

    def caller(self, request: Request, name: str | None = None) -> Principal:
        """The authenticated caller (40101), allowed to use ``name`` (40301), within its rate (42901)."""
        headers = request.headers
        return self.caller_of(headers.get("x-api-key"), headers.get("authorization"), name)

    def caller_of(self, api_key: str | None, authorization: str | None, name: str | None = None) -> Principal:
        """:meth:`caller` from the two headers that carry a key."""
        principal = self.keys.authenticate(api_key, authorization)
        if name is not None:
            authorize(principal, name)
        self.limiter.check(principal.name)
        return principal

    async def body(
        self, request: Request, principal: Principal, accepted: Collection[str], allow_missing: bool = False
    ) -> bytes:
        """:meth:`read_body` of a framework request."""
        return await self.read_body(
            request.receive, Sent.of(request.headers.raw), principal, accepted, allow_missing
        )

    async def read_body(
        self,
        receive: Receive,
        sent: Sent,
        principal: Principal,
        accepted: Collection[str],
        allow_missing: bool = False,
    ) -> bytes:
        """The raw body ``principal`` sends: 415 for another content type or any content coding (a
        compressed body is not decoded, so it is refused rather than read as plain text), 413 beyond
        ``max_body_bytes`` (checked on the declared length first, then while reading, so an oversized body
        is never held in memory), 408 when it does not arrive within ``body_timeout_s``, 503 when the
        parts received before the rest of their body would hold more than ``max_pending_body_bytes`` on
        every connection or more than the key's share on its own."""
        check_content_type(sent.content_type, accepted, allow_missing)
        encoding = sent.content_encoding
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            raise ApiError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Encoding {encoding.strip()!r} not accepted: send the body uncompressed",
            )
        limit = self.max_body_bytes
        declared = sent.content_length
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0  # held in ``chunks`` and counted in ``pending``
        pending = self.pending
        who = principal.name
        share = pending.limit if principal is ANONYMOUS else pending.share
        loop = asyncio.get_running_loop()  # once: each call costs a getpid()
        task = asyncio.current_task(loop)
        assert task is not None
        watch = self.deadlines.watch(loop)
        watch.start(task)
        expired = False
        try:
            try:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect
                        raise ApiError(
                            ErrorCode.MALFORMED_BODY, "client disconnected before the body was complete"
                        )
                    chunk: bytes = message.get("body", b"")
                    if size + len(chunk) > limit:
                        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body larger than {limit} bytes")
                    if not message.get("more_body", False):
                        break  # the last part (or all) of the body: held across no wait, counted nowhere
                    if not pending.take(who, share, len(chunk)):
                        raise pending.refusal(principal, share, len(chunk))
                    size += len(chunk)
                    chunks.append(chunk)
            finally:
                expired = watch.stop(task)
                if size:
                    pending.give(who, size)
        except asyncio.CancelledError:
            if not expired:
                raise
            task.uncancel()
            raise ApiError(
                ErrorCode.BODY_TIMEOUT,
                f"request body not received within {self.body_timeout_s:g} s",
                {"Connection": "close"},
            ) from None
        if not chunks:
            return chunk
        chunks.append(chunk)
        return b"".join(chunks)


def check_content_type(given: str | None, accepted: Collection[str], allow_missing: bool) -> None:
    if given in accepted:  # as clients send it: no parameters, lower case
        return
    if given is None or not given.strip():
        if allow_missing:
            return
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"missing Content-Type: use {' or '.join(sorted(accepted))}"
        )
    media_type, _, parameters = given.partition(";")
    media_type = media_type.strip().lower()
    if media_type not in accepted:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported Content-Type {media_type!r}: use {' or '.join(sorted(accepted))}",
        )
    check_charset(parameters)


def check_charset(parameters: str) -> None:
    """ApiError 41501 when the ``Content-Type`` parameters name a charset other than UTF-8: bodies are read
    as UTF-8, so a Latin-1 body that happens to be valid UTF-8 would be stored as other text."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise ApiError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"charset {charset!r} not accepted: send UTF-8 JSON (charset=utf-8 or none)",
            )


def error_docs(model: Any, *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these HTTP statuses, all with the error ``model`` (in the media
    type of the route's response class)."""
    return {code: {"model": model} for code in codes}
