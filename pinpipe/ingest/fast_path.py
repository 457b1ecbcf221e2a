"""The v2 produce routes (one record or many) without the framework's per-request machinery.

``POST /topics/{topic}`` and ``POST /topics/{topic}/partitions/{partition}`` are most of the API's
traffic, above all when clients send one record per request. Through FastAPI, each such request pays for its
middleware layers, routing over every route, solving the parameters (the ``Idempotency-Key`` header, the
partition) and a request and a response object, which together cost more than the produce itself.
:class:`ProduceFastPath` is consulted before all of that (by :class:`pinpipe.ingest.app.IngestAPI`, the
outermost ASGI callable): it recognises these two paths, reads the same parameters from the ASGI scope
itself, and answers through the same :class:`~pinpipe.ingest.rest_proxy.Producer` as the routes, so every
check (key, tenant prefix, rate limit, content type, body limits, idempotency, schema) is the same code.
It also does the outer middleware's work for these requests: the request metrics, and a logged 500 for an
unexpected error. A request it cannot answer exactly as the route would (a partition or header the
route's validation would refuse, a mounted root path) goes on to the routes unchanged.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from pinpipe.errors import ErrorCode
from pinpipe.ingest.body import Sent
from pinpipe.ingest.errors import KAFKA_MEDIA_TYPE, ApiError, error_response
from pinpipe.ingest.metrics import ApiMetrics
from pinpipe.ingest.models import MAX_PARTITION
from pinpipe.ingest.rest_proxy import MAX_IDEMPOTENCY_KEY, Producer

logger = logging.getLogger("pinpipe.api")

TOPIC = "/topics/{topic}"
PARTITION = "/topics/{topic}/partitions/{partition}"
"""The route templates the request metrics are labelled with, as for the routes."""

_CONTENT_TYPE = (b"content-type", KAFKA_MEDIA_TYPE.encode())


class ProduceFastPath:
    """Answers the two produce paths; :meth:`match` says whether a request is one of them."""

    def __init__(self, producer: Producer, metrics: ApiMetrics) -> None:
        self.producer = producer
        self.metrics = metrics

    def match(self, scope: Scope) -> tuple[str, int | None, Sent] | None:
        """(topic, partition or None, headers) of a request this answers as the route would, else None."""
        if scope["method"] != "POST" or scope.get("root_path"):
            return None
        parts = scope["path"].split("/")
        if len(parts) not in (3, 5) or parts[0] != "" or parts[1] != "topics" or not parts[2]:
            return None
        partition = None
        if len(parts) == 5 and (partition := _partition(parts)) is None:
            return None
        sent = Sent.of(scope["headers"])
        key = sent.idempotency_key
        if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
            return None
        return parts[2], partition, sent

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, topic: str, partition: int | None, sent: Sent
    ) -> None:
        start = time.perf_counter()
        status = 500
        started = False
        try:
            try:
                body = await self.producer.produce(topic, sent, receive, partition)
            except ApiError as error:
                status = error.status
                started = True
                await error_response(scope["path"], error)(scope, receive, send)
                return
            status = 200
            started = True
            length = (b"content-length", b"%d" % len(body))
            await send({"type": "http.response.start", "status": 200, "headers": [length, _CONTENT_TYPE]})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            logger.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if not started:
                status = 500
                internal = ApiError(ErrorCode.INTERNAL, "internal error (logged by the server)")
                await error_response(scope["path"], internal)(scope, receive, send)
        finally:
            route = TOPIC if partition is None else PARTITION
            self.metrics.observe_request(route, "POST", status, time.perf_counter() - start)


def _partition(parts: list[str]) -> int | None:
    """The partition of ``/topics/{topic}/partitions/{partition}`` when the route would accept it as it
    is (plain decimal digits in range), else None: the route then answers (or refuses) it."""
    text = parts[4]
    if parts[3] != "partitions" or not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    partition = int(text)
    return partition if partition <= MAX_PARTITION else None
