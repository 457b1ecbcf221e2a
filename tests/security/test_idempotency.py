"""Idempotency keys that cannot lie: scoped to the API key, bound to the request body and record count.

Each test reproduces one way the old ``Idempotency-Key`` handling answered 200 for a request it did not
store as sent (see :mod:`pinpipe.ingest.idempotency` for the design).
"""

from __future__ import annotations

import pytest

from pinpipe.config import Settings
from pinpipe.log.base import Log
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import (
    GEO_RECORD,
    GEO_STREAM,
    KAFKA_JSON,
    USER,
    client,
    client_for,
    log,
    read_all,
    total,
    with_api,
)

__all__ = ["client", "log"]  # fixtures: memory and embedded logs

KEY_A = "producer-a-secret-0001"
KEY_B = "producer-b-secret-0002"


def produce(client, records: list, key: str, api_key: str | None = None):
    headers = {**KAFKA_JSON, "Idempotency-Key": key}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    return client.post(f"/topics/{USER}", json={"records": records}, headers=headers)


def users(*inds: int) -> list[dict]:
    return [{"value": {"ind": i}} for i in inds]


def test_the_same_key_with_another_body_is_refused_and_stores_nothing(client, log: Log) -> None:
    first = produce(client, users(1), "order-1")
    assert first.status_code == 200
    other = produce(client, users(2), "order-1")
    assert other.status_code == 422
    assert other.json()["error_code"] == 42207
    assert total(log, USER) == 1
    assert [r.value for r in read_all(log, USER)] == [b'{"ind":1}']
    # the original request is still a retry, answered with its offsets
    assert produce(client, users(1), "order-1").json()["offsets"] == first.json()["offsets"]


def test_the_same_key_with_another_body_is_refused_on_streams(client, log: Log) -> None:
    def put(data: dict):
        body = {"Data": data, "PartitionKey": "p"}
        return client.put(f"/streams/{GEO_STREAM}/record", json=body, headers={"Idempotency-Key": "g-1"})

    assert put(GEO_RECORD).status_code == 200
    refused = put({**GEO_RECORD, "ind": 999_999})
    assert refused.status_code == 422
    assert refused.json()["error_code"] == 42207 and refused.json()["__type"] == "InvalidArgumentException"
    assert total(log, GEO_STREAM) == 1


def test_a_client_key_cannot_collide_with_a_record_of_a_multi_record_request(client, log: Log) -> None:
    """Record 0 of a request with key C was stored as event ``C#0``: a one-record request with the
    key ``C#0`` sent first made it vanish while the request was answered 200."""
    single = produce(client, users(100), "C#0").json()["offsets"]
    pair = produce(client, users(0, 1), "C").json()["offsets"]
    assert all(o["error_code"] is None for o in pair)
    assert single[0] not in pair
    assert total(log, USER) == 3
    assert sorted(r.value for r in read_all(log, USER)) == [b'{"ind":0}', b'{"ind":100}', b'{"ind":1}']


@pytest.mark.parametrize("count", [1, 3])
def test_a_retry_with_another_record_count_is_refused(client, log: Log, count: int) -> None:
    first = produce(client, users(0, 1), "batch-7")
    assert first.status_code == 200
    retry = produce(client, users(*range(count)), "batch-7")
    assert retry.status_code == 422 and retry.json()["error_code"] == 42207
    assert total(log, USER) == 2


def test_keys_are_scoped_to_the_api_key_that_used_them(settings: Settings) -> None:
    """One principal cannot pre-claim (or read the offsets of) another principal's key."""
    log = MemoryLog(auto_create=False)
    with client_for(with_api(settings, api_keys=(KEY_A, KEY_B)), log) as c:
        mine = produce(c, users(1), "shared-key", KEY_A)
        theirs = produce(c, users(1), "shared-key", KEY_B)
        other_body = produce(c, users(2), "shared-key", KEY_B)
        assert mine.status_code == theirs.status_code == 200
        assert theirs.json()["offsets"] != mine.json()["offsets"]
        assert other_body.status_code == 422  # B's own key now holds B's first body
        assert produce(c, users(1), "shared-key", KEY_A).json() == mine.json()
    assert total(log, USER) == 2


def test_a_reused_key_is_refused_after_a_restart(settings: Settings) -> None:
    """The fingerprint is stored in the log with the records, not in the API process."""
    url = f"embedded://{settings.workdir.resolve() / 'log'}"
    for body, status in ((users(1), 200), (users(2), 422), (users(1), 200)):
        log = EmbeddedLog(url)
        with client_for(settings, log) as c:
            assert produce(c, body, "k-restart").status_code == status
        log.close()
    log = EmbeddedLog(url)
    assert total(log, USER) == 1
    log.close()


def test_the_same_key_and_body_for_another_partition_is_refused(client, log: Log) -> None:
    """The path's partition is not in the body: a retry to partition 2 of a request stored in partition 1
    was answered 200 with partition 1's offset, and partition 2 got nothing."""
    body = {"records": users(1)}
    headers = {**KAFKA_JSON, "Idempotency-Key": "p-1"}
    first = client.post(f"/topics/{USER}/partitions/1", json=body, headers=headers)
    assert first.json()["offsets"][0]["partition"] == 1
    other = client.post(f"/topics/{USER}/partitions/2", json=body, headers=headers)
    assert other.status_code == 422 and other.json()["error_code"] == 42207, other.text
    assert log.end_offsets(USER)[2] == 0
    again = client.post(f"/topics/{USER}/partitions/1", json=body, headers=headers)
    assert again.json() == first.json()


SAME_BYTES = b'{"records":[{"value":"eyJpbmQiOjF9"}],"value":{"data":"eyJpbmQiOjJ9"}}'
"""One body, three requests: v2 JSON (the string), v2 binary (base64 of ``{"ind":1}``), v3 (the string
``eyJpbmQiOjJ9``)."""


def test_the_same_key_and_bytes_in_another_format_or_dialect_are_refused(settings: Settings) -> None:
    """What a body means depends on its Content-Type and route: the same bytes under another one were
    answered with the first request's offsets, though their records were never stored."""
    log = MemoryLog(auto_create=False)
    topic = "0a1b2c3d4e5f.raw"  # a topic of no kind: values of any JSON type, binary values as bytes
    log.create_topic(topic, 1)
    binary = {"Content-Type": "application/vnd.kafka.binary.v2+json", "Idempotency-Key": "f-1"}
    with client_for(settings, log) as c:
        cluster = c.get("/v3/clusters").json()["data"][0]["cluster_id"]
        first = c.post(f"/topics/{topic}", content=SAME_BYTES, headers=binary)
        assert first.status_code == 200
        as_json = c.post(f"/topics/{topic}", content=SAME_BYTES, headers={**binary, **KAFKA_JSON})
        as_v3 = c.post(
            f"/v3/clusters/{cluster}/topics/{topic}/records",
            content=SAME_BYTES,
            headers={"Content-Type": "application/json", "Idempotency-Key": "f-1"},
        )
        for refused in (as_json, as_v3):
            assert refused.status_code == 422 and refused.json()["error_code"] == 42207, refused.text
        assert c.post(f"/topics/{topic}", content=SAME_BYTES, headers=binary).json() == first.json()
    assert [r.value for r in read_all(log, topic)] == [b'{"ind":1}']


def test_the_same_key_and_bytes_as_put_record_and_put_records_are_refused(client, log: Log) -> None:
    """A body holding both a record and ``Records`` means one record to PutRecord and another to
    PutRecords."""
    body = {
        "Data": GEO_RECORD,
        "PartitionKey": "p",
        "Records": [{"Data": {**GEO_RECORD, "ind": 2}, "PartitionKey": "p"}],
    }
    headers = {"Idempotency-Key": "k-1"}
    assert client.put(f"/streams/{GEO_STREAM}/record", json=body, headers=headers).status_code == 200
    many = client.put(f"/streams/{GEO_STREAM}/records", json=body, headers=headers)
    assert many.status_code == 422 and many.json()["error_code"] == 42207, many.text
    assert total(log, GEO_STREAM) == 1
