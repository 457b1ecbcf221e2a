"""The Kinesis proxy routes of the ingestion API, on the memory and the embedded log."""

from __future__ import annotations

import base64

import orjson
import pytest

from pinpipe.config import Settings
from pinpipe.log.base import Log
from pinpipe.log.partitioner import partition_for_key
from tests.unit import api_support
from tests.unit.api_support import (
    GEO_RECORD,
    GEO_STREAM,
    PIN,
    PIN_RECORD,
    PIN_STREAM,
    client_for,
    read_all,
    total,
    with_api,
)

log = api_support.log  # the memory and embedded logs, shared with the other API tests
client = api_support.client


def put_record(client, stream: str, data, key: str = "k", headers: dict | None = None):
    body = {"StreamName": stream, "Data": data, "PartitionKey": key}
    return client.put(f"/streams/{stream}/record", json=body, headers=headers or {})


def test_put_record_with_a_json_object(client, log: Log, settings: Settings) -> None:
    response = put_record(client, PIN_STREAM, PIN_RECORD, key="desired-name")
    assert response.status_code == 200
    body = response.json()
    partition = partition_for_key(b"desired-name", settings.log.partitions)
    assert body == {"ShardId": f"shardId-{partition:012d}", "SequenceNumber": "0"}
    (stored,) = read_all(log, PIN_STREAM)
    assert stored.key == b"desired-name" and stored.value == orjson.dumps(PIN_RECORD)
    assert total(log, PIN) == 0  # streams and topics are apart


def test_put_record_with_base64_data(client, log: Log) -> None:
    data = base64.b64encode(orjson.dumps(GEO_RECORD)).decode()
    assert put_record(client, GEO_STREAM, data).status_code == 200
    assert read_all(log, GEO_STREAM)[0].value == orjson.dumps(GEO_RECORD)


def test_put_record_errors_are_kinesis_style(client, log: Log) -> None:
    cases = [
        (put_record(client, "streaming-nope-pin", PIN_RECORD), 404, "ResourceNotFoundException"),
        (put_record(client, GEO_STREAM, {**GEO_RECORD, "ind": "x"}), 422, "ValidationException"),
        (put_record(client, GEO_STREAM, "not base64!"), 400, "SerializationException"),
        (put_record(client, GEO_STREAM, base64.b64encode(b"not json").decode()), 422, "ValidationException"),
        (put_record(client, GEO_STREAM, GEO_RECORD, key=""), 422, "ValidationException"),
        (put_record(client, GEO_STREAM, GEO_RECORD, key="k" * 257), 422, "ValidationException"),
        (client.put(f"/streams/{GEO_STREAM}/record", json={"Data": GEO_RECORD}), 422, "ValidationException"),
        (client.put(f"/streams/{GEO_STREAM}/record", content=b"{oops"), 400, "SerializationException"),
        (
            client.put(f"/streams/{GEO_STREAM}/record", content=b"{}", headers={"Content-Type": "text/xml"}),
            415,
            "ValidationException",
        ),
    ]
    for response, status, kinesis_type in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["__type"] == kinesis_type and body["message"]
        assert body["error_code"] // 100 == status
    assert total(log, GEO_STREAM) == 0


def test_put_records_reports_failures_one_by_one(client, log: Log) -> None:
    records = [
        {"Data": GEO_RECORD, "PartitionKey": "a"},
        {"Data": {**GEO_RECORD, "latitude": "x"}, "PartitionKey": "b"},
        {"Data": base64.b64encode(orjson.dumps({**GEO_RECORD, "ind": 2})).decode(), "PartitionKey": "c"},
    ]
    response = client.put(
        f"/streams/{GEO_STREAM}/records", json={"StreamName": GEO_STREAM, "Records": records}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["FailedRecordCount"] == 1
    ok, failed, ok2 = body["Records"]
    assert ok["ShardId"].startswith("shardId-") and ok["SequenceNumber"].isdigit()
    assert failed["ErrorCode"] == "InvalidArgumentException" and "latitude" in failed["ErrorMessage"]
    assert ok2["SequenceNumber"].isdigit()
    assert sorted(orjson.loads(r.value)["ind"] for r in read_all(log, GEO_STREAM)) == [2, 7528]


@pytest.mark.parametrize(
    ("body", "status", "kinesis_type"),
    [
        ({"Records": []}, 422, "ValidationException"),
        ({"Records": [{"Data": GEO_RECORD, "PartitionKey": "a"}] * 501}, 422, "ValidationException"),
        (
            {"Records": [{"Data": GEO_RECORD, "PartitionKey": "a"}, {"Data": GEO_RECORD}]},
            422,
            "ValidationException",
        ),
        (
            {"Records": [{"Data": GEO_RECORD, "PartitionKey": "a"}, {"Data": "%%", "PartitionKey": "a"}]},
            400,
            "SerializationException",
        ),
        ({"records": [{"Data": GEO_RECORD, "PartitionKey": "a"}]}, 422, "ValidationException"),
    ],
)
def test_put_records_malformed_writes_nothing(client, log: Log, body, status, kinesis_type) -> None:
    response = client.put(f"/streams/{GEO_STREAM}/records", json=body)
    assert (response.status_code, response.json()["__type"]) == (status, kinesis_type)
    assert total(log, GEO_STREAM) == 0


def test_put_records_limit_follows_max_records(settings: Settings, log: Log) -> None:
    with client_for(with_api(settings, max_records=3), log) as client:
        records = [{"Data": GEO_RECORD, "PartitionKey": str(i)} for i in range(4)]
        response = client.put(f"/streams/{GEO_STREAM}/records", json={"Records": records})
        assert response.status_code == 422 and "less than or equal to 3" in response.json()["message"]


def test_idempotency_on_streams(client, log: Log) -> None:
    headers = {"Idempotency-Key": "run-1-geo"}
    first = put_record(client, GEO_STREAM, GEO_RECORD, headers=headers).json()
    assert put_record(client, GEO_STREAM, GEO_RECORD, headers=headers).json() == first
    records = [{"Data": {**GEO_RECORD, "ind": i}, "PartitionKey": str(i)} for i in range(3)]
    batch = client.put(
        f"/streams/{GEO_STREAM}/records", json={"Records": records}, headers={"Idempotency-Key": "b"}
    )
    again = client.put(
        f"/streams/{GEO_STREAM}/records", json={"Records": records}, headers={"Idempotency-Key": "b"}
    )
    assert batch.json() == again.json()
    assert total(log, GEO_STREAM) == 4


ADMIN = {"X-API-Key": "admin-key-0123456789"}


def test_stream_admin_routes(log: Log, settings: Settings) -> None:
    admin_settings = with_api(settings, admin_keys=(ADMIN["X-API-Key"],))
    with client_for(admin_settings, log) as client:
        listed = client.get("/streams", headers=ADMIN).json()
        assert listed["HasMoreStreams"] is False
        expected = sorted(f"streaming-{settings.prefix}-{k}" for k in ("geo", "pin", "user"))
        assert listed["StreamNames"] == expected
        described = client.get(f"/streams/{PIN_STREAM}", headers=ADMIN).json()["StreamDescription"]
        assert described["StreamName"] == PIN_STREAM and described["StreamStatus"] == "ACTIVE"
        assert [s["ShardId"] for s in described["Shards"]] == [f"shardId-{p:012d}" for p in range(3)]

        new = "streaming-0a1b2c3d4e5f-extra"
        assert client.post(f"/streams/{new}", json={"ShardCount": 2}, headers=ADMIN).json() == {}
        assert log.topics()[new] == 2
        again = client.post(f"/streams/{new}", headers=ADMIN)
        assert (again.status_code, again.json()["__type"]) == (409, "ResourceInUseException")
        bad_count = client.post("/streams/streaming-x-bad", json={"ShardCount": 0}, headers=ADMIN)
        assert bad_count.status_code == 422
        assert client.post("/streams/bad name!", headers=ADMIN).status_code == 400
        # created streams are streaming-<prefix>-<name>, so the two dialects do not mix on a shared log
        assert client.post("/streams/plain", headers=ADMIN).status_code == 400
        assert put_record(client, new, {"any": "thing"}, headers=ADMIN).status_code == 200  # no schema
        assert client.delete(f"/streams/{new}", headers=ADMIN).json() == {}
        assert new not in log.topics()
        gone = client.delete(f"/streams/{new}", headers=ADMIN)
        assert (gone.status_code, gone.json()["__type"]) == (404, "ResourceNotFoundException")
        assert client.get("/streams/nope", headers=ADMIN).status_code == 404


def test_raw_base64_on_a_stream_without_schema_is_stored_as_bytes(log: Log, settings: Settings) -> None:
    name = "streaming-0a1b2c3d4e5f-raw"
    with client_for(with_api(settings, admin_keys=(ADMIN["X-API-Key"],)), log) as client:
        assert client.post(f"/streams/{name}", headers=ADMIN).status_code == 200
        data = base64.b64encode(b"\x00\x01binary").decode()
        assert put_record(client, name, data, headers=ADMIN).status_code == 200
    assert read_all(log, name)[0].value == b"\x00\x01binary"


def test_dialects_do_not_cross(client) -> None:
    """A stream is not a REST proxy topic and the other way round."""
    assert (
        client.post(
            f"/topics/{PIN_STREAM}",
            json={"records": [{"value": {}}]},
            headers={"Content-Type": "application/json"},
        ).status_code
        == 404
    )
    assert put_record(client, PIN, PIN_RECORD).status_code == 404
