"""The REST proxy routes of the ingestion API, in-process, on the memory and the embedded log."""

from __future__ import annotations

import base64

import orjson
import pytest

from pinpipe.config import Settings
from pinpipe.errors import LogError, LogUnavailableError
from pinpipe.log.base import Log
from pinpipe.log.kafka.reader import ProducerFatalError
from pinpipe.log.memory import MemoryLog
from pinpipe.log.partitioner import partition_for_key
from tests.unit import api_support
from tests.unit.api_support import (
    GEO,
    GEO_RECORD,
    KAFKA_JSON,
    PIN,
    PIN_RECORD,
    USER,
    client_for,
    read_all,
    total,
    with_api,
)

log = api_support.log  # the memory and embedded logs, shared with the other API tests
client = api_support.client


def produce(client, topic: str, records: list, headers: dict | None = None):
    return client.post(
        f"/topics/{topic}", json={"records": records}, headers={**KAFKA_JSON, **(headers or {})}
    )


def test_startup_creates_the_six_topics_and_streams(client, log: Log, settings: Settings) -> None:
    assert client.get("/topics").json() == sorted([GEO, PIN, USER])
    names = set(log.topics())
    assert {f"{settings.prefix}.{k}" for k in ("pin", "geo", "user")} <= names
    assert {f"streaming-{settings.prefix}-{k}" for k in ("pin", "geo", "user")} <= names
    assert all(log.topics()[n] == settings.log.partitions for n in names)


def test_produce_answers_the_rest_proxy_shape_and_stores_compact_json(client, log: Log) -> None:
    value = {**GEO_RECORD, "country": "Côte d'Ivoire ", "extra": [1, 2]}
    response = produce(client, GEO, [{"value": value}])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.kafka.v2+json"
    body = response.json()
    assert set(body) == {"offsets", "key_schema_id", "value_schema_id"}
    assert body["key_schema_id"] is None and body["value_schema_id"] is None
    (offset,) = body["offsets"]
    assert offset["error_code"] is None and offset["error"] is None
    (stored,) = read_all(log, GEO)
    assert (stored.partition, stored.offset) == (offset["partition"], offset["offset"])
    assert stored.value == orjson.dumps(value)  # compact UTF-8 JSON, unknown fields kept
    assert "Côte d'Ivoire ".encode() in stored.value
    assert stored.key is None


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("application/vnd.kafka.json.v2+json", False),
        ("application/vnd.kafka.json.v1+json", False),
        ("application/vnd.kafka.binary.v2+json", True),
        ("application/vnd.kafka.binary.v1+json", True),
        ("application/vnd.kafka.v2+json", True),
        ("application/vnd.kafka.v1+json", True),
        ("application/vnd.kafka+json", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
    ],
)
def test_accepted_content_types(client, log: Log, content_type: str, binary: bool) -> None:
    """The json format embeds values as JSON; the binary one and the generic types (Confluent's default
    format) as base64, decoded and validated as JSON on the pin/geo/user topics."""
    value = base64.b64encode(orjson.dumps(PIN_RECORD)).decode() if binary else PIN_RECORD
    body = orjson.dumps({"records": [{"value": value}]})
    response = client.post(f"/topics/{PIN}", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["offsets"][0] == {"partition": 0, "offset": 0, "error_code": None, "error": None}
    assert orjson.loads(read_all(log, PIN)[0].value) == PIN_RECORD


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.kafka.avro.v2+json",
        "application/vnd.kafka.jsonschema.v2+json",
        "application/vnd.kafka.protobuf.v2+json",
        "application/vnd.kafka.avro.v1+json",
    ],
)
def test_schema_registry_formats_are_415_naming_what_is_accepted(client, content_type: str) -> None:
    body = orjson.dumps({"value_schema_id": 1, "records": [{"value": PIN_RECORD}]})
    response = client.post(f"/topics/{PIN}", content=body, headers={"Content-Type": content_type})
    assert (response.status_code, response.json()["error_code"]) == (415, 41501)
    assert "schema registry" in response.json()["message"]
    assert "application/vnd.kafka.binary.v2+json" in response.json()["message"]


def test_key_hash_partition_and_key_encoding(client, log: Log, settings: Settings) -> None:
    records: list[dict[str, object]] = [{"key": f"user-{i}", "value": GEO_RECORD} for i in range(20)]
    records.append({"key": 42, "value": GEO_RECORD})
    offsets = produce(client, GEO, records).json()["offsets"]
    for i, offset in enumerate(offsets[:20]):
        assert offset["partition"] == partition_for_key(f"user-{i}".encode(), settings.log.partitions)
    assert len({o["partition"] for o in offsets}) > 1
    stored = {(r.partition, r.offset): r for r in read_all(log, GEO)}
    assert stored[(offsets[0]["partition"], offsets[0]["offset"])].key == b"user-0"
    assert stored[(offsets[20]["partition"], offsets[20]["offset"])].key == b"42"  # non-string: JSON


def test_explicit_partition(client, log: Log) -> None:
    offsets = produce(client, USER, [{"value": {"ind": 1}, "partition": 2}] * 3).json()["offsets"]
    assert [(o["partition"], o["offset"]) for o in offsets] == [(2, 0), (2, 1), (2, 2)]
    assert log.end_offsets(USER) == {0: 0, 1: 0, 2: 3}


def test_per_record_errors_while_valid_records_are_written(client, log: Log) -> None:
    records = [
        {"value": GEO_RECORD},
        {"value": {**GEO_RECORD, "latitude": "north"}},
        {"value": {**GEO_RECORD, "timestamp": "yesterday"}},
        {"value": [1, 2, 3]},
        {"value": GEO_RECORD, "partition": 99},
        {"value": {"ind": 5}},  # missing fields are allowed
    ]
    response = produce(client, GEO, records)
    assert response.status_code == 200
    offsets = response.json()["offsets"]
    assert [o["error_code"] for o in offsets] == [None, 42206, 42206, 42206, 42202, None]
    assert "latitude" in offsets[1]["error"] and "timestamp" in offsets[2]["error"]
    assert offsets[1]["partition"] is None and offsets[1]["offset"] is None
    assert total(log, GEO) == 2
    assert sorted(orjson.loads(r.value)["ind"] for r in read_all(log, GEO)) == [5, 7528]


JSON_TYPE = "application/vnd.kafka.json.v2+json"
BAD_REQUESTS = [
    # (description, body bytes, content type, status, error_code)
    ("malformed JSON", b'{"records": [', "application/vnd.kafka.json.v2+json", 400, 40001),
    ("not UTF-8", b'{"records": [{"value": "\xff"}]}', JSON_TYPE, 400, 40001),
    ("NaN is not JSON", b'{"records": [{"value": NaN}]}', JSON_TYPE, 400, 40001),
    ("wrong content type", b'{"records": [{"value": {}}]}', "text/plain", 415, 41501),
    (
        "avro embedded format",
        b'{"records": [{"value": "e30="}]}',
        "application/vnd.kafka.avro.v2+json",
        415,
        41501,
    ),
    ("binary value not a string", b'{"records": [{"value": {"ind": 1}}]}', "application/json", 422, 42206),
    (
        "binary value not base64",
        b'{"records": [{"value": "e30="}, {"value": "!!"}]}',
        "application/json",
        422,
        42206,
    ),
    (
        "header name reserved",
        b'{"records": [{"value": {"ind": 1}, "headers": [{"name": "pinpipe-x", "value": null}]}]}',
        JSON_TYPE,
        422,
        42206,
    ),
    (
        "header value not base64",
        b'{"records": [{"value": {"ind": 1}, "headers": [{"name": "h", "value": "!"}]}]}',
        JSON_TYPE,
        422,
        42206,
    ),
    ("no content type", b'{"records": [{"value": {}}]}', "", 415, 41501),
    ("missing records", b'{"value": {"ind": 1}}', JSON_TYPE, 422, 42206),
    ("records not a list", b'{"records": {"value": {}}}', JSON_TYPE, 422, 42206),
    ("empty records", b'{"records": []}', JSON_TYPE, 422, 42206),
    ("body not an object", b"[1, 2]", JSON_TYPE, 422, 42206),
    (
        "record without value",
        b'{"records": [{"value": {"ind": 1}}, {"key": "k"}]}',
        JSON_TYPE,
        422,
        42206,
    ),
    ("record not an object", b'{"records": [{"value": {"ind": 1}}, 7]}', JSON_TYPE, 422, 42206),
    (
        "negative partition",
        b'{"records": [{"value": {"ind": 1}, "partition": -1}]}',
        JSON_TYPE,
        422,
        42206,
    ),
    (
        "string partition",
        b'{"records": [{"value": {"ind": 1}, "partition": "0"}]}',
        JSON_TYPE,
        422,
        42206,
    ),
    (
        "lone surrogate",
        b'{"records": [{"value": {"ind": 1}}, {"value": {"first_name": "\\ud800"}}]}',
        JSON_TYPE,
        400,
        40001,
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "content_type", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_malformed_requests_are_rejected_whole(
    client, log: Log, what, body, content_type, status, code
) -> None:
    produce(client, USER, [{"value": {"ind": 1}}])  # a record of an earlier request
    before = read_all(log, USER)
    headers = {"Content-Type": content_type} if content_type else {}
    if not content_type:
        client.headers.pop("content-type", None)
    response = client.post(f"/topics/{USER}", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code
    assert set(response.json()) == {"error_code", "message"}
    assert read_all(log, USER) == before  # nothing of it written, nothing else disturbed


def test_too_many_records_is_42201_and_nothing_written(settings: Settings, log: Log) -> None:
    with client_for(with_api(settings, max_records=10), log) as client:
        response = produce(client, PIN, [{"value": PIN_RECORD}] * 11)
        assert (response.status_code, response.json()["error_code"]) == (422, 42201)
        assert total(log, PIN) == 0
        assert produce(client, PIN, [{"value": PIN_RECORD}] * 10).status_code == 200
        assert total(log, PIN) == 10


def test_body_too_big_is_413(settings: Settings, log: Log) -> None:
    with client_for(with_api(settings, max_body_bytes=2000), log) as client:
        big = [{"value": {**PIN_RECORD, "description": "x" * 3000}}]
        response = produce(client, PIN, big)
        assert (response.status_code, response.json()["error_code"]) == (413, 41301)

        def chunks():  # no Content-Length: the limit holds while streaming too
            yield b'{"records": [{"value": {"title": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}}]}'

        response = client.post(f"/topics/{PIN}", content=chunks(), headers=KAFKA_JSON)
        assert (response.status_code, response.json()["error_code"]) == (413, 41301)
        assert total(log, PIN) == 0


def test_unknown_topic_is_40401(client, log: Log) -> None:
    response = produce(client, "0a1b2c3d4e5f.comments", [{"value": {}}])
    assert (response.status_code, response.json()["error_code"]) == (404, 40401)
    assert "0a1b2c3d4e5f.comments" not in log.topics()
    assert client.get("/topics/nope").json()["error_code"] == 40401


def test_topic_metadata(client, settings: Settings) -> None:
    meta = client.get(f"/topics/{PIN}").json()
    assert meta["name"] == PIN
    assert [p["partition"] for p in meta["partitions"]] == list(range(settings.log.partitions))


def test_idempotent_retry_returns_original_offsets_and_stores_once(client, log: Log) -> None:
    headers = {"Idempotency-Key": "run1-0-pin"}
    first = produce(client, PIN, [{"value": PIN_RECORD}], headers).json()["offsets"]
    produce(client, PIN, [{"value": {**PIN_RECORD, "index": 1}}])  # something else in between
    again = produce(client, PIN, [{"value": PIN_RECORD}], headers).json()["offsets"]
    assert again == first
    assert total(log, PIN) == 2
    # the same key on another topic is another event
    produce(client, GEO, [{"value": GEO_RECORD}], headers)
    assert total(log, GEO) == 1


def test_idempotency_key_of_a_multi_record_request_covers_the_whole_request(client, log: Log) -> None:
    headers = {"Idempotency-Key": "batch-7"}
    records = [{"value": {"ind": i}} for i in range(5)]
    first = produce(client, USER, records, headers).json()["offsets"]
    # a retry of the same batch answers its offsets; a shorter one is another request: refused
    assert produce(client, USER, records, headers).json()["offsets"] == first
    assert produce(client, USER, records[:3], headers).json()["error_code"] == 42207
    assert total(log, USER) == 5
    # no client key names one record of the batch
    single = produce(client, USER, [{"value": {"ind": 1}}], {"Idempotency-Key": "batch-7#1"})
    assert single.json()["offsets"][0] not in first
    assert total(log, USER) == 6


def test_record_key_alone_does_not_deduplicate(client, log: Log) -> None:
    produce(client, PIN, [{"key": "same", "value": PIN_RECORD}])
    produce(client, PIN, [{"key": "same", "value": PIN_RECORD}])
    assert total(log, PIN) == 2


class FailingWriter:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def append(self, topic, records):
        raise self.error

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class FailingGroupWriter(FailingWriter):
    """Commits through the API's committer (as the embedded log's writer does), and fails there."""

    def append_many(self, calls):
        return [self.error for _ in calls]


class FailingLog(MemoryLog):
    """A memory log whose writer raises ``error`` (the topics exist)."""

    def __init__(self, error: Exception, grouped: bool = False) -> None:
        super().__init__(auto_create=False)
        self.error = error
        self.grouped = grouped

    def writer(self):
        return (FailingGroupWriter if self.grouped else FailingWriter)(self.error)


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (LogUnavailableError("disk gone"), 503, 50003, True),
        (ProducerFatalError("Kafka: the producer failed fatally"), 503, 50003, True),
        (LogError("refused"), 500, 50002, False),
        (RuntimeError("a bug"), 500, 50001, False),
    ],
)
@pytest.mark.parametrize("grouped", [False, True], ids=["thread-pool", "committer"])
def test_log_failures_answer_rest_proxy_errors(
    settings: Settings, error, status, code, retry_after, grouped: bool
) -> None:
    with client_for(settings, FailingLog(error, grouped), raise_server_exceptions=False) as client:
        response = produce(client, PIN, [{"value": PIN_RECORD}])
        assert response.status_code == status
        assert response.json()["error_code"] == code
        assert ("retry-after" in response.headers) == retry_after
        if retry_after:  # an append that did not answer may have landed: only a keyed retry is safe
            assert "retry with the same Idempotency-Key" in response.json()["message"]
        put = client.put(
            "/streams/streaming-0a1b2c3d4e5f-pin/record", json={"Data": PIN_RECORD, "PartitionKey": "k"}
        )
        assert put.status_code == status
        assert put.json()["error_code"] == code
        assert put.json()["__type"] in ("ServiceUnavailable", "InternalFailure")


def test_rate_limit_is_42901_with_retry_after(settings: Settings, log: Log) -> None:
    with client_for(with_api(settings, rate_limit=0.5, rate_burst=2), log) as client:
        assert produce(client, PIN, [{"value": PIN_RECORD}]).status_code == 200
        assert produce(client, PIN, [{"value": PIN_RECORD}]).status_code == 200
        limited = produce(client, PIN, [{"value": PIN_RECORD}])
        assert (limited.status_code, limited.json()["error_code"]) == (429, 42901)
        assert int(limited.headers["retry-after"]) >= 1
        assert total(log, PIN) == 2


def test_health_readiness_and_metrics(client, log: Log) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    produce(client, GEO, [{"value": GEO_RECORD}, {"value": {"ind": "bad"}}])
    text = client.get("/metrics").text
    assert f'pinpipe_api_records_total{{topic="{GEO}",status="ok"}} 1' in text
    assert f'pinpipe_api_records_total{{topic="{GEO}",status="42206"}} 1' in text
    assert 'pinpipe_api_requests_total{route="/topics/{topic}",method="POST",status="200"} 1' in text
    assert 'pinpipe_api_request_duration_seconds_bucket{route="/topics/{topic}",le="+Inf"} 1' in text


def test_readyz_is_503_when_the_log_does_not_answer(settings: Settings) -> None:
    class DownLog(MemoryLog):
        def topics(self) -> dict[str, int]:
            raise LogUnavailableError("down")

    with client_for(settings, DownLog()) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = produce(client, PIN, [{"value": PIN_RECORD}])
        assert (response.status_code, response.json()["error_code"]) == (503, 50003)


def test_framework_errors_keep_the_error_body(client) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json()["error_code"] == 40401
    wrong_method = client.delete(f"/topics/{PIN}")
    assert wrong_method.status_code == 405 and wrong_method.json()["error_code"] == 40501
    long_key = produce(client, PIN, [{"value": PIN_RECORD}], {"Idempotency-Key": "k" * 300})
    assert (long_key.status_code, long_key.json()["error_code"]) == (400, 40002)


def test_openapi_documents_the_routes(client) -> None:
    spec = client.get("/openapi.json").json()
    produce_op = spec["paths"]["/topics/{topic}"]["post"]
    assert "application/vnd.kafka.json.v2+json" in produce_op["requestBody"]["content"]
    assert set(produce_op["responses"]) >= {"200", "401", "403", "404", "413", "415", "422", "429", "503"}
    assert {"/streams", "/streams/{name}", "/streams/{name}/record", "/streams/{name}/records"} <= set(
        spec["paths"]
    )
    assert "securitySchemes" not in spec.get("components", {})  # open API: no key to document


def test_base64_is_not_decoded_on_the_rest_proxy(client, log: Log) -> None:
    """The json embedded format stores values as given: a string value stays a string."""
    encoded = base64.b64encode(b'{"a": 1}').decode()
    produce(client, "0a1b2c3d4e5f.pin", [{"value": {"index": 1, "title": encoded}}])
    assert orjson.loads(read_all(log, PIN)[0].value) == {"index": 1, "title": encoded}


def test_single_record_produce_is_answered_before_the_framework_middleware(settings: Settings) -> None:
    """The produce paths are answered by the outermost callable (same answer, same metrics); other
    requests, and a produce whose header the route's validation must judge, go through the framework."""
    from fastapi.testclient import TestClient

    from pinpipe.ingest import create_app

    seen: list[str] = []

    class Recorder:
        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.app(scope, receive, send)

    app = create_app(settings, log=MemoryLog())
    app.add_middleware(Recorder)
    with TestClient(app) as client:
        response = produce(client, GEO, [{"value": GEO_RECORD}], {"Idempotency-Key": "a"})
        assert response.status_code == 200 and response.json()["offsets"][0]["offset"] == 0
        assert (
            produce(client, GEO, [{"value": GEO_RECORD}], {"Idempotency-Key": "a"}).json() == response.json()
        )
        refused = produce(client, GEO, [{"value": GEO_RECORD}], {"Idempotency-Key": "k" * 257})
        assert refused.status_code == 400 and refused.json()["error_code"] == 40002
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
    assert seen == [f"/topics/{GEO}", "/healthz", "/metrics"]
    assert 'pinpipe_api_requests_total{route="/topics/{topic}",method="POST",status="200"} 2' in text
