"""Kinesis proxy routes, as the original API Gateway integration exposed them.

``GET /streams`` (ListStreams), ``GET|POST|DELETE /streams/{name}`` (Describe/Create/DeleteStream),
``PUT /streams/{name}/record`` (PutRecord) and ``PUT /streams/{name}/records`` (PutRecords, up to 500).
Shards are the log's partitions (``shardId-000000000002`` is partition 2) and sequence numbers its offsets,
as decimal strings. ``Data`` is the record as a JSON object (what the original integration accepted) or, as
in the Kinesis API itself, base64 of its bytes; for the pin/geo/user streams those bytes must be a JSON
object of the stream's schema. The stream is the one in the path; a ``StreamName`` in the body is ignored.

Errors are Kinesis-style ``{"__type": ..., "message": ...}`` (see errors.py). PutRecord with a record that
fails its schema is rejected (422, ValidationException); in PutRecords such records fail one by one
(``ErrorCode`` in their ``Records[]`` entry, ``FailedRecordCount``) and the others are written. A request that
is malformed as a whole (bad JSON or base64, missing ``PartitionKey``, more than 500 records) writes nothing.
``Idempotency-Key`` works as on the REST proxy routes (42207 for a key reused with another body).

CreateStream and DeleteStream need an admin key whose prefixes own the stream (auth.py), also on an API with
no key configured. A created stream is named ``streaming-<prefix>-<name>`` (the pattern of the path
parameter in /openapi.json), has at most ``api.max_shard_count`` shards, and the stream log holds at most
``api.max_streams`` streams.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pinpipe.access import PREFIX
from pinpipe.ingest.auth import require_admin
from pinpipe.ingest.body import Gate, error_docs
from pinpipe.ingest.errors import ApiError
from pinpipe.ingest.idempotency import RequestKey
from pinpipe.ingest.models import (
    BASE64,
    DescribeStreamResponse,
    KinesisErrorBody,
    ListStreamsResponse,
    PutRecordRequest,
    PutRecordResponse,
    PutRecordsResponse,
    create_stream_request_schema,
    put_records_request_schema,
)
from pinpipe.ingest.rest_proxy import IdempotencyKey
from pinpipe.ingest.service import IngestService, Item, Outcome, parse_json
from pinpipe.schema import kind_of_any

ACCEPTED = frozenset({"application/json", "application/x-amz-json-1.1", "application/x-amz-json-1.0"})
KINESIS_MAX_RECORDS = 500
NEW_STREAM = rf"^streaming-{PREFIX.pattern}-[A-Za-z0-9_.-]+$"
"""What CreateStream accepts: ``streaming-<prefix>-<name>``, 128 characters at most."""
NewStreamName = Annotated[
    str,
    Path(
        pattern=NEW_STREAM,
        max_length=128,
        description="streaming-<prefix>-<name>: a tenant prefix (a-z 0-9 _) and a name of A-Z a-z 0-9 _ . -",
    ),
]
BASE64_TEXT = re.compile(BASE64)
ERROR_TYPES = {42206: "InvalidArgumentException", 42202: "InvalidArgumentException"}


def shard_id(partition: int) -> str:
    return f"shardId-{partition:012d}"


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def check_stream_name_field(doc: Any) -> None:
    """``StreamName`` in a body is ignored (the path names the stream) but must still be a string."""
    if isinstance(doc, dict) and not isinstance(doc.get("StreamName", ""), str | None):
        raise ApiError(42206, "StreamName must be a string")


def parse_entry(entry: Any, where: str, kind_known: bool) -> Item:
    """One ``{"Data": ..., "PartitionKey": ...}`` as an Item; ApiError for a malformed entry."""
    if not isinstance(entry, dict) or "Data" not in entry:
        raise ApiError(42206, f"{where} must be an object with 'Data' and 'PartitionKey'")
    key = entry.get("PartitionKey")
    if not isinstance(key, str) or not 1 <= len(key) <= 256:
        raise ApiError(42206, f"{where}.PartitionKey must be a string of 1 to 256 characters")
    try:
        key_bytes = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(40001, f"{where}.PartitionKey is not valid Unicode") from None
    data = entry["Data"]
    if not isinstance(data, str):
        return Item(data, key_bytes)
    try:
        if not BASE64_TEXT.fullmatch(data):  # exactly the documented pattern (b64decode allows more)
            raise ValueError(data)
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(40001, f"{where}.Data is a string but not valid base64") from None
    if not kind_known:
        return Item(None, key_bytes, raw=raw)
    try:
        return Item(parse_json(raw), key_bytes)
    except ApiError:
        return Item(None, key_bytes, problem="Data is not a JSON object (base64 of UTF-8 JSON expected)")


def kinesis_router(service: IngestService, gate: Gate, max_records: int) -> APIRouter:
    router = APIRouter(tags=["Kinesis proxy"], default_response_class=JSONResponse)
    limit = min(KINESIS_MAX_RECORDS, max_records)
    max_shards = service.settings.api.max_shard_count
    errors = error_docs(KinesisErrorBody, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503)

    def put_sync(name: str, body: bytes, many: bool, idempotency_key: RequestKey | None) -> list[Outcome]:
        service.partitions("streams", name)
        doc = parse_json(body)
        check_stream_name_field(doc)
        known = kind_of_any(name) is not None
        if not many:
            items = [parse_entry(doc, "the body", known)]
        else:
            records = doc.get("Records") if isinstance(doc, dict) else None
            if not isinstance(records, list) or not records:
                raise ApiError(42206, "request body must be an object with a non-empty 'Records' array")
            if len(records) > limit:
                raise ApiError(
                    42201,
                    f"1 validation error detected: Value at 'records' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {limit}",
                )
            items = [parse_entry(r, f"Records[{i}]", known) for i, r in enumerate(records)]
        return service.produce("streams", name, items, idempotency_key)

    @router.get("/streams", summary="ListStreams", response_model=ListStreamsResponse, responses=errors)
    async def list_streams(request: Request) -> Response:
        principal = gate.caller(request)
        names = await run_in_threadpool(service.names, "streams")
        allowed = sorted(n for n in names if principal.may_use(n))
        return _json({"StreamNames": allowed, "HasMoreStreams": False})

    @router.get(
        "/streams/{name}", summary="DescribeStream", response_model=DescribeStreamResponse, responses=errors
    )
    async def describe_stream(name: str, request: Request) -> Response:
        gate.caller(request, name)
        count = await run_in_threadpool(service.partitions, "streams", name)
        shards = [
            {"ShardId": shard_id(p), "SequenceNumberRange": {"StartingSequenceNumber": "0"}}
            for p in range(count)
        ]
        description = {
            "StreamName": name,
            "StreamARN": f"arn:aws:kinesis:local:000000000000:stream/{name}",
            "StreamStatus": "ACTIVE",
            "Shards": shards,
            "HasMoreShards": False,
            "RetentionPeriodHours": 24,
        }
        return _json({"StreamDescription": description})

    @router.post(
        "/streams/{name}",
        summary="CreateStream",
        response_model=dict[str, Any],
        responses={**errors, **error_docs(KinesisErrorBody, 409)},
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": create_stream_request_schema(max_shards)}},
            }
        },
    )
    async def create_stream(name: NewStreamName, request: Request) -> Response:
        """Create a stream of ``ShardCount`` shards (default ``log.partitions``); needs an admin key."""
        require_admin(gate.caller(request, name))
        body = await gate.body(request, ACCEPTED, allow_missing=True)
        shards = min(service.settings.log.partitions, max_shards)
        if body.strip():
            doc = parse_json(body)
            if not isinstance(doc, dict):
                raise ApiError(42206, "request body must be a JSON object")
            check_stream_name_field(doc)
            count = doc.get("ShardCount")
            if isinstance(count, float) and count.is_integer():
                count = int(count)  # 2.0 is an integer in JSON Schema, as for a record's partition
            if count is not None:
                if type(count) is not int or not 1 <= count <= max_shards:
                    raise ApiError(
                        42206, f"ShardCount must be an integer from 1 to {max_shards} (api.max_shard_count)"
                    )
                shards = count
        if not await run_in_threadpool(service.create, "streams", name, shards):
            raise ApiError(40901, f"stream {name!r} already exists")
        return _json({})

    @router.delete("/streams/{name}", summary="DeleteStream", response_model=dict[str, Any], responses=errors)
    async def delete_stream(name: str, request: Request) -> Response:
        """Delete a stream and its records; needs an admin key."""
        require_admin(gate.caller(request, name))
        await run_in_threadpool(service.delete, "streams", name)
        return _json({})

    @router.put(
        "/streams/{name}/record",
        summary="PutRecord",
        response_model=PutRecordResponse,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PutRecordRequest.model_json_schema()}},
            }
        },
    )
    async def put_record(name: str, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        principal = gate.caller(request, name)
        body = await gate.body(request, ACCEPTED, allow_missing=True)
        request_key = RequestKey(principal.name, idempotency_key, body) if idempotency_key else None
        (outcome,) = await run_in_threadpool(put_sync, name, body, False, request_key)
        if outcome.error_code is not None:
            raise ApiError(outcome.error_code, outcome.error or "invalid record")
        return _json({"ShardId": shard_id(outcome.partition or 0), "SequenceNumber": str(outcome.offset)})

    @router.put(
        "/streams/{name}/records",
        summary="PutRecords",
        response_model=PutRecordsResponse,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": put_records_request_schema(limit)}},
            }
        },
    )
    async def put_records(name: str, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        principal = gate.caller(request, name)
        body = await gate.body(request, ACCEPTED, allow_missing=True)
        request_key = RequestKey(principal.name, idempotency_key, body) if idempotency_key else None
        outcomes = await run_in_threadpool(put_sync, name, body, True, request_key)
        results = [
            {"SequenceNumber": str(o.offset), "ShardId": shard_id(o.partition or 0)}
            if o.error_code is None
            else {"ErrorCode": ERROR_TYPES.get(o.error_code, "InternalFailure"), "ErrorMessage": o.error}
            for o in outcomes
        ]
        failed = sum(1 for o in outcomes if o.error_code is not None)
        return _json({"FailedRecordCount": failed, "Records": results})

    return router
