"""Connections that never finish their request hold neither memory nor a socket: before any key is checked,
a head (request line and headers) beyond ``MAX_HEAD_BYTES`` is refused (431) and one that has not arrived
within ``head_timeout_s`` is answered 408, both closing the connection; a request answered before its body
arrived (401, 413, ...) has the rest read for at most ``LINGER_S``, then its connection closed. Run against
a real uvicorn server: the limits are about sockets and memory, below the app."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pytest

from pinpipe.config import Settings
from pinpipe.connection import LINGER_S, MAX_HEAD_BYTES, BoundedHttpTools
from pinpipe.ingest import create_app
from pinpipe.log.memory import MemoryLog
from pinpipe.serve import background_server
from tests.security.test_limits import answer
from tests.unit.api_support import GEO, KAFKA_JSON, with_api

KEY = "tenant-a-key-0123456789"


@contextmanager
def keyed_server(settings: Settings, head_timeout_s: float = 30.0) -> Iterator[tuple[str, int]]:
    """(host, port) of an API with a key configured: the client below holds none."""
    app = create_app(with_api(settings, api_keys=[KEY]), log=MemoryLog(auto_create=False))
    with patch.object(BoundedHttpTools, "head_timeout_s", head_timeout_s), background_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def send_until_refused(sock: socket.socket, head: bytes, filler: bytes, limit: int) -> int:
    """Send ``head`` then ``filler`` until ``limit`` bytes went out or the server closed; bytes sent."""
    sock.sendall(head)
    sent = len(head)
    try:
        while sent < limit:
            sock.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def answer_while_trickling(sock: socket.socket, trickle: bytes, seconds: float = 10) -> tuple[bytes, bool]:
    """What the server sends within ``seconds`` while the client sends ``trickle`` every 0.2 s, and
    whether the server closed the connection."""
    started = time.monotonic()
    data, closed = b"", False
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds and not closed:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            try:
                if trickle:
                    sock.sendall(trickle)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            continue
        except ConnectionResetError:
            closed = True
            continue
        data += chunk
        closed = not chunk
    return data, closed


def one_answer(sock: socket.socket, timeout: float = 5) -> bytes:
    """One answer's bytes (a head and a JSON body), without waiting for the connection to close."""
    sock.settimeout(timeout)
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"}")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def to_close(sock: socket.socket, timeout: float = 10) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection, and whether it reset it (rather than an
    orderly close); TimeoutError if it stays open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return data, True
    return data, False


HEADS = {
    "many headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Filler: " + b"a" * 1000 + b"\r\n"),
    "one endless header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ", b"a" * 4096),
    "an endless path": (b"GET /topics/", b"a" * 4096),
}


@pytest.mark.parametrize("shape", HEADS)
def test_a_head_larger_than_the_cap_is_431_and_the_connection_closed(settings: Settings, shape: str) -> None:
    """The server once kept every header byte of an unauthenticated request (100 MiB held ~100 MB)."""
    head, filler = HEADS[shape]
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        sock.settimeout(10)
        sent = send_until_refused(sock, head, filler, limit=32 * MAX_HEAD_BYTES)
        data, closed = answer(sock, timeout=10)
        sock.close()
    assert data.startswith(b"HTTP/1.1 431 ") and b'"error_code":43101' in data, (sent, data[:200])
    assert closed


def test_a_head_within_the_cap_is_served(settings: Settings) -> None:
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 900) for i in range(MAX_HEAD_BYTES // 1000))
        body = b'{"records":[{"value":{"ind":1}}]}'
        request = (
            f"POST /topics/{GEO} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: {KAFKA_JSON['Content-Type']}\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        sock.sendall(request + filler + b"\r\n" + body)
        sock.settimeout(10)
        data = sock.recv(65536)
        sock.close()
    assert data.startswith(b"HTTP/1.1 200 "), data[:300]


@pytest.mark.parametrize("trickle", [b"", b"X-A: b\r\n"], ids=["idle", "trickling headers"])
def test_a_head_not_received_in_time_is_408_and_the_connection_closed(
    settings: Settings, trickle: bytes
) -> None:
    """An idle connection, or one sending a header line now and then, was kept open for ever: enough
    of them took every socket the server could accept."""
    with keyed_server(settings, head_timeout_s=0.5) as address:
        sock = socket.create_connection(address)
        started = time.monotonic()
        if trickle:
            sock.sendall(b"POST /topics/x HTTP/1.1\r\nHost: x\r\n")
        data, closed = answer_while_trickling(sock, trickle)
        sock.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b'"error_code":40802' in data, data[:200]
    assert closed and time.monotonic() - started < 5


def test_a_kept_alive_connection_gets_a_new_head_deadline_per_request(settings: Settings) -> None:
    """The deadline counts from the start of each request, not from the connection's."""
    with keyed_server(settings, head_timeout_s=0.5) as address:
        sock = socket.create_connection(address)
        sock.settimeout(5)
        answers = []
        for _ in range(4):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answers.append(sock.recv(65536))
            time.sleep(0.3)
        sock.close()
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers), answers


def keyless_produce_head(content_length: int, headers: bytes = b"") -> bytes:
    """The head of a v2 produce declaring ``content_length`` body bytes, with ``headers`` (no key unless
    they hold one), up to and including its blank line."""
    return (
        (
            f"POST /topics/{GEO} HTTP/1.1\r\nHost: x\r\nContent-Type: {KAFKA_JSON['Content-Type']}\r\n"
            f"Content-Length: {content_length}\r\n"
        ).encode()
        + headers
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [(b"", b"401"), (f"X-API-Key: {KEY}\r\n".encode(), b"413")],
    ids=["no key", "declared too large"],
)
def test_a_request_answered_before_its_body_arrived_has_its_connection_closed(
    settings: Settings, headers: bytes, status: bytes
) -> None:
    """The rest of a body the app never read was read and dropped for as long as it came: a client
    without a key held its connection for ever by sending a byte of a 1 GB body now and then."""
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        sock.sendall(keyless_produce_head(1_000_000_000, headers) + b"{")
        started = time.monotonic()
        data, closed = answer_while_trickling(sock, b" ")
        sock.close()
    assert data.startswith(b"HTTP/1.1 " + status + b" "), data[:200]
    assert closed and time.monotonic() - started < 5


def test_a_body_answered_early_is_read_for_a_while_before_the_connection_closes(settings: Settings) -> None:
    """Closing the connection right after an early answer, with the client's body still arriving, resets
    it (unread bytes), which can discard the answer before the client reads it: the rest is read and
    dropped for ``LINGER_S``, then the connection closes."""
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        sock.sendall(keyless_produce_head(1_000_000_000) + b"{")
        data = one_answer(sock)
        assert data.startswith(b"HTTP/1.1 401 "), data[:200]
        started, refused = time.monotonic(), None
        while refused is None and time.monotonic() - started < 5 * LINGER_S:
            try:
                sock.sendall(b" " * 65536)
            except (BrokenPipeError, ConnectionResetError):
                refused = time.monotonic() - started
            time.sleep(0.02)
        sock.close()
    assert refused is not None, "the connection stayed open"
    assert LINGER_S / 2 < refused < 3 * LINGER_S, refused


def test_a_body_answered_early_that_ends_closes_the_connection_cleanly(settings: Settings) -> None:
    """A body that ends within the linger is read to its end: the connection then closes with nothing
    unread (an orderly close, no reset), its answer intact."""
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        body = b'{"records":[{"value":{"ind":1}}]}' + b" " * (4 << 20)
        head = keyless_produce_head(len(body))
        try:
            sock.sendall(head + body)
            sent = True
        except (BrokenPipeError, ConnectionResetError):
            sent = False
        data, reset = to_close(sock)
        sock.close()
    assert sent, "the connection was reset while the body was being sent"
    assert data.startswith(b"HTTP/1.1 401 ") and not reset, (data[:200], reset)


def chunked_produce(chunks: list[bytes]) -> bytes:
    """A produce with the key, its body (one geo record) sent in ``chunks`` (chunked transfer coding);
    what follows the last chunk (trailers, the final CRLF) is the caller's."""
    head = (
        f"POST /topics/{GEO} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: {KAFKA_JSON['Content-Type']}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n"


BODY = b'{"records":[{"value":{"ind":1}}]}'
TRAILERS = {
    "many trailers": b"X-Trailer: " + b"a" * 1000 + b"\r\n",
    "one endless trailer": b"a" * 4096,
}


@pytest.mark.parametrize("shape", TRAILERS)
def test_trailers_larger_than_the_cap_close_the_connection(settings: Settings, shape: str) -> None:
    """Trailers (headers after a chunked body) were kept without limit: a tenant's key made the server
    hold 300 MB in half a second, which every tenant shares."""
    filler = TRAILERS[shape]
    head = chunked_produce([BODY]) + (b"X-Trailer: " if shape == "one endless trailer" else b"")
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        sent = send_until_refused(sock, head, filler, limit=64 * MAX_HEAD_BYTES)
        data, closed = answer(sock, timeout=10)
        sock.close()
    assert closed and sent < 64 * MAX_HEAD_BYTES, (sent, data[:200])
    assert b" 200 " not in data[:20]


def test_a_chunked_body_with_small_chunks_and_a_trailer_is_served(settings: Settings) -> None:
    with keyed_server(settings) as address:
        sock = socket.create_connection(address)
        chunks = [BODY[i : i + 1] for i in range(len(BODY))]
        sock.sendall(chunked_produce(chunks) + b"X-Checksum: abc\r\n\r\n")
        sock.settimeout(10)
        data = sock.recv(65536)
        sock.close()
    assert data.startswith(b"HTTP/1.1 200 "), data[:300]
