"""What the log contract does not show about Kinesis (moto server from infra/moto.sh): PutRecords limits
and retries, dense offsets that any process derives alike, key encoding, streams re-created, and the
ingestion API's Kinesis routes on a Kinesis stream log next to an embedded topic log."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from pinpipe.config import Settings
from pinpipe.errors import LogError
from pinpipe.ingest import create_app
from pinpipe.log.base import OutgoingRecord, Record
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.kinesis import KinesisLog
from pinpipe.log.kinesis.io import MAX_BATCH_BYTES, MAX_RECORDS, decode_key, encode_key
from pinpipe.log.partitioner import partition_for_key
from pinpipe.schema import stream_name, topic_name
from tests.cloud import aws_env

__all__ = ["aws_env"]
pytestmark = pytest.mark.kinesis


class _Recording:
    """A real Kinesis client that records PutRecords calls and can fail some records of the first one."""

    def __init__(self, client: Any, fail_first: int = 0) -> None:
        self.client, self.fail_first = client, fail_first
        self.batches: list[list[dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(Records)
        if len(self.batches) == 1 and self.fail_first:
            # the first ``fail_first`` records are throttled, the rest land
            done = self.client.put_records(StreamName=StreamName, Records=Records[self.fail_first :])
            throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
            return {
                "FailedRecordCount": self.fail_first,
                "Records": [throttled] * self.fail_first + done["Records"],
            }
        return self.client.put_records(StreamName=StreamName, Records=Records)


def open_kinesis(tmp_path: Path, name: str = "state.db", **kwargs: Any) -> KinesisLog:
    return KinesisLog(f"kinesis://?state={tmp_path / name}", **kwargs)


def read_everything(log: KinesisLog, topic: str, count: int) -> list[Record]:
    reader = log.reader("g-read", [topic])
    records: list[Record] = []
    for _ in range(100):
        records.extend(reader.poll(10_000, 0.2))
        if len(records) >= count:
            break
    reader.close()
    return records


def test_put_records_batches_stay_within_kinesis_limits(tmp_path: Path, aws_env: dict[str, str]) -> None:
    log = open_kinesis(tmp_path)
    recording = _Recording(log.client)
    log.client = recording
    log.create_topic("limits", 1)
    small = [OutgoingRecord(f"s{i}".encode()) for i in range(1_200)]
    big = [OutgoingRecord(bytes([65 + i]) * 900_000) for i in range(12)]
    placed = log.writer().append("limits", small + big)
    assert placed == [(0, i) for i in range(1_212)]
    sizes = [sum(len(r["Data"]) + len(r["PartitionKey"]) for r in batch) for batch in recording.batches]
    assert all(len(batch) <= MAX_RECORDS for batch in recording.batches)
    assert all(size <= MAX_BATCH_BYTES for size in sizes)
    assert len(recording.batches) >= 5  # 500 + 500 + (200 + 5 big) + ... over 5 MiB splits
    assert [r.value for r in read_everything(log, "limits", 1_212)] == [r.value for r in small + big]
    log.close()


def test_failed_records_of_a_batch_are_retried_once_each(tmp_path: Path, aws_env: dict[str, str]) -> None:
    log = open_kinesis(tmp_path)
    log.client = _Recording(log.client, fail_first=3)
    log.create_topic("retry", 1)
    sent = [OutgoingRecord(f"r{i}".encode()) for i in range(10)]
    placed = log.writer().append("retry", sent)
    assert sorted(placed) == [(0, i) for i in range(10)]
    records = read_everything(log, "retry", 10)
    assert sorted(r.value for r in records) == sorted(r.value for r in sent)
    assert {(r.partition, r.offset): r.value for r in records} == {
        p: s.value for p, s in zip(placed, sent, strict=True)
    }
    assert log.end_offsets("retry") == {0: 10}
    log.close()


def test_offsets_are_dense_ranks_that_a_fresh_state_file_derives_alike(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    first = open_kinesis(tmp_path, "a.db", partitions=2)
    first.create_topic("dense")
    keys = [f"user-{i}".encode() for i in range(40)]
    placed = first.writer().append("dense", [OutgoingRecord(b"v", key=k) for k in keys])
    assert [p for p, _ in placed] == [partition_for_key(k, 2) for k in keys]
    for p in (0, 1):
        assert [o for q, o in placed if q == p] == list(range(sum(q == p for q, _ in placed)))
    raw = first.client.get_records(ShardIterator=first.iterator("dense", 0, "TRIM_HORIZON"))["Records"]
    assert raw and all(r["PartitionKey"] in {k.decode() for k in keys} for r in raw)

    second = open_kinesis(tmp_path, "b.db")  # another process with its own, empty index
    assert second.end_offsets("dense") == first.end_offsets("dense")
    reader = second.reader("g", ["dense"])
    reader.seek("dense", 0, second.end_offsets("dense")[0])  # nothing more to read there
    reader.seek("dense", 1, 3)
    got = reader.poll(1, 5.0)
    reader.close()
    expected = next(i for i, pos in enumerate(placed) if pos == (1, 3))
    assert [(r.partition, r.offset, r.key) for r in got] == [(1, 3, keys[expected])]
    first.close()
    second.close()


@pytest.mark.parametrize(
    "key",
    [None, b"", b"plain", "caf\u00e9 ".encode(), b"\xff\xfe", b"pinpipe~none", b"x" * 256, b"\xff" * 183],
)
def test_keys_survive_the_partition_key(key: bytes | None) -> None:
    encoded = encode_key(key)
    assert 1 <= len(encoded) <= 256 and decode_key(encoded) == key


@pytest.mark.parametrize("key", [b"x" * 300, b"\xff" * 184])
def test_a_key_too_long_for_a_partition_key_is_a_clear_error(key: bytes) -> None:
    with pytest.raises(LogError, match="does not fit a Kinesis partition key"):
        encode_key(key)


def test_a_recreated_stream_starts_from_offset_zero(tmp_path: Path, aws_env: dict[str, str]) -> None:
    log = open_kinesis(tmp_path)
    log.create_topic("again", 1)
    log.writer().append("again", [OutgoingRecord(b"old")] * 3)
    log.delete_topic("again")
    assert "again" not in log.topics()
    other = open_kinesis(tmp_path)  # same state file, a process that never saw the old stream
    other.create_topic("again", 1)
    assert other.writer().append("again", [OutgoingRecord(b"new")]) == [(0, 0)]
    assert [r.value for r in read_everything(other, "again", 1)] == [b"new"]
    log.close()
    other.close()


def test_api_streams_on_kinesis_topics_on_the_embedded_log(tmp_path: Path, aws_env: dict[str, str]) -> None:
    prefix = uuid.uuid4().hex[:12]  # the moto server lives for the whole session
    settings = Settings(workdir=tmp_path, prefix=prefix, log={"stream_url": "kinesis://"})  # type: ignore[arg-type]
    state = parse_qs(urlsplit(settings.stream_log_url).query)["state"]  # percent-encoded in the URL
    assert settings.stream_log_url.startswith("kinesis://?state=")
    assert state == [str(tmp_path.resolve() / "kinesis-state.db")]
    stream = stream_name(prefix, "pin")
    topic = topic_name(prefix, "pin")
    with TestClient(create_app(settings)) as client:  # creates the topics and the streams
        described = client.get(f"/streams/{stream}")
        assert described.status_code == 200 and len(described.json()["StreamDescription"]["Shards"]) == 3
        body = {"StreamName": stream, "Data": {"index": 1, "title": "t\u00e9 "}, "PartitionKey": "p-1"}
        first = client.put(f"/streams/{stream}/record", json=body, headers={"Idempotency-Key": "r-1-pin"})
        again = client.put(f"/streams/{stream}/record", json=body, headers={"Idempotency-Key": "r-1-pin"})
        assert first.status_code == 200 and again.json() == first.json()
        shard = partition_for_key(b"p-1", 3)
        assert first.json() == {"ShardId": f"shardId-{shard:012d}", "SequenceNumber": "0"}
        many = {
            "StreamName": stream,
            "Records": [{"Data": {"index": i}, "PartitionKey": f"k{i}"} for i in range(20)],
        }
        result = client.put(f"/streams/{stream}/records", json=many).json()
        assert result["FailedRecordCount"] == 0 and len(result["Records"]) == 20
    kinesis = KinesisLog(settings.stream_log_url)
    assert sum(kinesis.end_offsets(stream).values()) == 21
    (record,) = [r for r in read_everything(kinesis, stream, 21) if r.key == b"p-1"]
    assert orjson.loads(record.value) == {"index": 1, "title": "t\u00e9 "}
    kinesis.close()
    embedded = EmbeddedLog(settings.log_url)
    assert stream not in embedded.topics() and sum(embedded.end_offsets(topic).values()) == 0
    embedded.close()


def test_a_state_file_without_fingerprints_gains_the_column(tmp_path: Path) -> None:
    """A state file written before fingerprints existed keeps its keys and stores fingerprints after."""
    import sqlite3

    from pinpipe.log.kinesis.state import KinesisStateStore

    path = tmp_path / "old-state.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE idempotency (stream TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL,"
            " offset INTEGER NOT NULL, PRIMARY KEY (stream, key)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO idempotency VALUES ('s', 'old', 0, 7)")
    conn.close()
    store = KinesisStateStore(path)
    store.remember("s", {"new": (1, 3, "f")})
    assert store.placed("s", ["old", "new"]) == {"old": (0, 7, None), "new": (1, 3, "f")}
    store.close()
