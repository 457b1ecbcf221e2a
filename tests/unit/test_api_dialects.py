"""The client dialects beside v2 JSON: Basic and SigV4 credentials, the Kinesis wire protocol's errors and
roles, v3 records and batches (cluster id, schema types, idempotency), headers kept in the log."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from pinpipe.config import Settings
from pinpipe.ingest.rest_v3 import cluster_id_of
from pinpipe.log.base import Log
from tests.unit import api_support
from tests.unit.api_support import (
    GEO,
    GEO_RECORD,
    GEO_STREAM,
    client_for,
    read_all,
    total,
    with_api,
    write_keys_file,
)

log = api_support.log  # the memory and embedded logs, shared with the other API tests
PRODUCER = "producer-secret-0001"
ADMIN = "admin-secret-00000001"
OTHER = "other-tenant-secret-01"
WIRE = "application/x-amz-json-1.1"


def wire(client, operation: str, body: dict, headers: dict | None = None):
    target = {"X-Amz-Target": f"Kinesis_20131202.{operation}", "Content-Type": WIRE}
    return client.post("/", content=orjson.dumps(body), headers={**target, **(headers or {})})


def sigv4(key: str) -> dict[str, str]:
    credential = f"Credential={key}/20240101/us-east-1/kinesis/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 {credential}, SignedHeaders=host, Signature=00"}


def basic(key: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Settings:
    keys = write_keys_file(tmp_path / "keys.toml", {"other": (OTHER, "ffffffffffff", None)})
    return with_api(settings, api_keys=(PRODUCER,), admin_keys=(ADMIN,), keys_file=keys)


def test_basic_and_sigv4_carry_the_api_key(secured: Settings, log: Log) -> None:
    body = {"records": [{"value": GEO_RECORD}]}
    json_type = {"Content-Type": "application/vnd.kafka.json.v2+json"}
    with client_for(secured, log) as client:
        assert (
            client.post(f"/topics/{GEO}", json=body, headers={**json_type, **basic(PRODUCER)}).status_code
            == 200
        )
        bad = client.post(f"/topics/{GEO}", json=body, headers={**json_type, **basic("wrong-secret-000000")})
        assert (bad.status_code, bad.json()["error_code"]) == (401, 40101)
        assert (
            client.post(f"/topics/{GEO}", json=body, headers={**json_type, **basic(OTHER)}).status_code == 403
        )
        assert client.get("/topics", headers={"Authorization": "Basic !!"}).status_code == 401
        listed = wire(client, "ListStreams", {}, sigv4(PRODUCER))
        assert listed.status_code == 200 and GEO_STREAM in listed.json()["StreamNames"]
        assert wire(client, "ListStreams", {}, sigv4(OTHER)).json()["StreamNames"] == []  # its prefix only
        unknown = wire(client, "ListStreams", {}, sigv4("AKIAIOSFODNN7EXAMPLE"))
        assert unknown.status_code == 401
        assert unknown.json()["__type"] == "MissingAuthenticationTokenException"
        assert unknown.headers["content-type"] == WIRE


def test_wire_protocol_roles_prefixes_and_errors(secured: Settings, log: Log) -> None:
    new = "streaming-0a1b2c3d4e5f-new"
    with client_for(secured, log) as client:
        denied = wire(client, "CreateStream", {"StreamName": new, "ShardCount": 1}, sigv4(PRODUCER))
        assert (denied.status_code, denied.json()["__type"]) == (403, "AccessDeniedException")
        assert (
            wire(client, "CreateStream", {"StreamName": new, "ShardCount": 1}, sigv4(ADMIN)).status_code
            == 200
        )
        again = wire(client, "CreateStream", {"StreamName": new}, sigv4(ADMIN))
        assert again.json()["__type"] == "ResourceInUseException"
        outside = wire(client, "CreateStream", {"StreamName": "elsewhere"}, sigv4(ADMIN))
        assert outside.status_code == 422
        other = wire(client, "DescribeStream", {"StreamName": GEO_STREAM}, sigv4(OTHER))
        assert (other.status_code, other.json()["__type"]) == (403, "AccessDeniedException")
        unknown_op = wire(client, "GetRecords", {"StreamName": GEO_STREAM}, sigv4(PRODUCER))
        assert (unknown_op.status_code, unknown_op.json()["__type"]) == (400, "UnknownOperationException")
        missing = wire(client, "PutRecord", {"StreamName": "streaming-0a1b2c3d4e5f-nope", "Data": "e30=",
                                             "PartitionKey": "k"}, sigv4(PRODUCER))  # fmt: skip
        assert missing.json()["__type"] == "ResourceNotFoundException"
        no_ind = base64.b64encode(b'{"country": "Albania"}').decode()
        refused = wire(client, "PutRecord", {"StreamName": GEO_STREAM, "Data": no_ind, "PartitionKey": "k"},
                       sigv4(PRODUCER))  # fmt: skip
        assert refused.status_code == 422 and "'ind'" in refused.json()["message"]
        assert wire(client, "DeleteStream", {"StreamName": new}, sigv4(ADMIN)).status_code == 200
    assert total(log, GEO_STREAM) == 0


def v3_url(log: Log, topic: str = GEO) -> str:
    return f"/v3/clusters/{cluster_id_of(log.url)}/topics/{topic}/records"


def test_v3_record_keeps_headers_key_and_timestamp(settings: Settings, log: Log) -> None:
    record = {
        "headers": [{"name": "trace", "value": base64.b64encode(b"t-1").decode()}, {"name": "empty"}],
        "key": {"type": "BINARY", "data": base64.b64encode(b"\x00k").decode()},
        "value": {"type": "STRING", "data": orjson.dumps(GEO_RECORD).decode()},
        "timestamp": "2021-02-03T04:05:06.5+01:00",
    }
    with client_for(settings, log) as client:
        answer = client.post(v3_url(log), json=record)
        assert answer.status_code == 200, answer.text
        assert answer.json()["timestamp"] == "2021-02-03T03:05:06.500Z"
        assert answer.json()["key"] == {"type": "BINARY", "size": 2}
    (stored,) = read_all(log, GEO)
    assert stored.key == b"\x00k" and orjson.loads(stored.value) == GEO_RECORD
    assert stored.headers == (("trace", b"t-1"), ("empty", None))
    assert stored.timestamp == 1612321506.5  # 2021-02-03T03:05:06.5Z


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"value": {"type": "AVRO", "data": {}}}, 415, 41501),
        ({"value": {"type": "JSON", "data": {}, "schema_id": 1}}, 415, 41501),
        ({"value": {"type": "BINARY", "data": "!"}}, 422, 42206),
        ({"value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": "yesterday"}, 422, 42206),
        ({"value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": "1969-12-31T23:59:59Z"}, 422, 42206),
        (
            {"value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": "9999-12-31T23:59:59-01:00"},
            422,
            42206,
        ),
        ({"value": {"type": "JSON", "data": GEO_RECORD}, "partition_id": 7}, 422, 42202),
        ({"value": {"type": "JSON", "data": {"country": "Albania"}}}, 422, 42206),
        ({"key": {"type": "STRING", "data": "k"}}, 422, 42206),
    ],
)
def test_v3_record_errors(settings: Settings, log: Log, body: dict, status: int, code: int) -> None:
    with client_for(settings, log) as client:
        answer = client.post(v3_url(log), json=body)
    assert (answer.status_code, answer.json()["error_code"]) == (status, code), answer.text
    assert total(log, GEO) == 0


def test_v3_cluster_id_is_the_logs_and_others_are_404(settings: Settings, log: Log) -> None:
    with client_for(settings, log) as client:
        (cluster,) = client.get("/v3/clusters").json()["data"]
        assert cluster["cluster_id"] == cluster_id_of(log.url)
        assert client.get(f"/v3/clusters/{cluster['cluster_id']}").status_code == 200
        wrong = client.post(f"/v3/clusters/other/topics/{GEO}/records", json={"value": {"data": GEO_RECORD}})
        assert (wrong.status_code, wrong.json()["error_code"]) == (404, 40401)


def test_v3_batch_207_and_idempotent_retry(settings: Settings, log: Log) -> None:
    entries = [
        {"id": "a", "value": {"data": GEO_RECORD}},
        {"id": "b", "value": {"data": {"country": "Albania"}}},
        {"id": "c", "value": {"data": {**GEO_RECORD, "ind": 2}}},
    ]
    headers = {"Idempotency-Key": "batch-1"}
    with client_for(settings, log) as client:
        first = client.post(v3_url(log) + ":batch", json={"entries": entries}, headers=headers)
        assert first.status_code == 207
        assert [s["id"] for s in first.json()["successes"]] == ["a", "c"]
        assert [f["id"] for f in first.json()["failures"]] == ["b"]
        retry = client.post(v3_url(log) + ":batch", json={"entries": entries}, headers=headers)
        placed = [(s["id"], s["partition_id"], s["offset"]) for s in first.json()["successes"]]
        assert [(s["id"], s["partition_id"], s["offset"]) for s in retry.json()["successes"]] == placed
        other = client.post(v3_url(log) + ":batch", json={"entries": entries[:1]}, headers=headers)
        assert (other.status_code, other.json()["error_code"]) == (422, 42207)
        duplicate = client.post(v3_url(log) + ":batch", json={"entries": [entries[0], entries[0]]})
        assert (duplicate.status_code, duplicate.json()["error_code"]) == (422, 42206)
    assert total(log, GEO) == 2


def test_v2_partition_routes_and_brokers(settings: Settings, log: Log) -> None:
    json_type = {"Content-Type": "application/vnd.kafka.json.v2+json"}
    with client_for(settings, log) as client:
        assert client.get("/brokers").json() == {"brokers": [0]}
        assert [p["partition"] for p in client.get(f"/topics/{GEO}/partitions").json()] == [0, 1, 2]
        assert client.get(f"/topics/{GEO}/partitions/2").json()["leader"] == 0
        assert client.get(f"/topics/{GEO}/partitions/3").json()["error_code"] == 40402
        placed = client.post(f"/topics/{GEO}/partitions/2", json={"records": [{"value": GEO_RECORD}]},
                             headers=json_type)  # fmt: skip
        assert placed.json()["offsets"][0]["partition"] == 2
        named = {"records": [{"value": GEO_RECORD, "partition": 1}]}
        own = client.post(f"/topics/{GEO}/partitions/2", json=named, headers=json_type)
        assert own.status_code == 422
    assert log.end_offsets(GEO) == {0: 0, 1: 0, 2: 1}


def test_wire_put_records_retry_with_an_idempotency_key_stores_once(settings: Settings, log: Log) -> None:
    data = [base64.b64encode(orjson.dumps({**GEO_RECORD, "ind": i})).decode() for i in range(5)]
    entries = [{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(data)]
    body = {"StreamName": GEO_STREAM, "Records": entries}
    key = {"Idempotency-Key": "wire-1"}
    with client_for(settings, log) as client:
        first = wire(client, "PutRecords", body, key).json()["Records"]
        assert wire(client, "PutRecords", body, key).json()["Records"] == first
        other = wire(client, "PutRecords", {**body, "Records": entries[:2]}, key)
        assert (other.status_code, other.json()["__type"]) == (422, "InvalidArgumentException")
    assert total(log, GEO_STREAM) == 5
