"""The Log protocol's contract: the same assertions on every backend (see conftest.LOG_BACKENDS)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pinpipe.errors import IdempotencyConflictError, LogError, TopicNotFoundError
from pinpipe.log.base import Log, LogReader, OutgoingRecord, Record
from pinpipe.log.partitioner import partition_for_key

NewTopic = Callable[..., str]


def drain(reader: LogReader, count: int, timeout: float = 30.0) -> list[Record]:
    """Poll until ``count`` records arrived (or the timeout passed), then one more short poll for extras."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records.extend(reader.poll(count - len(records), 0.5))
    records.extend(reader.poll(100, 0.2))
    return records


def by_partition(records: list[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for rec in records:
        out.setdefault(rec.partition, []).append(rec)
    return out


def test_append_then_poll_returns_records_in_order_per_partition(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    writer = log_backend.writer()
    sent = [OutgoingRecord(f"v{i}".encode(), partition=i % 3) for i in range(30)]
    placed = writer.append(topic, sent[:10]) + writer.append(topic, sent[10:])
    writer.close()
    assert [p for p, _ in placed] == [i % 3 for i in range(30)]
    for p in range(3):
        assert [off for part, off in placed if part == p] == list(range(10))

    reader = log_backend.reader("g-order", [topic])
    records = drain(reader, 30)
    reader.close()
    assert len(records) == 30
    for p, recs in by_partition(records).items():
        assert [r.offset for r in recs] == list(range(10))
        assert [r.value for r in recs] == [f"v{i}".encode() for i in range(p, 30, 3)]
        assert all(r.topic == topic and r.key is None for r in recs)
    positions = {(r.partition, r.offset): r.value for r in records}
    assert {placed[i]: sent[i].value for i in range(30)} == positions


def test_keyed_records_land_on_the_kafka_partition_of_their_key(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    writer = log_backend.writer()
    keys = [f"user-{i}".encode() for i in range(20)]
    first = writer.append(topic, [OutgoingRecord(b"a", key=k) for k in keys])
    second = writer.append(topic, [OutgoingRecord(b"b", key=k) for k in keys])
    writer.close()
    expected = [partition_for_key(k, 3) for k in keys]
    assert [p for p, _ in first] == expected
    assert [p for p, _ in second] == expected
    assert len(set(expected)) > 1
    for (p1, o1), (p2, o2) in zip(first, second, strict=True):
        assert p1 == p2 and o2 > o1
    reader = log_backend.reader("g-keys", [topic])
    records = drain(reader, 40)
    reader.close()
    assert sorted((r.key, r.value) for r in records) == sorted(
        [(k, b"a") for k in keys] + [(k, b"b") for k in keys]
    )


def test_explicit_partition_is_honoured_and_out_of_range_is_an_error(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    writer = log_backend.writer()
    assert writer.append(topic, [OutgoingRecord(b"x", key=b"k", partition=2)])[0][0] == 2
    with pytest.raises(LogError):
        writer.append(topic, [OutgoingRecord(b"y", partition=3)])
    writer.close()


def test_idempotency_key_returns_the_original_position_and_stores_once(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    writer = log_backend.writer()
    first = writer.append(topic, [OutgoingRecord(b"one", idempotency_key="run-1-pin")])
    again = writer.append(topic, [OutgoingRecord(b"one", idempotency_key="run-1-pin")])
    mixed = writer.append(
        topic,
        [
            OutgoingRecord(b"two", idempotency_key="run-2-pin"),
            OutgoingRecord(b"one", idempotency_key="run-1-pin"),
            OutgoingRecord(b"two", idempotency_key="run-2-pin"),
        ],
    )
    writer.close()
    assert again == first
    assert mixed[1] == first[0] and mixed[2] == mixed[0] != first[0]
    assert sum(log_backend.end_offsets(topic).values()) == 2
    reader = log_backend.reader("g-idem", [topic])
    assert sorted(r.value for r in drain(reader, 2)) == [b"one", b"two"]
    reader.close()


def test_an_idempotency_key_with_another_fingerprint_is_refused_and_nothing_is_stored(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    writer = log_backend.writer()
    first = writer.append(topic, [OutgoingRecord(b"a", idempotency_key="e1", fingerprint="f1")])
    with pytest.raises(IdempotencyConflictError):
        writer.append(
            topic,
            [
                OutgoingRecord(b"new", idempotency_key="e2", fingerprint="f2"),
                OutgoingRecord(b"a", idempotency_key="e1", fingerprint="f2"),
            ],
        )
    with pytest.raises(IdempotencyConflictError):  # a record stored without fingerprint differs too
        writer.append(topic, [OutgoingRecord(b"a", idempotency_key="e1")])
    # the same fingerprint is a retry; the refused call kept nothing, not even its new key
    assert writer.append(topic, [OutgoingRecord(b"a", idempotency_key="e1", fingerprint="f1")]) == first
    assert writer.append(topic, [OutgoingRecord(b"b", idempotency_key="e2", fingerprint="f3")]) != first
    writer.close()
    assert sum(log_backend.end_offsets(topic).values()) == 2


def test_commit_is_where_the_next_member_of_the_group_starts(log_backend: Log, new_topic: NewTopic) -> None:
    topic = new_topic(1)
    writer = log_backend.writer()
    writer.append(topic, [OutgoingRecord(f"{i}".encode()) for i in range(10)])
    writer.close()
    reader = log_backend.reader("g-commit", [topic])
    assert len(drain(reader, 10)) == 10
    reader.commit({(topic, 0): 6})
    reader.close()
    assert log_backend.committed("g-commit", topic) == {0: 6}
    assert "g-commit" in log_backend.groups()
    again = log_backend.reader("g-commit", [topic])
    assert [r.offset for r in drain(again, 4)] == [6, 7, 8, 9]
    again.close()


def test_groups_are_independent(log_backend: Log, new_topic: NewTopic) -> None:
    topic = new_topic(1)
    writer = log_backend.writer()
    writer.append(topic, [OutgoingRecord(f"{i}".encode()) for i in range(5)])
    writer.close()
    a = log_backend.reader("g-a", [topic])
    assert len(drain(a, 5)) == 5
    a.commit({(topic, 0): 5})
    a.close()
    b = log_backend.reader("g-b", [topic])
    assert [r.offset for r in drain(b, 5)] == [0, 1, 2, 3, 4]
    b.close()
    assert log_backend.committed("g-a", topic) == {0: 5}
    assert log_backend.committed("g-b", topic) == {}


def test_seek_moves_the_position_but_not_the_commit(log_backend: Log, new_topic: NewTopic) -> None:
    topic = new_topic(1)
    writer = log_backend.writer()
    writer.append(topic, [OutgoingRecord(f"{i}".encode()) for i in range(5)])
    writer.close()
    reader = log_backend.reader("g-seek", [topic])
    assert len(drain(reader, 5)) == 5
    reader.seek(topic, 0, 2)
    assert [r.value for r in drain(reader, 3)] == [b"2", b"3", b"4"]
    reader.close()
    assert log_backend.committed("g-seek", topic) == {}


def test_reader_sees_records_another_writer_appends_after_it_started(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    reader = log_backend.reader("g-live", [topic])
    assert reader.poll(10, 0.3) == []
    writer = log_backend.writer()
    placed = writer.append(topic, [OutgoingRecord(b"late", key=b"k")])
    writer.close()
    records = drain(reader, 1)
    reader.close()
    assert [(r.partition, r.offset, r.value, r.key) for r in records] == [(*placed[0], b"late", b"k")]
    assert records[0].timestamp == pytest.approx(time.time(), abs=60)


def test_empty_poll_waits_about_the_timeout(log_backend: Log, new_topic: NewTopic) -> None:
    topic = new_topic(1)
    reader = log_backend.reader("g-empty", [topic])
    drain(reader, 0)  # let backends that need to join their group do so
    started = time.monotonic()
    assert reader.poll(10, 0.3) == []
    assert 0.25 <= time.monotonic() - started < 3.0
    reader.close()


def test_unknown_topic_is_topic_not_found(log_backend: Log) -> None:
    writer = log_backend.writer()
    with pytest.raises(TopicNotFoundError):
        writer.append("contract-never-created", [OutgoingRecord(b"x")])
    writer.close()
    with pytest.raises(TopicNotFoundError):
        log_backend.end_offsets("contract-never-created")
    assert "contract-never-created" not in log_backend.topics()


def test_create_topic_is_idempotent_and_end_offsets_count_appends(
    log_backend: Log, new_topic: NewTopic
) -> None:
    topic = new_topic(3)
    log_backend.create_topic(topic, 3)
    assert log_backend.topics()[topic] == 3
    assert log_backend.end_offsets(topic) == {0: 0, 1: 0, 2: 0}
    writer = log_backend.writer()
    writer.append(topic, [OutgoingRecord(b"x", partition=1), OutgoingRecord(b"y", partition=1)])
    writer.append(topic, [OutgoingRecord(b"z", partition=2)])
    writer.flush()
    writer.close()
    assert log_backend.end_offsets(topic) == {0: 0, 1: 2, 2: 1}
    assert log_backend.committed("g-none", topic) == {}


def test_headers_and_a_given_timestamp_are_kept_or_the_append_refused(
    log_backend: Log, new_topic: NewTopic
) -> None:
    """A producer's headers and timestamp come back as sent; a backend that cannot keep them (Kinesis)
    refuses the append whole rather than storing the record without them."""
    topic = new_topic(1)
    headers = (("trace", b"t-1"), ("empty", None), ("trace", b"t-2"))
    sent = OutgoingRecord(b"v", partition=0, headers=headers, timestamp=1_600_000_000.25)
    writer = log_backend.writer()
    try:
        if log_backend.url.startswith("kinesis"):
            with pytest.raises(LogError, match="headers"):
                writer.append(topic, [sent])
            assert sum(log_backend.end_offsets(topic).values()) == 0
            return
        writer.append(topic, [sent, OutgoingRecord(b"plain", partition=0)])
    finally:
        writer.close()
    reader = log_backend.reader("headers", [topic])
    first, plain = drain(reader, 2)
    reader.close()
    assert (first.headers, first.timestamp) == (headers, 1_600_000_000.25)
    assert plain.headers == () and abs(plain.timestamp - time.time()) < 60
