"""A Kafka producer librdkafka gave up (a fatal error: OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID...)
is replaced: the appends it failed answer the retryable error (their records may be stored), the next one
goes out on a new producer. On a scripted stand-in for librdkafka's producer, which stores what it
acknowledges, so a record lost or written twice shows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import confluent_kafka as ck
import pytest

from pinpipe.errors import LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka.claims import ClaimBook, KafkaClaims
from pinpipe.log.kafka.producer import RenewingProducer
from pinpipe.log.kafka.reader import ProducerFatalError
from pinpipe.log.kafka.writer import KafkaLogWriter
from tests.unit.kafka_support import Cluster, OnePartitionLog, Producer, scripted_cluster

TIMEOUT_S = 0.5
OUT_OF_ORDER = "Broker: Broker received an out of order sequence number"


def _eventually(done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5.0
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return done()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    return scripted_cluster(monkeypatch)


def _writer() -> tuple[KafkaLogWriter, OnePartitionLog]:
    log = OnePartitionLog(TIMEOUT_S)
    return KafkaLogWriter(cast(Any, log)), log


def _records(*values: bytes) -> list[OutgoingRecord]:
    return [OutgoingRecord(v, idempotency_key=v.decode(), fingerprint="f") for v in values]


@pytest.mark.parametrize("wrapped", [True, False], ids=["in-a-system-error", "plain"])
def test_a_fatal_error_in_flight_fails_the_append_retryably_and_the_next_goes_out_on_a_new_producer(
    cluster: Cluster, wrapped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Producer, "wrapped", wrapped)
    writer, log = _writer()
    assert writer.append("t", _records(b"a")) == [(0, 0)]
    cluster.producers[0].fail_after = 1
    with pytest.raises(LogUnavailableError, match="out of order sequence number") as failed:
        writer.append("t", _records(b"b"))
    assert "may" in str(failed.value)  # the answer lets the client retry with the same key
    assert log.index.released[-1] == ("t", {"b"}, {}, True)  # not believed stored: the topic is read again
    assert writer.append("t", _records(b"b")) == [(0, 1)]
    assert len(cluster.producers) == 2
    assert cluster.stored == [b"a", b"b"]
    assert _eventually(lambda: cluster.producers[0].closed)  # retired in the background
    writer.close()


def test_the_replaced_producer_is_named_in_one_warning(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    writer, _ = _writer()
    cluster.producers[0].fail_after = 0
    with caplog.at_level(logging.WARNING, "pinpipe.log.kafka.producer"):
        results = writer.append_many([("t", _records(b"a")), ("t", _records(b"b"))])
        assert [type(r) for r in results] == [ProducerFatalError, ProducerFatalError]
        assert writer.append("t", _records(b"a")) == [(0, 0)]
        assert _eventually(lambda: cluster.producers[0].closed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "records producer stopped by a fatal error" in warnings[0] and OUT_OF_ORDER in warnings[0]
    writer.close()


def test_a_fatal_error_at_produce_after_records_were_handed_over_fails_the_append_retryably(
    cluster: Cluster,
) -> None:
    """The append's first record is in flight when the producer dies: it may be stored, so 503."""
    writer, log = _writer()
    cluster.producers[0].fail_after = 0
    with pytest.raises(ProducerFatalError, match="may be stored"):
        writer.append("t", _records(b"a", b"b"))
    assert log.index.released[-1] == ("t", {"a", "b"}, {}, True)
    assert writer.append("t", _records(b"a", b"b")) == [(0, 0), (0, 1)]
    assert len(cluster.producers) == 2
    assert cluster.stored == [b"a", b"b"]
    writer.close()


def test_a_producer_that_died_while_idle_is_replaced_before_the_next_append_hands_it_anything(
    cluster: Cluster,
) -> None:
    """Its fatal error is still queued for the error callback: ``produce`` refuses the first record with
    ``_FATAL``, nothing went to the dead producer, so the append goes out on a new one and succeeds."""
    writer, _ = _writer()
    cluster.producers[0].fail()
    assert writer.append_many([("t", _records(b"a")), ("t", [OutgoingRecord(b"b")])]) == [[(0, 0)], [(0, 1)]]
    assert len(cluster.producers) == 2
    assert cluster.producers[1].produced == 2
    writer.close()


def test_a_non_fatal_delivery_error_keeps_the_producer(cluster: Cluster) -> None:
    writer, _ = _writer()
    cluster.producers[0].fail(ck.KafkaError(ck.KafkaError._MSG_TIMED_OUT))
    with pytest.raises(LogUnavailableError, match="timed out") as failed:
        writer.append("t", _records(b"a"))
    assert not isinstance(failed.value, ProducerFatalError)
    assert writer.append("t", _records(b"a")) == [(0, 0)]
    assert len(cluster.producers) == 1
    writer.close()


def test_appending_threads_share_one_new_producer_and_every_record_is_stored_once(cluster: Cluster) -> None:
    """Eight threads append while the producer dies under them: each append either lands or fails with
    the retryable error (and is retried, as a client does with the same key); one new producer takes
    over, the old one is closed once its last append is answered."""
    writer, _ = _writer()
    cluster.producers[0].fail_after = 20
    errors: list[BaseException] = []

    def client(n: int) -> None:
        for i in range(15):
            value = f"{n}-{i}".encode()
            for _ in range(5):
                try:
                    writer.append("t", _records(value))
                    break
                except LogUnavailableError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(cluster.stored) == sorted(f"{n}-{i}".encode() for n in range(8) for i in range(15))
    assert len(cluster.producers) == 2
    assert errors and all(isinstance(e, ProducerFatalError) for e in errors)
    assert _eventually(lambda: cluster.producers[0].closed)
    writer.close()


class _ClaimsLog:
    timeout_s = TIMEOUT_S

    def __init__(self) -> None:
        self.common: dict[str, str] = {}


class _ClaimsConsumer:
    """Fetches the claims the cluster stored."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.read = cluster, 0

    def poll(self, timeout: float) -> Any:
        if self.read >= len(self.cluster.stored):
            time.sleep(0.001)
            return None
        self.read += 1
        offset, value = self.read - 1, self.cluster.stored[self.read - 1]
        return type(
            "Message",
            (),
            {
                "error": lambda _: None,
                "topic": lambda _: "__pinpipe-claims.t",
                "partition": lambda _: 0,
                "offset": lambda _: offset,
                "key": lambda _: None,
                "value": lambda _: value,
            },
        )()

    def consume(self, count: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def _claims(cluster: Cluster) -> KafkaClaims:
    claims = KafkaClaims(cast(Any, _ClaimsLog()))
    claims._producers = RenewingProducer({}, TIMEOUT_S, "claims")
    claims._consumer = _ClaimsConsumer(cluster)
    claims._books[("__pinpipe-claims.t", 0)] = ClaimBook()
    claims._next[("__pinpipe-claims.t", 0)] = 0
    claims._counts["__pinpipe-claims.t"] = 1
    claims._ready.add("__pinpipe-claims.t")
    return claims


def test_a_claims_producer_gone_fatal_fails_its_claims_retryably_and_the_next_go_out_on_a_new_one(
    cluster: Cluster,
) -> None:
    claims = _claims(cluster)
    cluster.producers[0].fail_after = 0
    with pytest.raises(ProducerFatalError, match="out of order sequence number"):
        claims.acquire_many("t", ["k1"])
    tickets = claims.acquire_many("t", ["k2"])
    assert [t.key for t in tickets if t is not None] == ["k2"]
    assert len(cluster.producers) == 2
    assert _eventually(lambda: cluster.producers[0].closed)
    claims.close()


def test_a_claims_producer_that_died_while_idle_is_replaced_before_the_next_claim(cluster: Cluster) -> None:
    claims = _claims(cluster)
    cluster.producers[0].fail()
    ticket = claims.acquire("t", "k1", lambda: False)
    assert ticket is not None and ticket.key == "k1"
    assert len(cluster.producers) == 2 and cluster.producers[0].produced == 0
    claims.close()


def test_a_non_fatal_claims_delivery_error_keeps_the_producer(cluster: Cluster) -> None:
    claims = _claims(cluster)
    cluster.producers[0].fail(ck.KafkaError(ck.KafkaError._MSG_TIMED_OUT))
    with pytest.raises(LogUnavailableError, match="timed out") as failed:
        claims.acquire_many("t", ["k1"])
    assert not isinstance(failed.value, ProducerFatalError)
    assert len(cluster.producers) == 1
    claims.close()
