"""Kafka REST Proxy v2 routes: produce to a topic or one partition, list topics, brokers, partitions.

``POST /topics/{topic}`` and ``POST /topics/{topic}/partitions/{p}`` take ``{"records": [...]}`` in the
embedded format the ``Content-Type`` names (:mod:`pinpipe.ingest.formats`: JSON values, or base64 binary
ones under the binary and generic types); Avro, JSON Schema and Protobuf are 415. ``GET /topics``,
``GET /topics/{topic}``, ``GET /topics/{topic}/partitions[/{p}]`` and ``GET /brokers`` answer the
metadata Confluent's clients read (one broker, id 0, leads every partition).

What is rejected whole (4xx, nothing written): a bad content type (41501), a body over the size limit
(41301), malformed JSON (40001), no ``records`` array, an empty one, a record that is not an object with a
``value``, a partition that is not a non-negative integer, a binary key or value that is not a base64
string, malformed headers (42206), more records than ``api.max_records`` (42201), an unknown topic (40401).
What fails per record (200, the error in its ``offsets[]`` entry, the request's other records written): a
value that does not match its topic's schema or lacks its identifying field, a binary value that is not
JSON on a pin/geo/user topic (42206), an explicit partition the topic does not have (42202).

``Idempotency-Key: K`` makes the request safe to retry: a retry with the same body answers the original
partitions and offsets without storing again; the same key with another body or record count, or with
the same body to another partition or in another format, is refused whole (42207, nothing stored). Keys
are scoped to the API key that sent them (see :mod:`pinpipe.ingest.idempotency`). A record's ``key``
alone is only a partitioning key, never an event id.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive

from pinpipe.errors import ErrorCode
from pinpipe.exact_json import NeedsPythonParse
from pinpipe.ingest.body import Gate, Sent, error_docs, parsed_on_loop
from pinpipe.ingest.errors import ApiError, KafkaJSONResponse
from pinpipe.ingest.formats import ACCEPTED, Format, binary_item, embedded_format, parse_headers
from pinpipe.ingest.idempotency import RequestKey, request_meaning
from pinpipe.ingest.models import (
    MAX_PARTITION,
    BrokerList,
    ErrorBody,
    PartitionMetadata,
    ProduceResponse,
    TopicMetadata,
    produce_content,
)
from pinpipe.ingest.service import IngestService, Item, Outcome, encode_key, parse_json
from pinpipe.schema import kind_of_any

MAX_IDEMPOTENCY_KEY = 256
"""Characters an ``Idempotency-Key`` may have."""

PartitionId = Annotated[int, Path(ge=0, le=MAX_PARTITION, description="A partition of the topic")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY,
        description="Makes the request safe to retry: the same key and body store once; the same key "
        "with another body, record count, partition or format is refused (42207). Scoped to the API key.",
    ),
]


def parse_records(
    doc: Any, max_records: int, fmt: Format = "json", kind_known: bool = True, partition: int | None = None
) -> list[Item]:
    """The records of a v2 produce body, or ApiError when the request is malformed as a whole. With
    ``partition`` (the path's), a record may not name one itself."""
    if not isinstance(doc, dict) or "records" not in doc:
        raise ApiError(ErrorCode.INVALID, "request body must be a JSON object with a 'records' array")
    records = doc["records"]
    if not isinstance(records, list) or not records:
        raise ApiError(ErrorCode.INVALID, "'records' must be a non-empty array")
    if len(records) > max_records:
        raise ApiError(
            ErrorCode.TOO_MANY_RECORDS, f"too many records: {len(records)} > {max_records} per request"
        )
    items = []
    for i, record in enumerate(records):  # the common case (no partition, no headers) costs no call
        if not isinstance(record, dict) or "value" not in record:
            raise ApiError(ErrorCode.INVALID, f"records[{i}] must be an object with a 'value'")
        own = record.get("partition")
        if own is not None:
            own = record_partition(own, f"records[{i}]")
            if partition is not None and own is not None:
                raise ApiError(
                    ErrorCode.INVALID, f"records[{i}].partition: the path names the partition already"
                )
        if fmt == "binary":
            item = binary_item(record["value"], record.get("key"), f"records[{i}]", kind_known)
        else:
            key = record.get("key")
            item = Item(record["value"], None if key is None else encode_key(key))
        item.partition = partition if partition is not None else own
        headers = record.get("headers")
        if headers is not None:
            item.headers = parse_headers(headers, f"records[{i}]")
        items.append(item)
    return items


def record_partition(partition: Any, where: str) -> int | None:
    """A record's explicit partition (2.0 is 2, as in JSON Schema), None for none, or ApiError 42206."""
    if isinstance(partition, float) and partition.is_integer():
        partition = int(partition)
    if partition is not None and (
        isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition <= MAX_PARTITION
    ):
        raise ApiError(ErrorCode.INVALID, f"{where}.partition must be an integer from 0 to {MAX_PARTITION}")
    return partition


def partition_metadata(partition: int) -> dict[str, Any]:
    return {"partition": partition, "leader": 0, "replicas": [{"broker": 0, "leader": True, "in_sync": True}]}


class Producer:
    """``POST /topics/{topic}[/partitions/{partition}]``: the answer to one produce request, used by the
    routes and by :class:`pinpipe.ingest.fast_path.ProduceFastPath`."""

    def __init__(self, service: IngestService, gate: Gate, max_records: int) -> None:
        self.service = service
        self.gate = gate
        self.max_records = max_records

    async def __call__(
        self, topic: str, request: Request, idempotency_key: str | None, partition: int | None = None
    ) -> Response:
        sent = Sent.of(request.headers.raw)
        sent.idempotency_key = idempotency_key  # as the route validated it
        return KafkaJSONResponse(await self.produce(topic, sent, request.receive, partition))

    async def produce(self, topic: str, sent: Sent, receive: Receive, partition: int | None = None) -> bytes:
        """The answer's body, once the log holds the records (ApiError when the request is refused)."""
        principal = self.gate.caller_of(sent.api_key, sent.authorization, topic)
        fmt = embedded_format(sent.content_type)
        body = await self.gate.read_body(receive, sent, principal, ACCEPTED)
        key = sent.idempotency_key
        request_key = None
        if key:
            meaning = request_meaning("binary" if fmt == "binary" else "", partition)
            request_key = RequestKey(principal.name, key, body, meaning)
        work, who = self.gate.work, principal  # a large body takes turns with the key's others
        if self.service.can_produce_inline("topics", topic):
            try:
                items = parsed_on_loop(body, self.items, topic, body, fmt, partition)
            except NeedsPythonParse:  # a slow body: parsed, checked and appended in the threadpool
                pass
            else:
                return answer(await self.service.produce_inline("topics", topic, items, request_key))
        return await work.run(who, body, self.produce_sync, topic, body, fmt, request_key, partition)

    def items(self, topic: str, body: bytes, fmt: Format, partition: int | None) -> list[Item]:
        count = self.service.partitions("topics", topic)  # 40401 before looking at the body
        if partition is not None and partition >= count:
            raise ApiError(
                ErrorCode.PARTITION_NOT_FOUND, f"partition {partition} of topic {topic!r} not found"
            )
        doc = parse_json(body)
        return parse_records(doc, self.max_records, fmt, kind_of_any(topic) is not None, partition)

    def produce_sync(
        self, topic: str, body: bytes, fmt: Format, idempotency_key: RequestKey | None, partition: int | None
    ) -> bytes:
        items = self.items(topic, body, fmt, partition)
        return answer(self.service.produce("topics", topic, items, idempotency_key))


def answer(outcomes: list[Outcome]) -> bytes:
    offsets = [
        {"partition": o.partition, "offset": o.offset, "error_code": o.error_code, "error": o.error}
        for o in outcomes
    ]
    return orjson.dumps({"offsets": offsets, "key_schema_id": None, "value_schema_id": None})


def rest_proxy_router(service: IngestService, gate: Gate, producer: Producer) -> APIRouter:
    router = APIRouter(tags=["Kafka REST Proxy v2"], default_response_class=KafkaJSONResponse)
    errors = error_docs(ErrorBody, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503)
    max_records = producer.max_records

    @router.post(
        "/topics/{topic}",
        summary="Produce records to a topic",
        response_model=ProduceResponse,
        responses=errors,
        openapi_extra={"requestBody": {"required": True, "content": produce_content(max_records, True)}},
    )
    async def produce(topic: str, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        """Append the records after checking each against its topic's schema; answers once they are in
        the log. See the module docs for what is rejected whole and what per record."""
        return await producer(topic, request, idempotency_key)

    @router.post(
        "/topics/{topic}/partitions/{partition}",
        summary="Produce records to one partition of a topic",
        response_model=ProduceResponse,
        responses=errors,
        openapi_extra={"requestBody": {"required": True, "content": produce_content(max_records, False)}},
    )
    async def produce_to_partition(
        topic: str, partition: PartitionId, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """As ``POST /topics/{topic}``, every record to the path's partition (404 40402 when the topic
        has no such partition)."""
        return await producer(topic, request, idempotency_key, partition)

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
        partitions = [partition_metadata(p) for p in range(count)]
        return KafkaJSONResponse({"name": topic, "configs": {}, "partitions": partitions})

    @router.get(
        "/topics/{topic}/partitions",
        summary="A topic's partitions",
        response_model=list[PartitionMetadata],
        responses=error_docs(ErrorBody, 401, 403, 404, 422, 429, 500, 503),
    )
    async def list_partitions(topic: str, request: Request) -> Response:
        gate.caller(request, topic)
        count = await run_in_threadpool(service.partitions, "topics", topic)
        return KafkaJSONResponse([partition_metadata(p) for p in range(count)])

    @router.get(
        "/topics/{topic}/partitions/{partition}",
        summary="One partition of a topic",
        response_model=PartitionMetadata,
        responses=error_docs(ErrorBody, 400, 401, 403, 404, 422, 429, 500, 503),
    )
    async def get_partition(topic: str, partition: PartitionId, request: Request) -> Response:
        gate.caller(request, topic)
        count = await run_in_threadpool(service.partitions, "topics", topic)
        if partition >= count:
            raise ApiError(
                ErrorCode.PARTITION_NOT_FOUND, f"partition {partition} of topic {topic!r} not found"
            )
        return KafkaJSONResponse(partition_metadata(partition))

    @router.get(
        "/brokers",
        summary="The brokers (one: the pinpipe log)",
        response_model=BrokerList,
        responses=error_docs(ErrorBody, 401, 429, 500),
    )
    async def list_brokers(request: Request) -> Response:
        gate.caller(request)
        return KafkaJSONResponse({"brokers": [0]})

    return router
