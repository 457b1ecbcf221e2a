"""HTTP errors of the ingestion API, in the two dialects it speaks.

The REST proxy routes answer ``{"error_code": N, "message": "..."}`` where N is the HTTP status × 100 plus a
subcode (the Confluent REST Proxy scheme); the Kinesis routes answer ``{"__type": "...", "message": "..."}``
like Kinesis does (with the same ``error_code`` added, so one client can read both). Every failure becomes
one of these bodies: no request ever gets a bare 500 page.

=====  ======  =====================================  ===============================================
code   status  Kinesis ``__type``                     when
=====  ======  =====================================  ===============================================
40001  400     SerializationException                 body is not valid JSON (or not UTF-8, or nested
                                                      deeper than 1,024 levels; a record value:
                                                      about 325; or an object names a member twice;
                                                      or an integer has more than 4,300 digits)
40002  400     ValidationException                    a path or query parameter is invalid
40003  400     UnknownOperationException              ``X-Amz-Target`` names an operation not served
40101  401     MissingAuthenticationTokenException    no API key, or an unknown one
40301  403     AccessDeniedException                  the key's prefixes do not own this topic/stream
40302  403     AccessDeniedException                  creating/deleting a stream needs an admin key
40401  404     ResourceNotFoundException              unknown topic or stream, or unknown route
40402  404     ResourceNotFoundException              the topic has no such partition (path)
40501  405     ValidationException                    method not allowed; ``Allow`` lists the path's
                                                      methods
40801  408     ValidationException                    body not received within ``api.body_timeout_s``;
                                                      the connection is closed
40802  408     ValidationException                    request line and headers not received within
                                                      10 s; the connection is closed (answered before
                                                      any route: always the REST proxy body)
40901  409     ResourceInUseException                 the stream to create exists already
                                                      (on Kafka: or one differing by . for _)
40902  409     LimitExceededException                 the stream log holds ``api.max_streams`` streams,
                                                      or the name's prefix ``api.max_streams_per_prefix``
41301  413     ValidationException                    body larger than ``api.max_body_bytes``
41501  415     ValidationException                    content type not accepted
                                                      (or a charset but UTF-8, or a
                                                      Content-Encoding but identity)
42201  422     ValidationException                    more records than ``api.max_records`` (500)
42202  (rec)   InvalidArgumentException               a record's explicit partition does not exist
42206  422     ValidationException                    request shape wrong (no ``records``, ...), or,
                                                      per record, a value that fails its schema,
                                                      lacks its identifying field, is not JSON
                                                      (binary formats), or that no table can hold
42207  422     InvalidArgumentException               ``Idempotency-Key`` already used (by this API
                                                      key) for another body or record count;
                                                      nothing stored
42901  429     LimitExceededException                 rate limit of the key; ``Retry-After`` is set
43101  431     LimitExceededException                 request line and headers larger than 64 KiB;
                                                      the connection is closed (answered before any
                                                      route, :mod:`pinpipe.connection`: REST proxy body)
50001  500     InternalFailure                        a bug (logged with its traceback)
50002  500     InternalFailure                        the log refused the append
50003  503     ServiceUnavailable                     the log is unreachable now: retry (``Retry-After``)
50004  503     ServiceUnavailable                     unfinished request bodies hold
                                                      ``api.max_pending_body_bytes`` already, or those of
                                                      the key its ``..._per_key`` share: retry
                                                      (``Retry-After``; the connection is closed)
=====  ======  =====================================  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

from pinpipe.errors import ErrorCode

KAFKA_MEDIA_TYPE = "application/vnd.kafka.v2+json"
"""What the REST proxy routes answer with (as the Confluent REST Proxy v2 does)."""

KINESIS_WIRE_MEDIA_TYPE = "application/x-amz-json-1.1"
"""What the Kinesis wire protocol (``POST /``) answers with, errors included."""

SERVICE_UNAVAILABLE = frozenset({ErrorCode.LOG_UNAVAILABLE, ErrorCode.BODIES_PENDING})
"""Answered with HTTP 503, which tells proxies and clients to come back (with Retry-After)."""

KINESIS_TYPES: dict[int, str] = {
    ErrorCode.MALFORMED_BODY: "SerializationException",
    ErrorCode.INVALID_PARAMETER: "ValidationException",
    ErrorCode.UNKNOWN_OPERATION: "UnknownOperationException",
    ErrorCode.UNAUTHENTICATED: "MissingAuthenticationTokenException",
    ErrorCode.NAME_NOT_OWNED: "AccessDeniedException",
    ErrorCode.ADMIN_REQUIRED: "AccessDeniedException",
    ErrorCode.NOT_FOUND: "ResourceNotFoundException",
    ErrorCode.PARTITION_NOT_FOUND: "ResourceNotFoundException",
    ErrorCode.METHOD_NOT_ALLOWED: "ValidationException",
    ErrorCode.BODY_TIMEOUT: "ValidationException",
    ErrorCode.HEAD_TIMEOUT: "ValidationException",
    ErrorCode.STREAM_EXISTS: "ResourceInUseException",
    ErrorCode.TOO_MANY_STREAMS: "LimitExceededException",
    ErrorCode.BODY_TOO_LARGE: "ValidationException",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "ValidationException",
    ErrorCode.TOO_MANY_RECORDS: "ValidationException",
    ErrorCode.RECORD_PARTITION_NOT_FOUND: "InvalidArgumentException",
    ErrorCode.INVALID: "ValidationException",
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "InvalidArgumentException",
    ErrorCode.RATE_LIMITED: "LimitExceededException",
    ErrorCode.HEAD_TOO_LARGE: "LimitExceededException",
    ErrorCode.INTERNAL: "InternalFailure",
    ErrorCode.LOG_FAILED: "InternalFailure",
    ErrorCode.LOG_UNAVAILABLE: "ServiceUnavailable",
    ErrorCode.BODIES_PENDING: "ServiceUnavailable",
}


class KafkaJSONResponse(JSONResponse):
    """A JSON response in the REST proxy's media type (its body is built by the route, with orjson)."""

    media_type = KAFKA_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else orjson.dumps(content)


class ApiError(Exception):
    """An error answered to the client: ``error_code // 100`` is the HTTP status."""

    def __init__(self, error_code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        if self.error_code in SERVICE_UNAVAILABLE:
            return 503
        return self.error_code // 100 if self.error_code >= 10000 else self.error_code


def is_kinesis_path(path: str) -> bool:
    """The Kinesis routes: ``/streams...`` and the wire protocol's ``/``."""
    return path in ("/", "/streams") or path.startswith("/streams/")


def error_response(path: str, error: ApiError) -> Response:
    """The error body in the dialect of the route that failed."""
    if is_kinesis_path(path):
        kinesis_type = KINESIS_TYPES.get(error.error_code, "ValidationException")
        body = {"__type": kinesis_type, "message": error.message, "error_code": error.error_code}
        media_type = KINESIS_WIRE_MEDIA_TYPE if path == "/" else "application/json"
    else:
        body = {"error_code": error.error_code, "message": error.message}
        media_type = KAFKA_MEDIA_TYPE
    return Response(
        orjson.dumps(body), status_code=error.status, headers=error.headers, media_type=media_type
    )
