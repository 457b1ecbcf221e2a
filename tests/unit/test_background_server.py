"""serve.background_server: an app in a thread on a free port, stopped on exit or on a failed start."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from pinpipe.errors import ServiceError
from pinpipe.serve import background_server


def app_starting_in(seconds: float) -> Any:
    """An ASGI app whose lifespan start-up takes ``seconds``, answering 204 afterwards."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    time.sleep(seconds)  # a start-up that blocks, as opening a slow log does
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pinpipe-server"]


def test_serves_on_a_free_port_and_stops_on_exit() -> None:
    with background_server(app_starting_in(0)) as url:
        assert httpx.get(url).status_code == 204
        assert server_threads()
    assert not server_threads()


def test_a_start_up_past_the_timeout_is_an_error_and_leaves_no_server_running() -> None:
    starting = background_server(app_starting_in(1.0), timeout_s=0.3)
    with pytest.raises(ServiceError, match="could not start a local server"), starting:
        pass  # pragma: no cover - never reached
    deadline = time.monotonic() + 10
    while server_threads():  # its start-up ends after 1 s: then it stops instead of serving
        assert time.monotonic() < deadline, "the late server kept running"
        time.sleep(0.05)
