"""KafkaLog against a real Kafka 4 broker started by infra/kafka.sh (the ``kafka_bootstrap`` fixture)."""

from __future__ import annotations

import socket
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pytest

from pinpipe.errors import (
    IdempotencyConflictError,
    LogUnavailableError,
    TopicCollisionError,
    TopicNotFoundError,
)
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord, Record
from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka.claims import claims_topic, decode, partition_of
from pinpipe.log.partitioner import partition_for_key
from tests.services import InfraService

pytestmark = pytest.mark.kafka


def fresh(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def read_all(log: KafkaLog, group: str, topic: str, count: int, timeout: float = 30) -> list[Record]:
    reader = log.reader(group, [topic])
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out.extend(reader.poll(count - len(out), 0.5))
    reader.close()
    return out


def test_open_log_routes_kafka_urls_and_topics_get_the_configured_partitions(kafka_bootstrap: str) -> None:
    log = open_log(f"kafka://{kafka_bootstrap}", partitions=4)
    try:
        assert isinstance(log, KafkaLog)
        topic = fresh()
        log.create_topic(topic)
        log.create_topic(topic)  # idempotent
        log.create_topic(fresh("two"), 2)
        assert log.topics()[topic] == 4
        assert not any(name.startswith("__") for name in log.topics())
        assert log.end_offsets(topic) == {0: 0, 1: 0, 2: 0, 3: 0}
    finally:
        log.close()


def test_writer_is_an_idempotent_producer_with_acks_all(kafka_log: KafkaLog) -> None:
    writer = kafka_log.writer()
    assert writer.config["enable.idempotence"] is True
    assert writer.config["acks"] == "all"
    assert writer.config["partitioner"] == "murmur2_random"


def test_append_poll_commit_round_trip_and_lag_figures(kafka_log: KafkaLog) -> None:
    topic = fresh()
    kafka_log.create_topic(topic, 3)
    writer = kafka_log.writer()
    keys = [f"user-{i}".encode() for i in range(60)]
    placed = writer.append(topic, [OutgoingRecord(b'{"i": %d}' % i, key=k) for i, k in enumerate(keys)])
    assert [p for p, _ in placed] == [partition_for_key(k, 3) for k in keys]
    ends = kafka_log.end_offsets(topic)
    assert sum(ends.values()) == 60
    assert ends == {p: sum(1 for q, _ in placed if q == p) for p in range(3)}

    group = fresh("group")
    records = read_all(kafka_log, group, topic, 60)
    assert sorted((r.partition, r.offset) for r in records) == sorted(placed)
    assert {r.key for r in records} == set(keys)
    assert all(abs(r.timestamp - time.time()) < 120 for r in records)

    reader = kafka_log.reader(group, [topic])
    reader.commit({(topic, 0): ends[0], (topic, 1): 1})
    reader.close()
    assert kafka_log.committed(group, topic) == {0: ends[0], 1: 1}
    assert group in kafka_log.groups()

    # the next member of the group starts at the commits (partition 2: earliest, never committed)
    again = read_all(kafka_log, group, topic, ends[1] - 1 + ends[2])
    assert sorted((r.partition, r.offset) for r in again) == sorted(
        [(1, o) for o in range(1, ends[1])] + [(2, o) for o in range(ends[2])]
    )


def test_idempotency_keys_survive_a_new_process_via_the_topic_headers(kafka_bootstrap: str) -> None:
    topic = fresh()
    url = f"kafka://{kafka_bootstrap}"
    with KafkaLog(url) as first:
        first.create_topic(topic)
        placed = first.writer().append(
            topic,
            [
                OutgoingRecord(b"a", idempotency_key="run-1-a"),
                OutgoingRecord(b"b", idempotency_key="run-1-b"),
            ],
        )
        # the same key twice in one call is stored once
        twice = first.writer().append(
            topic,
            [
                OutgoingRecord(b"c", idempotency_key="run-1-c"),
                OutgoingRecord(b"c", idempotency_key="run-1-c"),
            ],
        )
        assert twice[0] == twice[1]
    with KafkaLog(url) as second:  # a restarted API: its index is rebuilt from the topic
        again = second.writer().append(
            topic,
            [
                OutgoingRecord(b"b", idempotency_key="run-1-b"),
                OutgoingRecord(b"d", idempotency_key="run-1-d"),
            ],
        )
        assert again[0] == placed[1]
        assert sum(second.end_offsets(topic).values()) == 4


def test_fingerprints_survive_a_new_process_via_the_topic_headers(kafka_bootstrap: str) -> None:
    topic = fresh()
    url = f"kafka://{kafka_bootstrap}"
    with KafkaLog(url) as first:
        first.create_topic(topic)
        placed = first.writer().append(topic, [OutgoingRecord(b"a", idempotency_key="k", fingerprint="f1")])
    with KafkaLog(url) as second:  # its index is rebuilt from the headers, fingerprints included
        with pytest.raises(IdempotencyConflictError):
            second.writer().append(topic, [OutgoingRecord(b"b", idempotency_key="k", fingerprint="f2")])
        again = second.writer().append(topic, [OutgoingRecord(b"a", idempotency_key="k", fingerprint="f1")])
        assert again == placed
        assert sum(second.end_offsets(topic).values()) == 1


def test_unknown_topic_is_topic_not_found(kafka_log: KafkaLog) -> None:
    with pytest.raises(TopicNotFoundError):
        kafka_log.writer().append(fresh("missing"), [OutgoingRecord(b"x")])
    with pytest.raises(TopicNotFoundError):
        kafka_log.end_offsets(fresh("missing"))
    with pytest.raises(TopicNotFoundError):
        kafka_log.delete_topic(fresh("missing"))


def test_a_name_kafka_takes_for_an_existing_topic_is_a_collision(
    kafka_log: KafkaLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka takes ``.`` and ``_`` for one character: ``x_a`` beside ``x.a`` is a TopicCollisionError
    naming the existing one, found in the listing or, when the twin is not listed yet (created meanwhile
    by another process), in the broker's refusal."""
    base = f"c{uuid.uuid4().hex[:10]}"
    kafka_log.create_topic(f"{base}.a", 1)
    with pytest.raises(TopicCollisionError, match=rf"existing topic '{base}\.a'"):
        kafka_log.create_topic(f"{base}_a", 1)
    monkeypatch.setattr(kafka_log, "_listed", dict)
    with pytest.raises(TopicCollisionError, match=rf"collides.*{base}\.a"):
        kafka_log.create_topic(f"{base}_a", 1)
    monkeypatch.undo()
    assert f"{base}_a" not in kafka_log.topics()


def test_extra_librdkafka_settings_pass_through(kafka_bootstrap: str) -> None:
    with KafkaLog(
        f"kafka://{kafka_bootstrap}", kafka={"client.id": "custom-id", "socket.keepalive.enable": "true"}
    ) as log:
        assert log.common["client.id"] == "custom-id"
        assert log.writer().config["socket.keepalive.enable"] == "true"
        assert isinstance(log.topics(), dict)
    # the URL query reaches every command unchanged (pinpipe's own options and librdkafka's)
    url = f"kafka://{kafka_bootstrap}?partitions=2&timeout_s=4&client.id=from-url&security.protocol=PLAINTEXT"
    with closing(open_log(url)) as log:
        assert isinstance(log, KafkaLog)
        assert (log.default_partitions, log.timeout_s) == (2, 4.0)
        assert log.common["client.id"] == "from-url"
        assert log.common["bootstrap.servers"] == kafka_bootstrap
        topic = fresh()
        log.create_topic(topic)
        assert log.topics()[topic] == 2


def test_unreachable_broker_is_log_unavailable_within_seconds() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = KafkaLog(f"kafka://127.0.0.1:{port}", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(LogUnavailableError):
        log.writer().append("anything", [OutgoingRecord(b"x")])
    with pytest.raises(LogUnavailableError):
        log.topics()
    assert time.monotonic() - started < 15
    log.close()


@pytest.mark.slow
def test_broker_stop_gives_unavailable_and_a_retry_after_restart_stores_once(tmp_path: Path) -> None:
    """A private broker: stopped while a writer is open, restarted on the same address and data."""
    state = tmp_path / "infra"
    service = InfraService("kafka", state)
    try:
        bootstrap = service.start()
        log = KafkaLog(f"kafka://{bootstrap}", timeout_s=3)
        topic = fresh()
        log.create_topic(topic)
        writer = log.writer()
        first = writer.append(topic, [OutgoingRecord(b"1", idempotency_key="k1")])
        service.stop()
        started = time.monotonic()
        with pytest.raises(LogUnavailableError):
            writer.append(topic, [OutgoingRecord(b"2", idempotency_key="k2")])
        assert time.monotonic() - started < 20
        assert service.start() == bootstrap  # same address, same data
        deadline = time.monotonic() + 60
        while True:  # the client reconnects by itself; retry as the API's callers do
            try:
                placed = writer.append(
                    topic,
                    [OutgoingRecord(b"1", idempotency_key="k1"), OutgoingRecord(b"2", idempotency_key="k2")],
                )
                break
            except LogUnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert placed[0] == first[0]
        assert sum(log.end_offsets(topic).values()) == 2
        log.close()
    finally:
        service.stop()


def test_concurrent_appends_from_threads_store_each_idempotency_key_once(kafka_log: KafkaLog) -> None:
    """The API appends from a thread pool: reports served by any thread, the same key sent twice at once."""
    from concurrent.futures import ThreadPoolExecutor

    topic = fresh()
    kafka_log.create_topic(topic)
    writer = kafka_log.writer()

    def send(i: int) -> list[tuple[int, int]]:
        key = f"run-{i % 20}"  # every key is sent by two threads
        return writer.append(topic, [OutgoingRecord(b"v", idempotency_key=key), OutgoingRecord(b"plain")])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(40)))
    for i in range(20):
        assert results[i][0] == results[i + 20][0]
    assert sum(kafka_log.end_offsets(topic).values()) == 20 + 40


def test_append_many_gives_each_call_what_append_would(kafka_log: KafkaLog) -> None:
    """The API's committer hands concurrent requests over as one group: each call still gets its own
    positions or error; a key stored already or repeated by a later call of the group is stored once."""
    topic = fresh()
    kafka_log.create_topic(topic)
    writer = kafka_log.writer()
    (stored,) = writer.append(topic, [OutgoingRecord(b"s", idempotency_key="stored", fingerprint="f")])

    results = writer.append_many(
        [
            (topic, [OutgoingRecord(b"a", idempotency_key="a", fingerprint="f")]),
            (topic, [OutgoingRecord(b"plain"), OutgoingRecord(b"b", idempotency_key="b", fingerprint="f")]),
            (topic, [OutgoingRecord(b"s", idempotency_key="stored", fingerprint="f")]),  # a retry
            (topic, [OutgoingRecord(b"x", idempotency_key="stored", fingerprint="other")]),
            (topic, [OutgoingRecord(b"a", idempotency_key="a", fingerprint="f")]),  # the first, repeated
            ("no-such-topic-" + topic, [OutgoingRecord(b"n")]),
            (topic, []),
        ]
    )

    a, ab, retry, conflict, again, missing, empty = results
    assert isinstance(a, list) and isinstance(ab, list)
    assert retry == [stored] and again == a and empty == []
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(missing, TopicNotFoundError)
    records = read_all(kafka_log, fresh("g"), topic, 4)
    assert sorted(r.value for r in records) == [b"a", b"b", b"plain", b"s"]
    assert {(r.partition, r.offset) for r in records} == {stored, *a, *ab}
    assert sum(kafka_log.end_offsets(topic).values()) == 4


def test_a_groups_claims_are_one_record_of_a_one_partition_claims_topic(kafka_log: KafkaLog) -> None:
    """The new keys of a group are claimed in ``__pinpipe-claims.<topic>``, which has one partition
    whatever the data topic has, in one record (one produce request, one delivery report)."""
    topic = fresh()
    kafka_log.create_topic(topic, 3)
    calls = [(topic, [OutgoingRecord(b"%d" % i, idempotency_key=f"k{i}", fingerprint="f")]) for i in range(5)]
    calls.append((topic, [OutgoingRecord(b"plain")]))  # no key: nothing to claim

    results = kafka_log.writer().append_many(calls)

    assert all(isinstance(r, list) for r in results)
    assert kafka_log.end_offsets(claims_topic(topic)) == {0: 1}
    (record,) = read_all(kafka_log, fresh("g"), claims_topic(topic), 1)
    assert [key for key, _, _ in decode(record.key, record.value)] == [f"k{i}" for i in range(5)]


def test_claims_of_one_key_each_are_folded_with_the_groups(kafka_log: KafkaLog) -> None:
    """A claims topic may hold records of one claim each, keyed by the idempotency key: the claim there
    wins its key, and a group's claim on another key wins that one."""
    topic = fresh()
    kafka_log.create_topic(topic, 1)
    kafka_log.create_topic(claims_topic(topic), 1)
    producer = ck.Producer(kafka_log.common)
    producer.produce(claims_topic(topic), key=b"held", value=b'{"claim": "other", "supersedes": null}')
    assert producer.flush(10) == 0

    held, free = kafka_log.claims.acquire_many(topic, ["held", "free"])

    assert held is None and free is not None and free.key == "free"


def test_a_keys_claims_partition_is_librdkafkas_for_that_key(kafka_log: KafkaLog) -> None:
    """Records of one claim each went where librdkafka's default partitioner put their key; a group's
    claims on a topic of several partitions go to the same partition for the same key."""
    topic = fresh()
    kafka_log.create_topic(topic, 5)
    producer = ck.Producer(kafka_log.common)
    placed: dict[str, int] = {}

    def landed(_: object, msg: Any) -> None:
        placed[msg.key().decode()] = msg.partition()

    for key in [f"key-{i}" for i in range(20)]:
        producer.produce(topic, key=key.encode(), value=b"x", on_delivery=landed)
    assert producer.flush(10) == 0
    assert placed == {key: partition_of(key, 5) for key in placed}


def test_invalid_kafka_setting_is_one_config_error() -> None:
    from pinpipe.errors import ConfigError
    from pinpipe.log.kafka import KafkaLog

    with pytest.raises(ConfigError, match=r"no\.such\.property"):
        KafkaLog("kafka://127.0.0.1:9", kafka={"no.such.property": "1"})


def test_repeated_librdkafka_messages_are_dropped_within_the_window() -> None:
    import logging

    from pinpipe.log.kafka.log import _RepeatFilter

    flt = _RepeatFilter(window_s=60)

    def message(thread: str) -> logging.LogRecord:
        text = f"[thrd:{thread}]: 127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed"
        return logging.LogRecord("pinpipe.kafka", logging.ERROR, __file__, 1, text, None, None)

    assert flt.filter(message("main")) is True
    assert flt.filter(message("other")) is False
    assert flt.filter(logging.LogRecord("k", logging.ERROR, __file__, 1, "something else", None, None))
