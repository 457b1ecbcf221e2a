"""Kafka REST Proxy v3 produce: ``/v3/clusters`` and a topic's ``records`` and ``records:batch``.

The log is one cluster whose id is derived from the log's URL (stable for a log, different for another).
``POST /v3/clusters/{id}/topics/{topic}/records`` takes one record::

    {"partition_id": 1, "headers": [{"name": "trace", "value": "<base64>"}],
     "key": {"type": "STRING", "data": "user-1"}, "value": {"type": "JSON", "data": {...}},
     "timestamp": "2024-01-01T00:00:00Z"}

and answers its delivery report (``error_code`` 200, ``partition_id``, ``offset``, ``timestamp``, key and
value type and size). Types are ``JSON`` (the default: data is any JSON value), ``BINARY`` (data is base64)
and ``STRING`` (data is text, stored as UTF-8); a value on a pin/geo/user topic must be (or decode to) a
JSON object of the topic's schema. Schema types (``AVRO``, ``JSONSCHEMA``, ``PROTOBUF``, a schema id or
version) need a schema registry: 415. A record that fails validation answers the REST proxy's error body
(422 / 42206, 404 / 42202 for a missing partition); ``records:batch`` (``{"entries": [{"id": ...,
...record}]}``) answers 207 with ``successes`` and ``failures`` (each failure with its ``id``,
``error_code`` and ``message``) and writes the valid entries. ``Idempotency-Key`` works as on v2. On a Kafka
log a timestamp further ahead than a broker takes, or old enough for Kafka's time retention to delete the
record early, fails its record alone (the log's ``refusal``: ``AHEAD_S``, ``BEHIND_S`` in
:mod:`pinpipe.log.kafka.log`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from pinpipe.config_show import mask_url
from pinpipe.errors import ErrorCode
from pinpipe.ingest.body import Gate, error_docs
from pinpipe.ingest.errors import ApiError, KafkaJSONResponse
from pinpipe.ingest.formats import bytes_item, decode_base64, parse_headers
from pinpipe.ingest.idempotency import RequestKey
from pinpipe.ingest.models import ErrorBody, v3_batch_schema, v3_record_schema
from pinpipe.ingest.rest_proxy import IdempotencyKey, record_partition
from pinpipe.ingest.service import IngestService, Item, Outcome, encode_json, parse_json
from pinpipe.keys import Principal
from pinpipe.schema import kind_of_any

V3_TYPES = ("JSON", "BINARY", "STRING")
SCHEMA_FIELDS = ("schema_id", "schema_version", "schema", "subject", "subject_name_strategy")
ACCEPTED = frozenset({"application/json"})
LAST_SECOND = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() + 1
ClusterId = Annotated[str, Path(max_length=64, description="The id GET /v3/clusters answers")]


def cluster_id_of(log_url: str) -> str:
    """A Kafka-like cluster id (22 characters of URL-safe base64) derived from the log's URL with its
    secrets masked: any caller may read the id, and a hash of the password's URL could be tried against
    guesses of it offline (a URL without secrets keeps the id it always had)."""
    digest = hashlib.blake2b(mask_url(log_url).encode(), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(given: Any) -> float | None:
    """A record's ``timestamp`` (RFC 3339; UTC when it names no offset) as epoch seconds, or None."""
    if given is None:
        return None
    try:
        if not isinstance(given, str):
            raise ValueError(given)
        moment = datetime.fromisoformat(given.upper())  # RFC 3339 allows a lower-case t and z
    except ValueError:
        raise ApiError(
            ErrorCode.INVALID, "timestamp must be an RFC 3339 date-time, e.g. 2024-01-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if not 0 <= seconds < LAST_SECOND:  # Kafka timestamps are not negative; reports print 4-digit years
        raise ApiError(
            ErrorCode.INVALID, "timestamp must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        )
    return seconds


def data_bytes(part: Any, where: str) -> tuple[str, Any, bytes | None]:
    """(type, JSON value or None, bytes or None) of a key or value ``{"type": T, "data": D}``; ApiError
    42206 for a malformed one, 41501 for a schema type."""
    if not isinstance(part, dict):
        raise ApiError(ErrorCode.INVALID, f"{where} must be an object with 'type' and 'data'")
    kind = part.get("type", "JSON")
    if any(field in part for field in SCHEMA_FIELDS) or kind not in V3_TYPES:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"{where}: type {kind!r} or a schema needs a schema registry: use one of {', '.join(V3_TYPES)}",
        )
    data = part.get("data")
    if kind == "JSON":
        return kind, data, None
    if not isinstance(data, str):
        raise ApiError(ErrorCode.INVALID, f"{where}.data must be a string for type {kind}")
    if kind == "STRING":
        try:
            return kind, None, data.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(ErrorCode.MALFORMED_BODY, f"{where}.data is not valid Unicode") from None
    try:
        return kind, None, decode_base64(data)
    except ValueError:
        raise ApiError(ErrorCode.INVALID, f"{where}.data is not base64") from None


def parse_record(doc: Any, where: str, kind_known: bool) -> tuple[Item, dict[str, Any]]:
    """One v3 record as an Item, and the ``key``/``value`` entries of its delivery report."""
    if not isinstance(doc, dict):
        raise ApiError(ErrorCode.INVALID, f"{where} must be a JSON object")
    if doc.get("value") is None:
        raise ApiError(ErrorCode.INVALID, f"{where}.value is required: pinpipe stores no tombstones")
    value_type, value, raw = data_bytes(doc["value"], f"{where}.value")
    item = Item(value)
    if raw is not None:
        item = bytes_item(raw, None, kind_known, f"{where}.value is not UTF-8 JSON (a record of this topic)")
    size = len(raw) if raw is not None else len(encode_json(value))
    report: dict[str, Any] = {"key": None, "value": {"type": value_type, "size": size}}
    if doc.get("key") is not None:
        key_type, key_value, key_raw = data_bytes(doc["key"], f"{where}.key")
        item.key = key_raw if key_raw is not None else encode_json(key_value)
        report["key"] = {"type": key_type, "size": len(item.key)}
    item.partition = record_partition(doc.get("partition_id"), f"{where}.partition_id")
    item.headers = parse_headers(doc.get("headers"), where)
    item.timestamp = parse_timestamp(doc.get("timestamp"))
    return item, report


def delivery(
    cluster: str, topic: str, item: Item, outcome: Outcome, report: dict[str, Any]
) -> dict[str, Any]:
    """A record's delivery report; its time is the one it was sent with, else about the append's."""
    return {
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": outcome.partition,
        "offset": outcome.offset,
        "timestamp": rfc3339(time.time() if item.timestamp is None else item.timestamp),
        **report,
    }


def rest_v3_router(service: IngestService, gate: Gate, max_records: int) -> APIRouter:
    router = APIRouter(tags=["Kafka REST Proxy v3"], default_response_class=KafkaJSONResponse)
    cluster = cluster_id_of(service.logs["topics"].url)
    errors = error_docs(ErrorBody, 400, 401, 403, 404, 413, 415, 422, 429, 500, 503)

    def check_cluster(given: str) -> None:
        if given != cluster:
            raise ApiError(ErrorCode.NOT_FOUND, f"cluster {given!r} not found: this API serves {cluster!r}")

    def cluster_doc(base: str) -> dict[str, Any]:
        self_url = f"{base}/v3/clusters/{cluster}"
        return {
            "kind": "KafkaCluster",
            "metadata": {"self": self_url, "resource_name": f"crn:///kafka={cluster}"},
            "cluster_id": cluster,
            "controller": {"related": f"{self_url}/brokers/0"},
            "acls": {"related": f"{self_url}/acls"},
            "brokers": {"related": f"{self_url}/brokers"},
            "broker_configs": {"related": f"{self_url}/broker-configs"},
            "consumer_groups": {"related": f"{self_url}/consumer-groups"},
            "topics": {"related": f"{self_url}/topics"},
            "partition_reassignments": {"related": f"{self_url}/topics/-/partitions/-/reassignment"},
        }

    def produce_one(topic: str, body: bytes, request_key: RequestKey | None) -> dict[str, Any]:
        service.partitions("topics", topic)
        item, report = parse_record(parse_json(body), "the body", kind_of_any(topic) is not None)
        (outcome,) = service.produce("topics", topic, [item], request_key)
        if outcome.error_code is not None:
            raise ApiError(outcome.error_code, outcome.error or "invalid record")
        return {"error_code": 200, **delivery(cluster, topic, item, outcome, report)}

    def produce_batch(topic: str, body: bytes, request_key: RequestKey | None) -> dict[str, Any]:
        service.partitions("topics", topic)
        doc = parse_json(body)
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ApiError(
                ErrorCode.INVALID, "request body must be an object with a non-empty 'entries' array"
            )
        if len(entries) > max_records:
            raise ApiError(
                ErrorCode.TOO_MANY_RECORDS, f"too many entries: {len(entries)} > {max_records} per request"
            )
        known = kind_of_any(topic) is not None
        ids: list[str] = []
        parsed = []
        for i, entry in enumerate(entries):
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(entry_id, str) or not entry_id or entry_id in ids:
                raise ApiError(
                    ErrorCode.INVALID, f"entries[{i}].id must be a non-empty string, unique in the request"
                )
            ids.append(entry_id)
            parsed.append(parse_record(entry, f"entries[{i}]", known))
        outcomes = service.produce("topics", topic, [item for item, _ in parsed], request_key)
        successes, failures = [], []
        for entry_id, (item, report), outcome in zip(ids, parsed, outcomes, strict=True):
            if outcome.error_code is None:
                successes.append({"id": entry_id, **delivery(cluster, topic, item, outcome, report)})
            else:
                failures.append({"id": entry_id, "error_code": outcome.error_code, "message": outcome.error})
        return {"successes": successes, "failures": failures}

    @router.get("/v3/clusters", summary="The cluster (one: the log)", responses=errors)
    async def list_clusters(request: Request) -> Response:
        gate.caller(request)
        base = str(request.base_url).rstrip("/")
        listing = {
            "kind": "KafkaClusterList",
            "metadata": {"self": f"{base}/v3/clusters", "next": None},
            "data": [cluster_doc(base)],
        }
        return KafkaJSONResponse(listing)

    @router.get("/v3/clusters/{cluster_id}", summary="The cluster", responses=errors)
    async def get_cluster(cluster_id: ClusterId, request: Request) -> Response:
        gate.caller(request)
        check_cluster(cluster_id)
        return KafkaJSONResponse(cluster_doc(str(request.base_url).rstrip("/")))

    async def read(
        cluster_id: str, topic: str, request: Request, key: str | None, meaning: str
    ) -> tuple[Principal, bytes, Any]:
        """The caller, the body and its request key."""
        principal = gate.caller(request, topic)
        check_cluster(cluster_id)
        body = await gate.body(request, principal, ACCEPTED)
        return principal, body, RequestKey(principal.name, key, body, meaning) if key else None

    @router.post(
        "/v3/clusters/{cluster_id}/topics/{topic}/records",
        summary="Produce one record (v3)",
        responses=errors,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": v3_record_schema()}}}
        },
    )
    async def produce_record(
        cluster_id: ClusterId, topic: str, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Append one record; answers its delivery report once it is in the log."""
        who, body, request_key = await read(cluster_id, topic, request, idempotency_key, "v3")
        return KafkaJSONResponse(await gate.work.run(who, body, produce_one, topic, body, request_key))

    @router.post(
        "/v3/clusters/{cluster_id}/topics/{topic}/records:batch",
        summary="Produce a batch of records (v3)",
        status_code=207,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": v3_batch_schema(max_records)}},
            }
        },
    )
    async def produce_records(
        cluster_id: ClusterId, topic: str, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Append the valid entries; 207 with each entry's delivery report or error, by ``id``."""
        who, body, request_key = await read(cluster_id, topic, request, idempotency_key, "v3 batch")
        answer = await gate.work.run(who, body, produce_batch, topic, body, request_key)
        return KafkaJSONResponse(answer, status_code=207)

    return router
