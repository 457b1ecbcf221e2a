"""HTTP connections as the servers accept them: a request head (request line and headers) bounded in size
and in time, before any key is checked.

uvicorn's httptools protocol keeps every byte of a head until the head ends and sets no deadline on it:
one unauthenticated client sending headers without end held as much memory as it sent, and a connection
that sends nothing, or a header line now and then, stayed open for ever (enough of them take every socket
the server may open). :class:`BoundedHttpTools` is that protocol with two bounds:

- a head larger than :data:`MAX_HEAD_BYTES` (64 KiB, request line and headers) is answered 431 (43101);
- a head not complete within ``head_timeout_s`` (10 s) from the connection's start or its request's first
  byte is answered 408 (40802);
- a chunked body whose chunk extensions and trailers (headers after the body, which uvicorn keeps like
  the head's) pass :data:`MAX_HEAD_BYTES` closes the connection: a tenant's key made the server hold
  300 MB of trailers in half a second. The body itself is the app's to bound (``api.max_body_bytes``).

Both close the connection. Idle kept-alive connections between requests keep uvicorn's own timeout.

A request answered before its body arrived (401, 413, 404, ...: the app read none or part of it) has the
rest of its body read and dropped for at most :data:`LINGER_S`, then its connection closed (at once if the
body ends sooner). uvicorn read and dropped it for as long as it came, each byte putting off its
keep-alive timeout, so a client without a key held a connection for ever by sending a byte of a 1 GB body
now and then. Closing at once instead would reset a connection with unread bytes, which can discard the
answer before the client reads it (RFC 9112, 9.6: a server closes in stages). (With requests queued
behind it the body had ended.)
"""

from __future__ import annotations

import asyncio
import math
from typing import ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pinpipe.errors import ErrorCode

MAX_HEAD_BYTES = 64 * 1024
"""The request line and headers of one request, in bytes (nginx keeps 32 KiB, Node.js 16 KiB); and,
beyond the chunks' framing, the chunk extensions and trailers of a chunked body."""
LINGER_S = 2.0
"""How long the rest of a body answered early is read and dropped before the connection closes."""
CHUNK_FRAMING = 24
"""Bytes a chunk's size line and closing CRLF take at most without extensions (16 hex digits, 2 CRLFs)."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head (pass it as ``uvicorn.Config(http=...)``)."""

    head_timeout_s = 10.0
    _watches: ClassVar[dict[asyncio.AbstractEventLoop, _HeadWatch]] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._lingering: asyncio.TimerHandle | None = None
        self._heads = self._watch_of(self.loop)
        self._start_head()

    @classmethod
    def _watch_of(cls, loop: asyncio.AbstractEventLoop) -> _HeadWatch:
        """The watch of ``loop`` (one per event loop: tests run servers on several)."""
        watch = cls._watches.get(loop)
        if watch is None:
            for old in [old for old in cls._watches if old.is_closed()]:
                del cls._watches[old]
            watch = cls._watches[loop] = _HeadWatch(loop)
        watch.set_timeout(cls.head_timeout_s)
        return watch

    def _start_head(self) -> None:
        self._head_open = True
        self._head_bytes = 0
        self._chunks = 0
        heads = self._heads
        heads.waiting[self] = heads.ticks
        if heads.timer is None:
            heads.arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle  # a body arriving since an earlier chunk: count what of this one is not body
        in_body = cycle is not None and cycle.more_body and not self._head_open
        held = len(cycle.body) if in_body else 0
        super().data_received(data)
        if self._head_open:
            self._head_bytes += len(data)  # the chunk that began the head is not counted: bound + 1 chunk
            if self._head_bytes > MAX_HEAD_BYTES:
                self.refuse(
                    ErrorCode.HEAD_TOO_LARGE, f"request line and headers larger than {MAX_HEAD_BYTES} bytes"
                )
        elif in_body and self.cycle is cycle and cycle.more_body and not cycle.response_complete:
            self._head_bytes += len(data) - (len(cycle.body) - held)
            if self._head_bytes > MAX_HEAD_BYTES + CHUNK_FRAMING * self._chunks:
                self.refuse(
                    ErrorCode.HEAD_TOO_LARGE,
                    f"chunk extensions and trailers larger than {MAX_HEAD_BYTES} bytes",
                )

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0  # from here: the bytes of the body phase that are not body
        self._heads.waiting.pop(self, None)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if self.pipeline or not self.cycle.more_body or self.transport.is_closing():
            super().on_response_complete()
            return
        # answered before its body arrived: the rest is read and dropped (uvicorn drops a body arriving
        # after the answer) until it ends or LINGER_S passes, then the connection closes
        self.server_state.total_requests += 1
        self.flow.resume_reading()
        self._lingering = self.loop.call_later(LINGER_S, self.transport.close)

    def on_message_complete(self) -> None:
        if self._lingering is None:
            super().on_message_complete()
            return
        self._lingering.cancel()  # the body answered early has ended: nothing is left unread
        self._lingering = None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        self._head_open = False
        self._heads.waiting.pop(self, None)
        super().connection_lost(exc)

    def refuse(self, code: ErrorCode, message: str) -> None:
        """Answer ``code`` (unless a response of an earlier request is still being written) and close."""
        self._head_open = False
        self._heads.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            body = orjson.dumps({"error_code": int(code), "message": message})
            self.transport.write(
                STATUS_LINE[code // 100]
                + b"content-type: application/vnd.kafka.v2+json\r\n"
                + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                + body
            )
        self.transport.close()


class _HeadWatch:
    """The head deadlines of one event loop's connections, kept by one timer that counts ticks: a timer
    or a clock reading per request costs more than the rest of a small request's head. A head is refused
    between ``seconds`` and ``seconds + tick`` after it began."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[BoundedHttpTools, int] = {}
        """Each connection whose head is arriving, with the tick it began in."""
        self.ticks = 0
        self.timer: asyncio.TimerHandle | None = None
        self.set_timeout(BoundedHttpTools.head_timeout_s)

    def set_timeout(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(1.0, seconds / 8)
        self.allowed = math.ceil(seconds / self.tick)
        """Whole ticks a head may take: started in tick t, it is refused at the end of tick t + allowed."""

    def arm(self) -> None:
        self.timer = self.loop.call_later(self.tick, self._check)

    def _check(self) -> None:
        self.ticks += 1
        late = self.ticks - self.allowed
        for protocol in [p for p, began in self.waiting.items() if began < late]:
            protocol.refuse(
                ErrorCode.HEAD_TIMEOUT, f"request line and headers not received within {self.seconds:g} s"
            )
        self.timer = None
        if self.waiting:
            self.arm()
