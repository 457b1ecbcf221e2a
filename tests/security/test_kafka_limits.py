"""What a Kafka log cannot take fails alone, as the client's error, found before the append.

- Kafka 4 refuses a record stamped more than ``log.message.timestamp.after.max.ms`` (default one hour)
  after the broker's clock: the v3 produce of a timestamp in 2100 was a 500 / 50002 ("Broker: Invalid
  timestamp"), the request's valid records refused with it.
- Kafka's time retention counts from a record's timestamp: three v3 records stamped 1970-01-02 were
  acknowledged (200) and gone from the topic 30 s later (its low watermark moved from 0 to 3).
- Kafka takes ``.`` and ``_`` for one character in topic names: CreateStream of ``a_b`` beside ``a.b`` was
  a 500 / 50002.
- librdkafka refuses a record over ``message.max.bytes`` (1,000,000 by default) when it is queued: a v2
  request holding a 2 MB value was a 500 / 50001 (internal error), and a record queued before it was
  stored all the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from pinpipe.config import Settings, load_settings
from pinpipe.ingest import create_app
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import Kind, topic_name
from tests.unit.api_support import with_api
from tests.unit.samples import GEO_RECORD

pytestmark = pytest.mark.kafka


@dataclass
class OnKafka:
    api: TestClient
    log: KafkaLog
    prefix: str

    def v3(self, kind: Kind) -> str:
        cluster = self.api.get("/v3/clusters").json()["data"][0]["cluster_id"]
        return f"/v3/clusters/{cluster}/topics/{topic_name(self.prefix, kind)}/records"


@pytest.fixture
def kafka(kafka_bootstrap: str, settings: Settings) -> Iterator[OnKafka]:
    prefix = f"t{time.time_ns()}"  # topics of their own on the session's broker
    url = f"kafka://{kafka_bootstrap}"
    on_kafka = load_settings(workdir=settings.workdir, prefix=prefix, **{"log.url": url})
    log = KafkaLog(url, partitions=1)
    try:
        with TestClient(create_app(on_kafka, log=log)) as api:
            yield OnKafka(api, log, prefix)
    finally:
        log.close()


def stored(log: KafkaLog, topic: str) -> list[bytes]:
    """The values ``topic`` holds: read until two seconds pass without a record (or 30 s in all)."""
    reader = log.reader(f"check-{time.time_ns()}", [topic])
    values: list[bytes] = []
    deadline, quiet = time.monotonic() + 30, time.monotonic() + 5  # the first poll also joins the group
    while time.monotonic() < min(deadline, quiet):
        batch = reader.poll(1000, 0.5)
        if batch:
            values += [r.value for r in batch]
            quiet = time.monotonic() + 2
    reader.close()
    return sorted(values)


def entry(name: str, timestamp: str) -> dict[str, object]:
    return {"id": name, "value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": timestamp}


def stamp(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


@pytest.mark.parametrize("when", ["2100-01-01T00:00:00Z", "1970-01-02T00:00:00Z"])
def test_a_timestamp_kafka_would_refuse_or_expire_fails_alone_as_the_clients_error(
    kafka: OnKafka, when: str
) -> None:
    records = kafka.v3("geo")
    one = kafka.api.post(records, json={"value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": when})
    assert one.status_code == 422 and one.json()["error_code"] == 42206, one.text
    assert "timestamp" in one.json()["message"]
    entries = [entry("hour ago", stamp(-3600)), entry("odd", when), entry("soon", stamp(600))]
    batch = kafka.api.post(f"{records}:batch", json={"entries": entries})
    assert batch.status_code == 207, batch.text
    assert sorted(s["id"] for s in batch.json()["successes"]) == ["hour ago", "soon"]
    (failure,) = batch.json()["failures"]
    assert failure["id"] == "odd" and failure["error_code"] == 42206


def test_a_record_over_the_producers_limit_fails_alone_and_nothing_is_stored_twice(kafka: OnKafka) -> None:
    topic = topic_name(kafka.prefix, "user")
    big = {"ind": 2, "first_name": "x" * 2_000_000}
    body = {"records": [{"value": {"ind": 1}}, {"value": big}, {"value": {"ind": 3}}]}
    headers = {"Content-Type": "application/vnd.kafka.json.v2+json", "Idempotency-Key": "with-a-big-one"}
    for _ in range(2):  # a retry finds the first answer's records
        answer = kafka.api.post(f"/topics/{topic}", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        offsets = answer.json()["offsets"]
        assert [o["error_code"] for o in offsets] == [None, 42206, None]
        assert "message.max.bytes" in offsets[1]["error"]
    v3 = kafka.api.post(kafka.v3("user"), json={"value": {"type": "JSON", "data": big}})
    assert v3.status_code == 422 and v3.json()["error_code"] == 42206
    assert stored(kafka.log, topic) == [b'{"ind":1}', b'{"ind":3}']


def test_a_stream_name_kafka_takes_for_an_existing_one_is_409(
    kafka_bootstrap: str, settings: Settings
) -> None:
    """Kafka refuses ``a_b`` beside ``a.b`` (one name to it): CreateStream answered 500 / 50002."""
    prefix = f"t{time.time_ns()}"
    url, admin = f"kafka://{kafka_bootstrap}", "admin-key-0123456789"
    on_kafka = with_api(
        load_settings(workdir=settings.workdir, prefix=prefix, **{"log.url": url}), admin_keys=(admin,)
    )
    log = KafkaLog(url, partitions=1)
    try:
        with TestClient(create_app(on_kafka, log=log)) as api:
            first = api.post(f"/streams/streaming-{prefix}-a.b", headers={"X-API-Key": admin})
            assert first.status_code == 200, first.text
            twin = api.post(f"/streams/streaming-{prefix}-a_b", headers={"X-API-Key": admin})
            assert twin.status_code == 409 and twin.json()["error_code"] == 40901, twin.text
            assert f"streaming-{prefix}-a.b" in twin.json()["message"]
    finally:
        log.close()
