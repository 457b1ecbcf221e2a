"""The ingestion API as one ASGI app: ``create_app(settings)``.

It plays the roles of API Gateway, the Kafka REST Proxy (v2: rest_proxy.py, v3 produce: rest_v3.py) and
Kinesis (the original proxy's ``/streams`` routes: kinesis.py; the AWS SDKs' wire protocol: kinesis_wire.py)
in front of the log, plus ``/healthz`` (the process answers), ``/readyz`` (the log answers and holds the
prefix's topics and streams), ``/metrics`` (Prometheus text; the caller's prefixes only) and
``/openapi.json``. Appends block, so they run in the threadpool, except v2 produce and PutRecord on a log
whose writer commits groups (embedded, Kafka): those are checked on the event loop (a hundred records at a
time, the other connections served in between; a body over 16 KiB that only Python's parser reads exactly
is parsed in the threadpool first) and appended in groups (:mod:`pinpipe.ingest.committer`: one committing
thread, or the embedded log's writer process), and the two v2 produce paths are answered before
the framework's middleware and routing (:mod:`pinpipe.ingest.fast_path`). Either way the answer is sent only
after the log accepted the records.

Every failure answers ``{"error_code": N, "message": ...}`` (Kinesis-style on ``/streams``): ApiError and
the framework's own errors (unknown route 40401, wrong method 40501 with an ``Allow`` header listing every
method of the path, invalid parameter 40002) through exception handlers, anything unexpected through
:class:`GuardMiddleware`, which logs the traceback and answers 500 with error_code 50001 instead of a bare
error page. There are no redirects: ``/topics/x/`` is an unknown route, not a 307 to ``/topics/x``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinpipe import __version__
from pinpipe.config import Settings
from pinpipe.errors import ErrorCode
from pinpipe.ingest.auth import KeyRing, RateLimiter
from pinpipe.ingest.body import Gate
from pinpipe.ingest.errors import KAFKA_MEDIA_TYPE, ApiError, error_response
from pinpipe.ingest.fast_path import ProduceFastPath
from pinpipe.ingest.kinesis import KinesisOps, kinesis_router
from pinpipe.ingest.kinesis_wire import kinesis_wire_router
from pinpipe.ingest.metrics import ApiMetrics
from pinpipe.ingest.models import ErrorBody, Status
from pinpipe.ingest.rest_proxy import Producer, rest_proxy_router
from pinpipe.ingest.rest_v3 import rest_v3_router
from pinpipe.ingest.service import IngestService
from pinpipe.keys import OPENAPI_SCHEMES, OPENAPI_SECURITY
from pinpipe.log import Log, open_settings_log

logger = logging.getLogger("pinpipe.api")


class IngestAPI(FastAPI):
    """The FastAPI app, with the single-record produce requests answered before the framework's layers
    (:mod:`pinpipe.ingest.fast_path`)."""

    fast_path: ProduceFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fast_path is not None:
            matched = self.fast_path.match(scope)
            if matched is not None:
                await self.fast_path.answer(scope, receive, send, *matched)
                return
        await super().__call__(scope, receive, send)


class GuardMiddleware:
    """Times every request for /metrics and turns an unexpected exception into a logged 500/50001."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
            logger.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if not started:
                error = ApiError(ErrorCode.INTERNAL, "internal error (logged by the server)")
                await error_response(scope["path"], error)(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(label, scope["method"], status, time.perf_counter() - start)


FRAMEWORK_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}
"""The framework's own errors in the REST proxy scheme (other statuses: status × 100)."""


def allowed_methods(request: Request) -> str:
    """Every method the API serves at this path, from its OpenAPI paths (Starlette's own 405 names only
    the first route that matched the path). GET implies HEAD, as Starlette serves both."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods.update(m.upper() for m in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request.url.path, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        code = FRAMEWORK_CODES.get(exc.status_code, exc.status_code * 100)
        return error_response(request.url.path, ApiError(code, str(exc.detail), headers))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        code = ErrorCode.INVALID if first.get("loc", ("body",))[0] == "body" else ErrorCode.INVALID_PARAMETER
        return error_response(request.url.path, ApiError(code, f"invalid {where}: {first.get('msg', '')}"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


def _document_security(app: FastAPI, secured: bool) -> None:
    """Publish the two ways of sending a key in /openapi.json (when keys are configured)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            if not secured:
                app.openapi_schema = schema
                return schema
            schema.setdefault("components", {})["securitySchemes"] = dict(OPENAPI_SCHEMES)
            for path, operations in schema["paths"].items():
                if path == "/" or path.startswith(("/topics", "/streams", "/metrics", "/v3", "/brokers")):
                    for operation in operations.values():
                        operation["security"] = list(OPENAPI_SECURITY)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, log: Log | None = None, stream_log: Log | None = None) -> FastAPI:
    """The API over ``log`` (topics) and ``stream_log`` (streams), opened from the settings unless given.
    Logs opened here are closed at shutdown; given ones belong to the caller."""
    owned: list[Log] = []
    if log is None:
        log = open_settings_log(settings)
        owned.append(log)
    if stream_log is None:
        if settings.stream_log_url == settings.log_url:
            stream_log = log
        else:
            stream_log = open_settings_log(settings, settings.stream_log_url)
            owned.append(stream_log)

    metrics = ApiMetrics()
    service = IngestService(settings, log, stream_log, metrics)
    keys = KeyRing(settings.api)
    gate = Gate(
        keys,
        RateLimiter(settings.api.rate_limit, settings.api.rate_burst),
        settings.api.max_body_bytes,
        settings.api.body_timeout_s,
        settings.api.max_pending_body_bytes,
        settings.api.max_pending_body_bytes_per_key,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keys.open:
            logger.warning("no API key configured: the API is OPEN to anyone who can reach it")
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.close)
        for owned_log in owned:
            owned_log.close()

    app = IngestAPI(
        title="pinpipe ingestion API",
        version=__version__,
        description="Kafka REST Proxy v2 and v3 and Kinesis produce endpoints in front of the pinpipe log.",
        lifespan=lifespan,
        redirect_slashes=False,
        # the API's own /metrics is its telemetry; FastAPI's OpenTelemetry hook, even with no provider
        # configured, looked the providers up on every request: a tenth of a single-record request's time
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.keys = keys
    _install_error_handlers(app)
    _document_security(app, secured=not keys.open)
    producer = Producer(service, gate, settings.api.max_records)
    app.fast_path = ProduceFastPath(producer, metrics)
    app.add_middleware(GuardMiddleware, metrics=metrics)
    app.include_router(rest_proxy_router(service, gate, producer))
    app.include_router(rest_v3_router(service, gate, settings.api.max_records))
    kinesis_ops = KinesisOps(service, settings.api.max_records)
    app.include_router(kinesis_router(service, gate, kinesis_ops))
    app.include_router(kinesis_wire_router(gate, kinesis_ops))

    @app.get("/healthz", tags=["operations"], response_model=Status)
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=Status, responses={503: {"model": Status}})
    async def readyz() -> Response:
        """The log answers and every topic and stream of the prefix exists (503 after one was deleted)."""
        problem = await run_in_threadpool(service.not_ready)
        if problem is None:
            return Response(b'{"status":"ready"}', media_type="application/json")
        return Response(orjson.dumps({"status": problem}), status_code=503, media_type="application/json")

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={
            401: {
                "description": "Keys are configured and none (or an unknown one) was sent",
                "content": {KAFKA_MEDIA_TYPE: {"schema": ErrorBody.model_json_schema()}},
            }
        },
    )
    async def prometheus(request: Request) -> Response:
        """Prometheus text exposition; with keys configured it needs one (any role; no rate limit) and
        shows the record counts of the caller's prefixes only, and the request counts and latencies
        (every tenant's requests) only to a key on every prefix."""
        principal = keys.authenticate(request.headers.get("x-api-key"), request.headers.get("authorization"))
        text = metrics.render(principal.may_use, requests=principal.prefixes is None)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
