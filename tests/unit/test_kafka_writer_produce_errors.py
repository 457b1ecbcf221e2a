"""librdkafka refusing a record at ``produce()`` (its local queue full, or a KafkaException) is a pinpipe
error for that append alone: a retryable LogUnavailableError (HTTP 503) when the records may be stored or
the cluster is behind, the mapped error when nothing was handed over; the other appends of the group are
written and answered as usual."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException

from pinpipe.errors import LogError, LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka.producer import RenewingProducer
from pinpipe.log.kafka.writer import KafkaLogWriter
from tests.unit.kafka_support import Delivered, OnePartitionLog

TIMEOUT_S = 0.3


class _Producer:
    """Delivers every record at once, except those whose value is in ``refuse`` (raised at produce)."""

    def __init__(self, refuse: dict[bytes, BaseException]) -> None:
        self.refuse = refuse
        self.produced: list[bytes] = []
        self.headers: list[Any] = []
        self._reports: list[Any] = []

    def produce(self, topic: str, value: bytes, on_delivery: Any, **kwargs: Any) -> None:
        if value in self.refuse:
            raise self.refuse[value]
        headers = kwargs.get("headers")
        if headers is not None and not isinstance(headers, (list, dict)):  # as confluent-kafka checks
            raise TypeError("expected headers to be dict or list of (key, value) tuples")
        self.produced.append(value)
        self.headers.append(headers)
        self._reports.append((on_delivery, Delivered(len(self.produced) - 1)))

    def poll(self, timeout: float) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float) -> int:
        reports, self._reports = self._reports, []
        for on_delivery, msg in reports:
            on_delivery(None, msg)
        return 0


def _writer(refuse: dict[bytes, BaseException]) -> tuple[KafkaLogWriter, _Producer, OnePartitionLog]:
    log = OnePartitionLog(TIMEOUT_S)
    writer = KafkaLogWriter(cast(Any, log))
    producer = _Producer(refuse)
    writer._producers = RenewingProducer(writer.config, TIMEOUT_S, "records", make=lambda config: producer)
    return writer, producer, log


def _record(value: bytes, key: str | None = None) -> OutgoingRecord:
    return OutgoingRecord(value, idempotency_key=key, fingerprint="f" if key else None)


def _kafka(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [(_kafka(KafkaError._TRANSPORT), LogUnavailableError), (_kafka(KafkaError.MSG_SIZE_TOO_LARGE), LogError)],
    ids=["transport", "too-large"],
)
def test_a_refused_produce_fails_its_append_alone_with_a_pinpipe_error(
    refusal: BaseException, expected: type[Exception]
) -> None:
    writer, producer, log = _writer({b"bad": refusal})
    calls = [
        ("t", [_record(b"one", "k1")]),
        ("t", [_record(b"bad", "k2")]),
        ("t", [_record(b"three")]),
    ]
    results = writer.append_many(calls)
    assert results[0] == [(0, 0)] and results[2] == [(0, 1)]
    assert type(results[1]) is expected
    assert producer.produced == [b"one", b"three"]
    released = {keys.pop(): placed for _, keys, placed, _ in log.index.released}
    assert released == {"k1": {"k1": (0, 0, "f")}, "k2": {}}  # the index learns that k2 is not stored
    with pytest.raises(expected):
        writer.append("t", [_record(b"bad", "k3")])


def test_a_queue_full_for_a_timeout_fails_the_appends_not_yet_handed_over_at_once() -> None:
    """librdkafka's queue stays full while the cluster is out of reach: one timeout is waited out, then
    the group's remaining appends get the same 503 instead of one timeout each."""
    writer, producer, _ = _writer({b"bad": BufferError("Local: Queue full")})
    calls = [("t", [_record(b"one", "k1")])] + [("t", [_record(b"bad", f"k{i}")]) for i in range(2, 6)]
    started = time.monotonic()
    results = writer.append_many(calls)
    assert time.monotonic() - started < 2 * TIMEOUT_S
    assert results[0] == [(0, 0)]
    assert all(isinstance(r, LogUnavailableError) for r in results[1:])
    assert producer.produced == [b"one"]


def test_an_append_refused_after_some_of_its_records_were_handed_over_may_be_stored() -> None:
    """Its first records are on their way: the client is told to retry with the same key (503), not
    that nothing was written."""
    writer, producer, _ = _writer({b"bad": _kafka(KafkaError.MSG_SIZE_TOO_LARGE)})
    (result,) = writer.append_many([("t", [_record(b"ok", "k:0"), _record(b"bad", "k:1")])])
    assert isinstance(result, LogUnavailableError)
    assert "may" in str(result)
    assert producer.produced == [b"ok"]


def test_a_records_headers_reach_librdkafka_as_a_list_with_the_idempotency_headers_last() -> None:
    writer, producer, _ = _writer({})
    own = (("trace", b"t-1"), ("empty", None))
    results = writer.append_many(
        [
            ("t", [OutgoingRecord(b"a", headers=own)]),
            ("t", [OutgoingRecord(b"b", headers=own, idempotency_key="k")]),
        ]
    )
    assert results == [[(0, 0)], [(0, 1)]]
    assert producer.headers == [list(own), [*own, ("pinpipe-idempotency-key", b"k")]]
