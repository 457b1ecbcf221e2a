"""Sending one record to the ingestion API, with retries that never duplicate.

Batch records go to the Kafka REST Proxy v2 route (``POST /topics/<prefix>.<kind>``), stream records to the
API-Gateway Kinesis route (``PUT /streams/streaming-<prefix>-<kind>/record``), as the original emulator did.
Every request carries an ``Idempotency-Key``; a retry reuses it, so the API returns the original offset
instead of appending twice. 429 (honouring Retry-After), 5xx, a retriable per-record error code and
connection errors are retried with capped exponential backoff and full jitter; any other 4xx is an error
at once.

Several API replicas (``api`` = ``URL1,URL2,...``, one API on one log): records are spread round-robin, and
a retry goes to the next replica, at once after a connection error (a replica that is down costs one
refused connection, not a backoff); the Idempotency-Key makes a retry at another replica safe.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
import orjson

from pinpipe.errors import ConfigError, ErrorCode
from pinpipe.schema import Kind, stream_name, topic_name

Target = Literal["batch", "stream"]
KAFKA_JSON = "application/vnd.kafka.json.v2+json"
RETRIABLE_STATUS = frozenset({408, 425, 429})
RETRIABLE_CODES = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.LOG_FAILED, ErrorCode.LOG_UNAVAILABLE})
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class SendResult:
    """What became of one record: ``error`` is None when the API acknowledged it."""

    retries: int
    error: str | None = None
    """A short description of the kind of failure (the same text for the same kind)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 0.1
    max_backoff_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor."""
        backoff = rng.uniform(0, min(self.max_backoff_s, self.base_s * 2**attempt))
        if retry_after is not None:
            return max(min(retry_after, MAX_RETRY_AFTER_S), backoff)
        return backoff


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def check_api_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else a ConfigError at once (not retries of a request
    that can never be sent): ``127.0.0.1:8000`` lacks its ``http://``."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        return url
    hint = f"http://{url}" if "://" not in url else "http://127.0.0.1:8000"
    raise ConfigError(f"--api {url!r} is not an http:// or https:// URL with a host: give e.g. {hint}")


def api_urls(api: str) -> list[str]:
    """The API replicas of a comma-separated ``--api``, each checked by :func:`check_api_url`."""
    return [check_api_url(url) for url in (part.strip() for part in api.split(",")) if url] or [
        check_api_url(api)
    ]


def _server_message(response: httpx.Response) -> str | None:
    """The ``message`` of an error body (REST proxy and Kinesis routes) or of the first failed offset."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] or None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("message"), str):
        return str(body["message"])
    for offset in body.get("offsets") or ():
        if isinstance(offset, dict) and offset.get("error"):
            return str(offset["error"])
    return None


def _error_code(response: httpx.Response) -> int | None:
    """The REST-proxy ``error_code`` of an error body or of the first failed offset, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error_code"), int):
        return int(body["error_code"])
    for offset in body.get("offsets") or ():
        if isinstance(offset, dict) and offset.get("error_code") is not None:
            return int(offset["error_code"])
    return None


class HttpApiSender:
    """Sends records over one keep-alive httpx Client."""

    def __init__(
        self,
        api: str,
        prefix: str,
        *,
        api_key: str | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._bases = [url.rstrip("/") for url in api_urls(api)]
        self._turn = itertools.count()  # next() is atomic: safe when records are sent from threads
        self._client = httpx.Client(headers=headers, timeout=timeout_s, transport=transport)
        self._prefix = prefix
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _request(
        self, target: Target, kind: Kind, record: dict[str, Any], key: str, base: str
    ) -> httpx.Request:
        if target == "batch":
            body = orjson.dumps({"records": [{"value": record}]})
            return self._client.build_request(
                "POST",
                f"{base}/topics/{topic_name(self._prefix, kind)}",
                content=body,
                headers={"Content-Type": KAFKA_JSON, "Accept": "application/json", "Idempotency-Key": key},
            )
        name = stream_name(self._prefix, kind)
        partition_key = str(record.get("ind", record.get("index", "")))
        body = orjson.dumps({"StreamName": name, "Data": record, "PartitionKey": partition_key})
        return self._client.build_request(
            "PUT",
            f"{base}/streams/{name}/record",
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )

    def send(self, target: Target, kind: Kind, record: dict[str, Any], key: str) -> SendResult:
        """Send one record until acknowledged, a permanent error, or the retry cap."""
        replica = next(self._turn) % len(self._bases)
        attempt = 0
        while True:
            retry_after: float | None = None
            failover = False
            request = self._request(target, kind, record, key, self._bases[replica])
            where = f"{target} {kind}: {request.method} {request.url}"
            try:
                response = self._client.send(request)
                response.read()
            except httpx.TransportError as exc:
                detail = f": {exc}" if str(exc) else ""
                error = f"{where}: connection error ({type(exc).__name__}{detail})"
                failover = len(self._bases) > 1 and (attempt + 1) % len(self._bases) != 0
            else:
                status = response.status_code
                code = _error_code(response)
                if status < 300 and code is None:
                    return SendResult(retries=attempt)
                shown = f"HTTP {status}" + (f" error_code {code}" if code is not None else "")
                message = _server_message(response)
                error = f"{where}: {shown}" + (f": {message}" if message else "")
                retriable = status >= 500 or status in RETRIABLE_STATUS or code in RETRIABLE_CODES
                if not retriable:
                    return SendResult(retries=attempt, error=error)
                retry_after = _retry_after(response)
            if attempt >= self._policy.max_retries:
                return SendResult(retries=attempt, error=f"{error} (gave up after {attempt} retries)")
            if not failover:  # each replica refused the connection once in a row: back off
                self._sleep(self._policy.delay(attempt, self._rng, retry_after))
            replica = (replica + 1) % len(self._bases)
            attempt += 1

    def close(self) -> None:
        self._client.close()
