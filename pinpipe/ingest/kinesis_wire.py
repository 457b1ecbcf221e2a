"""The Kinesis wire protocol: ``POST /`` with ``X-Amz-Target: Kinesis_20131202.<Operation>``.

This is what the AWS SDKs and the AWS CLI send when given ``endpoint_url`` (``--endpoint-url``): a JSON
body (``application/x-amz-json-1.1``) naming the stream in ``StreamName``. The operations PutRecord,
PutRecords, ListStreams, DescribeStream, DescribeStreamSummary, ListShards, CreateStream and DeleteStream
run the same code as the ``/streams`` routes (:class:`~pinpipe.ingest.kinesis.KinesisOps`), with the same
checks, limits, tenant prefixes, admin role and ``Idempotency-Key``. Errors are AWS-shaped
(``{"__type": ..., "message": ...}``); another operation is ``UnknownOperationException`` (40003).

The SDK signs with SigV4: the API key is the access key id (``aws_access_key_id``), read from the
credential scope of the ``Authorization`` header; the signature itself is not verified (see auth.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from starlette.responses import JSONResponse, Response

from pinpipe.errors import ErrorCode
from pinpipe.ingest.auth import authorize, require_admin
from pinpipe.ingest.body import Gate, error_docs
from pinpipe.ingest.errors import KINESIS_WIRE_MEDIA_TYPE, ApiError
from pinpipe.ingest.idempotency import RequestKey, request_meaning
from pinpipe.ingest.kinesis import ACCEPTED, NEW_STREAM, KinesisOps
from pinpipe.ingest.models import KinesisErrorBody
from pinpipe.ingest.rest_proxy import IdempotencyKey
from pinpipe.ingest.service import parse_json
from pinpipe.keys import Principal

TARGET_PREFIX = "Kinesis_20131202."
AMZ_JSON = KINESIS_WIRE_MEDIA_TYPE
OPERATIONS = (
    "PutRecord",
    "PutRecords",
    "ListStreams",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListShards",
    "CreateStream",
    "DeleteStream",
)
NEW_STREAM_NAME = re.compile(NEW_STREAM)
AmzTarget = Annotated[
    str,
    Header(
        alias="X-Amz-Target",
        description=f"{TARGET_PREFIX}<Operation>: one of {', '.join(OPERATIONS)}",
        json_schema_extra={"enum": [TARGET_PREFIX + operation for operation in OPERATIONS]},
    ),
]


class AmzJSONResponse(JSONResponse):
    """JSON in the media type of AWS' JSON protocol (what the SDKs expect, errors included)."""

    media_type = AMZ_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def stream_of(doc: Any) -> str:
    """The ``StreamName`` an operation names (42206 when absent or not a string)."""
    name = doc.get("StreamName") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise ApiError(ErrorCode.INVALID, "StreamName must be a string of 1 to 128 characters")
    return name


def kinesis_wire_router(gate: Gate, ops: KinesisOps) -> APIRouter:
    router = APIRouter(tags=["Kinesis wire protocol"], default_response_class=AmzJSONResponse)

    def run(operation: str, body: bytes, principal: Principal, request_key: tuple[str, bytes] | None) -> Any:
        """Run an operation for an authenticated caller (in the threadpool: parsing a large body and
        appends block)."""
        doc = parse_json(body) if body.strip() else {}
        if not isinstance(doc, dict):
            raise ApiError(ErrorCode.INVALID, "request body must be a JSON object")
        if operation == "ListStreams":
            return ops.list_streams(principal)
        name = stream_of(doc)
        authorize(principal, name)
        meaning = request_meaning("PutRecords" if operation == "PutRecords" else "")
        key = None if request_key is None else RequestKey(principal.name, *request_key, meaning=meaning)
        if operation == "PutRecord":
            return ops.put_record(name, doc, key)
        if operation == "PutRecords":
            return ops.put_records(name, doc, key)
        if operation == "DescribeStream":
            return ops.describe(name)
        if operation == "DescribeStreamSummary":
            return ops.describe_summary(name)
        if operation == "ListShards":
            return {"Shards": ops.shards(name)}
        require_admin(principal)
        if operation == "CreateStream":
            if len(name) > 128 or not NEW_STREAM_NAME.fullmatch(name):
                raise ApiError(
                    ErrorCode.INVALID, f"StreamName must match {NEW_STREAM} (streaming-<prefix>-<name>)"
                )
            return ops.create(name, doc)
        return ops.delete(name)

    @router.post(
        "/",
        summary="Kinesis API (X-Amz-Target)",
        response_model=dict[str, Any],
        responses=error_docs(KinesisErrorBody, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {AMZ_JSON: {"schema": {"type": "object"}}},
            }
        },
    )
    async def kinesis_api(
        request: Request, target: AmzTarget, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """The operation ``X-Amz-Target`` names, with the body the AWS SDKs send (the Kinesis API)."""
        principal = gate.caller(request)
        operation = target.removeprefix(TARGET_PREFIX)
        if operation not in OPERATIONS:
            raise ApiError(
                ErrorCode.UNKNOWN_OPERATION,
                f"operation {operation!r} is not served: {', '.join(OPERATIONS)} are",
            )
        body = await gate.body(request, principal, ACCEPTED, allow_missing=True)
        request_key = None if idempotency_key is None else (idempotency_key, body)
        answer = await gate.work.run(principal, body, run, operation, body, principal, request_key)
        return AmzJSONResponse(answer)

    return router
