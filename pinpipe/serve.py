"""Serving an ASGI app from a background thread on a free local port (the demo, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from pinpipe.errors import ServiceError


@contextlib.contextmanager
def background_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0
) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread; yield its base URL; stop it (gracefully) on exit.

    ``port=0`` lets the OS pick a free port, read back from the bound socket, so there is no race
    between choosing a port and binding it.
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pinpipe-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServiceError(f"could not start a local server on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
