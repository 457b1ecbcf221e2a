"""Serving ASGI apps: the listening socket of ``api serve`` and ``dashboard`` (a busy port is one clean
error line), the uvicorn configuration every server uses (request heads bounded: :mod:`pinpipe.connection`),
and an app in a background thread on a free local port (the demo, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from pinpipe.errors import ConfigError, ServiceError


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so the URL printed is the real one (``--port 0`` picks a free
    port), a restarted server can take the same port at once (SO_REUSEADDR), and a busy port is a
    ConfigError (one line, exit status 1) rather than uvicorn's logged traceback and exit status 3."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # inherited by accepted connections: without it a response written in two parts waits ~40 ms for the
    # client's delayed ACK (Nagle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bound_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def server_config(app: Any, **options: Any) -> Any:
    """The ``uvicorn.Config`` of ``app``: uvicorn's ``options``, with connections whose request head is
    bounded in size and time (:class:`~pinpipe.connection.BoundedHttpTools`)."""
    import uvicorn

    from pinpipe.connection import BoundedHttpTools

    return uvicorn.Config(app, http=BoundedHttpTools, log_level="warning", **options)


@contextlib.contextmanager
def background_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0
) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread; yield its base URL; stop it (gracefully) on exit.

    ``port=0`` lets the OS pick a free port, read back from the bound socket, so there is no race
    between choosing a port and binding it.
    """
    import uvicorn

    server = uvicorn.Server(server_config(app, host=host, port=port, lifespan="on"))
    thread = threading.Thread(target=server.run, name="pinpipe-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True  # a start-up that finishes late stops at once instead of serving
            thread.join(timeout=timeout_s)  # a bounded wait: the thread ends by itself after a late start
            raise ServiceError(f"could not start a local server on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
