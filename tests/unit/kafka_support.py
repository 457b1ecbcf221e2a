"""Stand-ins for what a KafkaLogWriter needs of its KafkaLog (the index, the claims, the partition count),
for librdkafka's delivered message, and a scripted producer that stores what it acknowledges (so a record
lost or written twice shows), shared by the writer's unit tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import confluent_kafka as ck

from pinpipe.log.kafka.claims import Ticket


class Index:
    """Knows no key; keeps what the writer releases: (topic, keys, where they landed, wrote)."""

    def __init__(self) -> None:
        self.released: list[tuple[str, set[str], dict[str, Any], bool]] = []

    def claim(self, topic: str, keys: Sequence[str]) -> dict[str, Any]:
        return {}

    def claim_many(self, topic: str, calls: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        return [{} for _ in calls]

    def release(self, topic: str, claimed: Any, placed: Any, wrote: bool = True) -> None:
        self.released.append((topic, set(claimed), dict(placed), wrote))

    def release_many(self, topic: str, calls: Sequence[tuple[Any, Any, bool]]) -> None:
        for claimed, placed, wrote in calls:
            self.release(topic, claimed, placed, wrote)


class WonClaims:
    """Every claim won at once."""

    def acquire_many(self, topic: str, keys: Sequence[str]) -> list[Any]:
        return [Ticket(key, float("inf")) for key in keys]

    def acquire(self, topic: str, key: str, stored: Any) -> Ticket:
        return Ticket(key, float("inf"))


class OnePartitionLog:
    """A cluster of one-partition topics whose claims are all won."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.common = {"bootstrap.servers": "127.0.0.1:9"}
        self.index = Index()
        self.claims = WonClaims()

    def partition_count(self, topic: str) -> int:
        return 1


class Delivered:
    """librdkafka's message in a successful delivery report: where the record landed."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class Cluster:
    """The broker side: what was stored, and the producers made (``ck.Producer`` is replaced by ``make``)."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.producers: list[Producer] = []
        self.lock = threading.Lock()

    def make(self, config: dict[str, Any]) -> Producer:
        producer = Producer(self, config)
        with self.lock:
            self.producers.append(producer)
        return producer


class Producer:
    """Acknowledges every record at the next poll or flush until ``fail`` is called: then the records in
    flight fail with the broker's error and the ``poll`` or ``flush`` serving their reports raises the
    fatal error, as confluent-kafka does (as the context of the SystemError a delivery callback run with
    it pending raised, with ``wrapped``); every later ``produce`` raises ``_FATAL``. A non-fatal
    ``error`` fails the records in flight alone."""

    wrapped = True

    def __init__(self, cluster: Cluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.dead = False
        self.closed = False
        self._lock = threading.RLock()
        self._reports: list[Any] = []
        self._delivery_error: ck.KafkaError | None = None
        self._events: list[ck.KafkaError] = []
        self.fail_after: int | None = None  # fatal once the nth record is handed over (0: the first)
        self.produced = 0

    def fail(self, error: ck.KafkaError | None = None) -> None:
        """The records in flight fail; fatally unless ``error`` is given."""
        with self._lock:
            if error is not None:
                self._delivery_error = error
                return
            self.dead = True
            self._delivery_error = ck.KafkaError(ck.KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER)
            self._events.append(ck.KafkaError(ck.KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True))

    def produce(self, topic: str, value: bytes, on_delivery: Any, **kwargs: Any) -> None:
        assert not self.closed, "produce on a closed producer"
        with self._lock:
            if self.dead:
                raise ck.KafkaException(ck.KafkaError(ck.KafkaError._FATAL))
            self._reports.append((on_delivery, value))
            if self.fail_after == self.produced:
                self.fail()
            self.produced += 1

    def poll(self, timeout: float) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float = -1) -> int:
        assert not self.closed, "flush on a closed producer"
        with self._lock:
            events, self._events = self._events, []
            reports, self._reports = self._reports, []
            error = self._delivery_error
            if reports and not self.dead:  # a non-fatal error fails the records in flight once
                self._delivery_error = None
        for on_delivery, value in reports:
            if error is not None:
                on_delivery(error, None)
                continue
            with self.cluster.lock:
                self.cluster.stored.append(value)
                offset = len(self.cluster.stored) - 1
            on_delivery(None, Delivered(offset))
        for event in events:
            fatal = ck.KafkaException(event)
            if not self.wrapped:
                raise fatal
            message = "<method 'append' of 'list' objects> returned a result with an exception set"
            raise SystemError(message) from fatal
        return 0

    def close(self) -> bool:
        self.closed = True
        return True


def scripted_cluster(monkeypatch: Any) -> Cluster:
    """A :class:`Cluster` whose producers replace librdkafka's for the test (``ck.Producer``)."""
    made = Cluster()
    monkeypatch.setattr(ck, "Producer", made.make)
    return made
