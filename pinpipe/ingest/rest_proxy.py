"""Kafka REST Proxy v2 routes: produce to a topic, list topics, a topic's metadata.

Produce (``POST /topics/{topic}``) accepts the v2 JSON embedded format: ``Content-Type:
application/vnd.kafka.json.v2+json``, and, as the Confluent proxy does, the less specific
``application/vnd.kafka.v2+json``, ``application/vnd.kafka+json`` and ``application/json``; others are 415
(binary and Avro embedded formats are not supported).

What is rejected whole (4xx, nothing written): a bad content type (41501), a body over the size limit
(41301), malformed JSON (40001), no ``records`` array, an empty one, a record that is not an object with a
``value``, a partition that is not a non-negative integer (42206), more records than ``api.max_records``
(42201), an unknown topic (40401). What fails per record (200, the error in its ``offsets[]`` entry, the
request's other records written): a value that does not match its topic's schema (42206), an explicit
partition the topic does not have (42202).

``Idempotency-Key: K`` makes the request safe to retry: a retry with the same body answers the original
partitions and offsets without storing again; the same key with another body or record count is refused
whole (42207, nothing stored). Keys are scoped to the API key that sent them (see
:mod:`pinpipe.ingest.idempotency`). A record's ``key`` alone is only a partitioning key, never an event id.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pinpipe.ingest.body import Gate, error_docs
from pinpipe.ingest.errors import ApiError, KafkaJSONResponse
from pinpipe.ingest.idempotency import RequestKey
from pinpipe.ingest.models import (
    MAX_PARTITION,
    ErrorBody,
    ProduceResponse,
    TopicMetadata,
    produce_request_schema,
)
from pinpipe.ingest.service import IngestService, Item, encode_key, parse_json

ACCEPTED = frozenset(
    {
        "application/vnd.kafka.json.v2+json",
        "application/vnd.kafka.v2+json",
        "application/vnd.kafka+json",
        "application/json",
    }
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=256,
        description="Makes the request safe to retry: the same key and body store once; the same key "
        "with another body or record count is refused (42207). Scoped to the API key.",
    ),
]


def parse_records(doc: Any, max_records: int) -> list[Item]:
    """The records of a v2 produce body, or ApiError when the request is malformed as a whole."""
    if not isinstance(doc, dict) or "records" not in doc:
        raise ApiError(42206, "request body must be a JSON object with a 'records' array")
    records = doc["records"]
    if not isinstance(records, list) or not records:
        raise ApiError(42206, "'records' must be a non-empty array")
    if len(records) > max_records:
        raise ApiError(42201, f"too many records: {len(records)} > {max_records} per request")
    items = []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or "value" not in record:
            raise ApiError(42206, f"records[{i}] must be an object with a 'value'")
        partition = record.get("partition")
        if isinstance(partition, float) and partition.is_integer():
            partition = int(partition)
        if partition is not None and (
            isinstance(partition, bool)
            or not isinstance(partition, int)
            or not 0 <= partition <= MAX_PARTITION
        ):
            raise ApiError(42206, f"records[{i}].partition must be an integer from 0 to {MAX_PARTITION}")
        items.append(
            Item(
                record["value"], encode_key(record.get("key")), None if partition is None else int(partition)
            )
        )
    return items


def rest_proxy_router(service: IngestService, gate: Gate, max_records: int) -> APIRouter:
    router = APIRouter(tags=["Kafka REST Proxy v2"], default_response_class=KafkaJSONResponse)
    request_schema = produce_request_schema(max_records)

    def produce_sync(topic: str, body: bytes, idempotency_key: RequestKey | None) -> bytes:
        service.partitions("topics", topic)  # 40401 before looking at the body
        items = parse_records(parse_json(body), max_records)
        outcomes = service.produce("topics", topic, items, idempotency_key)
        offsets = [
            {"partition": o.partition, "offset": o.offset, "error_code": o.error_code, "error": o.error}
            for o in outcomes
        ]
        return orjson.dumps({"offsets": offsets, "key_schema_id": None, "value_schema_id": None})

    @router.post(
        "/topics/{topic}",
        summary="Produce records to a topic",
        response_model=ProduceResponse,
        responses=error_docs(ErrorBody, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    media_type: {"schema": request_schema}
                    for media_type in ("application/vnd.kafka.json.v2+json", "application/json")
                },
            }
        },
    )
    async def produce(topic: str, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        """Append the records after checking each against its topic's schema; answers once they are in
        the log. See the module docs for what is rejected whole and what per record."""
        principal = gate.caller(request, topic)
        body = await gate.body(request, ACCEPTED)
        request_key = RequestKey(principal.name, idempotency_key, body) if idempotency_key else None
        content = await run_in_threadpool(produce_sync, topic, body, request_key)
        return KafkaJSONResponse(content)

    @router.get(
        "/topics",
        summary="List topics",
        response_model=list[str],
        responses=error_docs(ErrorBody, 401, 429, 500, 503),
    )
    async def list_topics(request: Request) -> Response:
        principal = gate.caller(request)
        names = await run_in_threadpool(service.names, "topics")
        return KafkaJSONResponse(sorted(n for n in names if principal.may_use(n)))

    @router.get(
        "/topics/{topic}",
        summary="A topic's metadata",
        response_model=TopicMetadata,
        responses=error_docs(ErrorBody, 401, 403, 404, 422, 429, 500, 503),
    )
    async def topic_metadata(topic: str, request: Request) -> Response:
        gate.caller(request, topic)
        count = await run_in_threadpool(service.partitions, "topics", topic)
        partitions = [
            {"partition": p, "leader": 0, "replicas": [{"broker": 0, "leader": True, "in_sync": True}]}
            for p in range(count)
        ]
        return KafkaJSONResponse({"name": topic, "configs": {}, "partitions": partitions})

    return router
