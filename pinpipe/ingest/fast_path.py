"""The single-record produce routes without the framework's per-request machinery.

``POST /topics/{topic}`` and ``POST /topics/{topic}/partitions/{partition}`` are most of the API's
traffic when clients send one record per request. Through FastAPI, each such request pays for routing over
every route, solving the parameters (the ``Idempotency-Key`` header, the partition) and several wrapping
layers, which together cost more than the produce itself. :class:`ProduceFastPath` sits in front of the
routes: it recognises these two paths, reads the same parameters itself and answers through the same
:class:`~pinpipe.ingest.rest_proxy.Producer` as the routes, so every check (key, tenant prefix, rate limit,
content type, body limits, idempotency, schema) is the same code. A request it cannot answer exactly as
the route would (a partition or header the route's validation would refuse, a mounted root path) goes on
to the routes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from pinpipe.ingest.errors import ApiError, error_response
from pinpipe.ingest.models import MAX_PARTITION
from pinpipe.ingest.rest_proxy import MAX_IDEMPOTENCY_KEY, Producer


@dataclass(frozen=True)
class Route:
    """What :class:`pinpipe.ingest.app.GuardMiddleware` labels the request's metrics with."""

    path: str


TOPIC = Route("/topics/{topic}")
PARTITION = Route("/topics/{topic}/partitions/{partition}")


class ProduceFastPath:
    """ASGI middleware answering the two produce paths itself; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, producer: Producer) -> None:
        self.app = app
        self.producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            parts = scope["path"].split("/")
            if len(parts) in (3, 5) and parts[0] == "" and parts[1] == "topics" and parts[2]:
                partition = _partition(parts) if len(parts) == 5 else None
                if len(parts) == 3 or partition is not None:
                    request = Request(scope, receive)
                    key = request.headers.get("idempotency-key")
                    if key is None or len(key) <= MAX_IDEMPOTENCY_KEY:
                        scope["route"] = TOPIC if partition is None else PARTITION
                        try:
                            response = await self.producer(parts[2], request, key, partition)
                        except ApiError as error:
                            response = error_response(scope["path"], error)
                        await response(scope, receive, send)
                        return
        await self.app(scope, receive, send)


def _partition(parts: list[str]) -> int | None:
    """The partition of ``/topics/{topic}/partitions/{partition}`` when the route would accept it as it
    is (plain decimal digits in range), else None: the route then answers (or refuses) it."""
    text = parts[4]
    if parts[3] != "partitions" or not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    partition = int(text)
    return partition if partition <= MAX_PARTITION else None
