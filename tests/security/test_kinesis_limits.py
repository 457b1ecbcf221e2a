"""A record a Kinesis stream cannot hold (over 1 MiB of data and partition key; headers or a producer's
timestamp) fails alone, as the client's error: the Kinesis log refused the whole append, so PutRecords
answered 500 / 50002 and stored none of the request's valid records."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pinpipe.config import Settings
from pinpipe.ingest import create_app
from pinpipe.ingest.rest_v3 import cluster_id_of
from pinpipe.log.kinesis import KinesisLog
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import stream_name, topic_name
from tests.cloud import aws_env
from tests.unit.api_support import total

__all__ = ["aws_env"]  # fixture: the AWS variables point at the session's moto server
pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def streams(
    moto_endpoint: str, settings: Settings, tmp_path: Path
) -> Iterator[tuple[TestClient, KinesisLog, str]]:
    prefix = f"k{uuid.uuid4().hex[:12]}"  # streams of their own on the session's moto server
    on_kinesis = settings.model_copy(update={"prefix": prefix})
    log = KinesisLog(f"kinesis://?endpoint={moto_endpoint}&state={tmp_path / 'state.db'}", partitions=1)
    try:
        with TestClient(create_app(on_kinesis, log=MemoryLog(auto_create=False), stream_log=log)) as api:
            yield api, log, stream_name(prefix, "user")
    finally:
        log.close()


def test_a_record_over_a_kinesis_records_limit_fails_alone(
    streams: tuple[TestClient, KinesisLog, str],
) -> None:
    api, log, name = streams
    big = {"ind": 2, "first_name": "x" * (1024 * 1024)}
    body = {"Records": [{"Data": {"ind": 1}, "PartitionKey": "a"}, {"Data": big, "PartitionKey": "b"}]}
    answer = api.put(f"/streams/{name}/records", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedRecordCount"] == 1
    failed = answer.json()["Records"][1]
    assert failed["ErrorCode"] == "InvalidArgumentException" and "1 MiB" in failed["ErrorMessage"]
    one = api.put(f"/streams/{name}/record", json={"Data": big, "PartitionKey": "c"})
    assert one.status_code == 422 and one.json()["error_code"] == 42206, one.text
    assert total(log, name) == 1


def test_a_key_no_kinesis_partition_key_holds_fails_alone(
    streams: tuple[TestClient, KinesisLog, str],
) -> None:
    """A PartitionKey starting ``pinpipe~`` (the log's own marker) is stored base64-encoded, which must
    still fit Kinesis's 256 characters."""
    api, log, name = streams
    marked = "pinpipe~" + "x" * 248
    body = {
        "Records": [{"Data": {"ind": 1}, "PartitionKey": "a"}, {"Data": {"ind": 2}, "PartitionKey": marked}]
    }
    answer = api.put(f"/streams/{name}/records", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedRecordCount"] == 1
    assert "partition key" in answer.json()["Records"][1]["ErrorMessage"]
    assert total(log, name) == 1


def test_a_record_with_headers_or_a_timestamp_fails_alone_on_topics_on_kinesis(
    moto_endpoint: str, settings: Settings, tmp_path: Path
) -> None:
    """The REST proxy's topics on a Kinesis log: a Kinesis record carries neither headers nor a producer's
    timestamp, so a record with either is refused alone (42206), never stored without them."""
    prefix = f"k{uuid.uuid4().hex[:12]}"
    log = KinesisLog(f"kinesis://?endpoint={moto_endpoint}&state={tmp_path / 'state.db'}", partitions=1)
    topic = topic_name(prefix, "user")
    records = [
        {"value": {"ind": 1}, "headers": [{"name": "trace", "value": None}]},
        {"value": {"ind": 2}},
    ]
    try:
        with TestClient(create_app(settings.model_copy(update={"prefix": prefix}), log=log)) as api:
            v2 = api.post(
                f"/topics/{topic}",
                json={"records": records},
                headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            )
            v3 = api.post(
                f"/v3/clusters/{cluster_id_of(log.url)}/topics/{topic}/records",
                json={"value": {"data": {"ind": 3}}, "timestamp": "2024-01-01T00:00:00Z"},
            )
        offsets = v2.json()["offsets"]
        assert offsets[0]["error_code"] == 42206 and "headers" in offsets[0]["error"]
        assert offsets[1]["error_code"] is None
        assert (v3.status_code, v3.json()["error_code"]) == (422, 42206), v3.text
        assert "timestamps" in v3.json()["message"]
        assert total(log, topic) == 1
    finally:
        log.close()
