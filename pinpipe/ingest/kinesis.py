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
``api.max_streams`` streams, at most ``api.max_streams_per_prefix`` of them owned by one prefix.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pinpipe.access import PREFIX
from pinpipe.errors import ErrorCode
from pinpipe.exact_json import NeedsPythonParse
from pinpipe.ingest.auth import require_admin
from pinpipe.ingest.body import Gate, LargeBodyWork, error_docs, parsed_on_loop
from pinpipe.ingest.errors import ApiError
from pinpipe.ingest.formats import bytes_item, decode_base64
from pinpipe.ingest.idempotency import RequestKey, request_meaning
from pinpipe.ingest.models import (
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
from pinpipe.keys import Principal
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
ERROR_TYPES: dict[int, str] = {
    ErrorCode.INVALID: "InvalidArgumentException",
    ErrorCode.RECORD_PARTITION_NOT_FOUND: "InvalidArgumentException",
}


def shard_id(partition: int) -> str:
    return f"shardId-{partition:012d}"


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def check_stream_name_field(doc: Any) -> None:
    """``StreamName`` in a body is ignored (the path names the stream) but must still be a string."""
    if isinstance(doc, dict) and not isinstance(doc.get("StreamName", ""), str | None):
        raise ApiError(ErrorCode.INVALID, "StreamName must be a string")


def parse_entry(entry: Any, where: str, kind_known: bool) -> Item:
    """One ``{"Data": ..., "PartitionKey": ...}`` as an Item; ApiError for a malformed entry."""
    if not isinstance(entry, dict) or "Data" not in entry:
        raise ApiError(ErrorCode.INVALID, f"{where} must be an object with 'Data' and 'PartitionKey'")
    key = entry.get("PartitionKey")
    if not isinstance(key, str) or not 1 <= len(key) <= 256:
        raise ApiError(ErrorCode.INVALID, f"{where}.PartitionKey must be a string of 1 to 256 characters")
    try:
        key_bytes = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(ErrorCode.MALFORMED_BODY, f"{where}.PartitionKey is not valid Unicode") from None
    data = entry["Data"]
    if not isinstance(data, str):
        return Item(data, key_bytes)
    try:
        raw = decode_base64(data)
    except ValueError:
        raise ApiError(ErrorCode.MALFORMED_BODY, f"{where}.Data is a string but not valid base64") from None
    return bytes_item(raw, key_bytes, kind_known, "Data is not a JSON object (base64 of UTF-8 JSON expected)")


def hash_key_range(partition: int, count: int) -> dict[str, str]:
    """The shard's slice of Kinesis' 128-bit hash key space (even slices, as a new stream has)."""
    span = 2**128 // count
    end = 2**128 - 1 if partition == count - 1 else (partition + 1) * span - 1
    return {"StartingHashKey": str(partition * span), "EndingHashKey": str(end)}


def record_answer(outcome: Outcome) -> dict[str, Any]:
    """PutRecord's answer, or its record's error."""
    if outcome.error_code is not None:
        raise ApiError(outcome.error_code, outcome.error or "invalid record")
    return {"ShardId": shard_id(outcome.partition or 0), "SequenceNumber": str(outcome.offset)}


class KinesisOps:
    """The Kinesis operations on the stream log, answering Kinesis' response shapes. Shared by the
    ``/streams`` routes and the wire protocol (``POST /`` with ``X-Amz-Target``); callers authenticate."""

    def __init__(self, service: IngestService, max_records: int) -> None:
        self.service = service
        self.limit = min(KINESIS_MAX_RECORDS, max_records)
        self.max_shards = service.settings.api.max_shard_count

    def put(self, name: str, doc: Any, many: bool, idempotency_key: RequestKey | None) -> list[Outcome]:
        return self.service.produce("streams", name, self.items(name, doc, many), idempotency_key)

    def items(self, name: str, doc: Any, many: bool) -> list[Item]:
        self.service.partitions("streams", name)
        check_stream_name_field(doc)
        known = kind_of_any(name) is not None
        if not many:
            items = [parse_entry(doc, "the body", known)]
        else:
            records = doc.get("Records") if isinstance(doc, dict) else None
            if not isinstance(records, list) or not records:
                raise ApiError(
                    ErrorCode.INVALID, "request body must be an object with a non-empty 'Records' array"
                )
            if len(records) > self.limit:
                raise ApiError(
                    ErrorCode.TOO_MANY_RECORDS,
                    f"1 validation error detected: Value at 'records' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {self.limit}",
                )
            items = [parse_entry(r, f"Records[{i}]", known) for i, r in enumerate(records)]
        return items

    def put_record(self, name: str, doc: Any, idempotency_key: RequestKey | None) -> dict[str, Any]:
        (outcome,) = self.put(name, doc, False, idempotency_key)
        return record_answer(outcome)

    async def put_record_inline(
        self,
        name: str,
        body: bytes,
        idempotency_key: RequestKey | None,
        work: LargeBodyWork,
        who: Principal,
    ) -> Response:
        """PutRecord from the event loop (see :meth:`IngestService.produce_inline`); a body only Python's
        parser reads exactly goes whole to the threadpool, in turn with ``who``'s other large bodies."""
        self.service.partitions("streams", name)  # 40401 before the body's 40001
        try:
            doc = parsed_on_loop(body, parse_json, body)
        except NeedsPythonParse:  # a slow body: parsed, checked and appended in the threadpool
            return _json(await work.run(who, body, put_parsed, self, False, name, body, idempotency_key))
        items = self.items(name, doc, False)
        (outcome,) = await self.service.produce_inline("streams", name, items, idempotency_key)
        return _json(record_answer(outcome))

    def put_records(self, name: str, doc: Any, idempotency_key: RequestKey | None) -> dict[str, Any]:
        outcomes = self.put(name, doc, True, idempotency_key)
        results = [
            {"SequenceNumber": str(o.offset), "ShardId": shard_id(o.partition or 0)}
            if o.error_code is None
            else {"ErrorCode": ERROR_TYPES.get(o.error_code, "InternalFailure"), "ErrorMessage": o.error}
            for o in outcomes
        ]
        failed = sum(1 for o in outcomes if o.error_code is not None)
        return {"FailedRecordCount": failed, "Records": results}

    def list_streams(self, principal: Principal) -> dict[str, Any]:
        names = self.service.names("streams")
        allowed = sorted(n for n in names if principal.may_use(n))
        return {"StreamNames": allowed, "HasMoreStreams": False}

    def shards(self, name: str) -> list[dict[str, Any]]:
        count = self.service.partitions("streams", name)
        return [
            {
                "ShardId": shard_id(p),
                "HashKeyRange": hash_key_range(p, count),
                "SequenceNumberRange": {"StartingSequenceNumber": "0"},
            }
            for p in range(count)
        ]

    def describe(self, name: str) -> dict[str, Any]:
        description = {
            "StreamName": name,
            "StreamARN": stream_arn(name),
            "StreamStatus": "ACTIVE",
            "Shards": self.shards(name),
            "HasMoreShards": False,
            "RetentionPeriodHours": 24,
            "EnhancedMonitoring": [],
        }
        return {"StreamDescription": description}

    def describe_summary(self, name: str) -> dict[str, Any]:
        summary = {
            "StreamName": name,
            "StreamARN": stream_arn(name),
            "StreamStatus": "ACTIVE",
            "RetentionPeriodHours": 24,
            "EnhancedMonitoring": [],
            "OpenShardCount": self.service.partitions("streams", name),
            "ConsumerCount": 0,
        }
        return {"StreamDescriptionSummary": summary}

    def create(self, name: str, doc: Any) -> dict[str, Any]:
        """Create a stream of ``ShardCount`` shards (default ``log.partitions``)."""
        shards = min(self.service.settings.log.partitions, self.max_shards)
        if doc is not None:
            if not isinstance(doc, dict):
                raise ApiError(ErrorCode.INVALID, "request body must be a JSON object")
            check_stream_name_field(doc)
            count = doc.get("ShardCount")
            if isinstance(count, float) and count.is_integer():
                count = int(count)  # 2.0 is an integer in JSON Schema, as for a record's partition
            if count is not None:
                if type(count) is not int or not 1 <= count <= self.max_shards:
                    raise ApiError(
                        ErrorCode.INVALID,
                        f"ShardCount must be an integer from 1 to {self.max_shards} (api.max_shard_count)",
                    )
                shards = count
        if not self.service.create("streams", name, shards):
            raise ApiError(ErrorCode.STREAM_EXISTS, f"stream {name!r} already exists")
        return {}

    def create_parsed(self, name: str, body: bytes) -> dict[str, Any]:
        """:meth:`create` from a raw body (none: the defaults)."""
        return self.create(name, parse_json(body) if body.strip() else None)

    def delete(self, name: str) -> dict[str, Any]:
        self.service.delete("streams", name)
        return {}


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:local:000000000000:stream/{name}"


def kinesis_router(service: IngestService, gate: Gate, ops: KinesisOps) -> APIRouter:
    router = APIRouter(tags=["Kinesis proxy"], default_response_class=JSONResponse)
    limit, max_shards = ops.limit, ops.max_shards
    errors = error_docs(KinesisErrorBody, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503)

    @router.get("/streams", summary="ListStreams", response_model=ListStreamsResponse, responses=errors)
    async def list_streams(request: Request) -> Response:
        principal = gate.caller(request)
        return _json(await run_in_threadpool(ops.list_streams, principal))

    @router.get(
        "/streams/{name}", summary="DescribeStream", response_model=DescribeStreamResponse, responses=errors
    )
    async def describe_stream(name: str, request: Request) -> Response:
        gate.caller(request, name)
        return _json(await run_in_threadpool(ops.describe, name))

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
        principal = gate.caller(request, name)
        require_admin(principal)
        body = await gate.body(request, principal, ACCEPTED, allow_missing=True)
        return _json(await gate.work.run(principal, body, ops.create_parsed, name, body))

    @router.delete("/streams/{name}", summary="DeleteStream", response_model=dict[str, Any], responses=errors)
    async def delete_stream(name: str, request: Request) -> Response:
        """Delete a stream and its records; needs an admin key."""
        require_admin(gate.caller(request, name))
        return _json(await run_in_threadpool(ops.delete, name))

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
        body = await gate.body(request, principal, ACCEPTED, allow_missing=True)
        request_key = RequestKey(principal.name, idempotency_key, body) if idempotency_key else None
        if service.can_produce_inline("streams", name):
            return await ops.put_record_inline(name, body, request_key, gate.work, principal)
        put = await gate.work.run(principal, body, put_parsed, ops, False, name, body, request_key)
        return _json(put)

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
        body = await gate.body(request, principal, ACCEPTED, allow_missing=True)
        meaning = request_meaning("PutRecords")
        request_key = RequestKey(principal.name, idempotency_key, body, meaning) if idempotency_key else None
        return _json(await gate.work.run(principal, body, put_parsed, ops, True, name, body, request_key))

    return router


def put_parsed(
    ops: KinesisOps, many: bool, name: str, body: bytes, request_key: RequestKey | None
) -> dict[str, Any]:
    """PutRecord(s) of a raw body, the stream checked first (40401 before the body's 40001)."""
    ops.service.partitions("streams", name)
    doc = parse_json(body)
    return ops.put_records(name, doc, request_key) if many else ops.put_record(name, doc, request_key)
