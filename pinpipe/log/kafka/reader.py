"""A Kafka consumer-group member for pinpipe's LogReader, and the mapping of Kafka errors to pinpipe's.

The reader assigns itself every partition of its topics (manual assignment, group offsets): it starts
at once, needs no rebalance after a crashed predecessor's session times out, and picks up topics and
partitions that appear later (metadata is re-read every few seconds). Commits are synchronous and only
happen when :meth:`KafkaLogReader.commit` is called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pinpipe._optional import require
from pinpipe.errors import GroupMovedOnError, LogError, LogUnavailableError, TopicNotFoundError
from pinpipe.log.base import RESERVED_HEADER_PREFIX, Record, TopicPartition

ck = require("confluent_kafka", "kafka")

REFRESH_S = 5.0
"""How often a reader looks for new topics or partitions."""
DRAIN_S = 0.05
"""After the first record, ``poll`` keeps taking records while they arrive within this wait."""


class KafkaFatalError(LogError):
    """librdkafka gave this client up (``ERR__FATAL``: a static group member fenced, an idempotent
    producer's fatal error): every later call on it fails, only a new client can go on."""


class ProducerFatalError(KafkaFatalError, LogUnavailableError):
    """The appends a producer failed when it went fatal: retryable (HTTP 503), as their records may be
    stored and the next append goes out on a new producer (:mod:`pinpipe.log.kafka.producer`)."""


def is_fatal(err: Any) -> bool:
    """A fatal error reaches a consumer as an ``_FATAL`` event whose own ``fatal()`` is False; a commit
    may meet the broker's FENCED_INSTANCE_ID itself first (the consumer is fenced all the same)."""
    return bool(err.fatal()) or err.code() in (ck.KafkaError._FATAL, ck.KafkaError.FENCED_INSTANCE_ID)


def raise_for(err: Any, what: str) -> NoReturn:
    """Raise the pinpipe error for a librdkafka ``KafkaError``."""
    code = err.code()
    message = f"Kafka: {what}: {err.str()}"
    if is_fatal(err):
        raise KafkaFatalError(message)
    if code in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
        raise TopicNotFoundError(message)
    if code in (
        ck.KafkaError.ILLEGAL_GENERATION,
        ck.KafkaError.UNKNOWN_MEMBER_ID,
        ck.KafkaError.REBALANCE_IN_PROGRESS,
    ):
        raise GroupMovedOnError(message)
    unavailable = {
        ck.KafkaError._TRANSPORT,
        ck.KafkaError._ALL_BROKERS_DOWN,
        ck.KafkaError._TIMED_OUT,
        ck.KafkaError._MSG_TIMED_OUT,
        ck.KafkaError._RESOLVE,
        ck.KafkaError.REQUEST_TIMED_OUT,
        ck.KafkaError.NOT_ENOUGH_REPLICAS,
        ck.KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ck.KafkaError.LEADER_NOT_AVAILABLE,
        ck.KafkaError.NOT_LEADER_FOR_PARTITION,
        ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
        ck.KafkaError.NOT_COORDINATOR,
        ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        ck.KafkaError._WAIT_COORD,
    }
    if code in unavailable or err.retriable():
        raise LogUnavailableError(message)
    raise LogError(message)


class KafkaLogReader:
    def __init__(
        self, common: Mapping[str, Any], group: str, topics: Sequence[str], timeout_s: float
    ) -> None:
        self._topics = list(dict.fromkeys(topics))
        self._timeout_s = timeout_s
        self._config = {
            **common,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
        self._consumer = ck.Consumer(self._config)
        self._assigned: set[TopicPartition] = set()
        self._polled: list[Record] = []
        self._seeks: dict[TopicPartition, int] = {}
        self._next_refresh = 0.0
        self._closed = False

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        self._check_open()
        deadline = time.monotonic() + max(0.0, timeout)
        self._refresh(force=not self._assigned)
        out: list[Record] = []
        self._polled = out  # what this poll has taken so far (a rebalance callback may drop some)
        if max_records <= 0:
            return out
        while not out:
            remaining = deadline - time.monotonic()
            msg = self._consumer.poll(max(0.0, min(remaining, 0.5)))
            if msg is not None:
                self._take([msg], out)
            elif remaining <= 0:
                return out
            else:
                self._refresh(force=False)
        # take what keeps arriving (other partitions' fetches) until a short wait brings nothing
        while len(out) < max_records:
            batch = self._consumer.consume(max_records - len(out), timeout=DRAIN_S)
            if not batch:
                break
            self._take(batch, out)
        return out

    def _take(self, msgs: list[Any], out: list[Record]) -> None:
        for msg in msgs:
            err = msg.error()
            if err is None:
                ts = msg.timestamp()[1]
                headers = tuple(h for h in msg.headers() or () if not h[0].startswith(RESERVED_HEADER_PREFIX))
                out.append(
                    Record(
                        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), ts / 1000, headers
                    )
                )
            elif err.code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
                self._next_refresh = 0.0  # deleted topic: drop it at the next refresh
            elif is_fatal(err):
                raise_for(err, "consume")
            # other errors are transient (broker restart...): librdkafka retries on its own

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        if not offsets:
            return
        tps = [ck.TopicPartition(t, p, int(o)) for (t, p), o in offsets.items()]
        try:
            result = self._consumer.commit(offsets=tps, asynchronous=False)
        except ck.KafkaException as exc:
            raise_for(exc.args[0], "commit")
        for tp in result or []:
            if tp.error is not None:
                raise_for(tp.error, f"commit {tp.topic}[{tp.partition}]")

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._check_open()
        tp = (topic, partition)
        if tp not in self._assigned:
            self._seeks[tp] = offset
            return
        target = ck.TopicPartition(topic, partition, max(0, offset))
        try:
            self._consumer.seek(target)
        except ck.KafkaException as exc:  # not fetching yet: re-assign at the new position
            if is_fatal(exc.args[0]):
                raise_for(exc.args[0], "seek")
            self._consumer.incremental_unassign([ck.TopicPartition(topic, partition)])
            self._consumer.incremental_assign([target])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("use of a closed Kafka log reader")

    def _refresh(self, force: bool) -> None:
        """Assign partitions that appeared since the last look (at the group's offsets or a seek)."""
        if not force and time.monotonic() < self._next_refresh:
            return
        self._next_refresh = time.monotonic() + REFRESH_S
        try:
            meta = self._consumer.list_topics(timeout=self._timeout_s)
        except ck.KafkaException as exc:
            if force and not self._assigned:
                return  # broker not reachable yet: poll returns nothing, as when no records
            raise_for(exc.args[0], "metadata")
        present = {
            (name, p)
            for name in self._topics
            if (t := meta.topics.get(name)) is not None and t.error is None
            for p in t.partitions
        }
        gone = self._assigned - present
        if gone:
            self._consumer.incremental_unassign([ck.TopicPartition(t, p) for t, p in gone])
            self._assigned -= gone
        new = sorted(present - self._assigned)
        if new:
            committed = self._committed(new)
            tps = [
                ck.TopicPartition(t, p, self._seeks.pop((t, p), committed.get((t, p), ck.OFFSET_BEGINNING)))
                for t, p in new
            ]
            self._consumer.incremental_assign(tps)
            self._assigned.update(new)

    def _committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets, asked for explicitly (rather than ``OFFSET_STORED``): librdkafka
        can leave such partitions pending forever when the coordinator answers NOT_COORDINATOR while
        it loads the offsets topic, as a fresh broker does."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                result = self._consumer.committed(
                    [ck.TopicPartition(t, p) for t, p in tps], timeout=self._timeout_s
                )
                return {(tp.topic, tp.partition): tp.offset for tp in result if tp.offset >= 0}
            except ck.KafkaException as exc:
                if time.monotonic() > deadline:
                    raise_for(exc.args[0], "committed offsets")
                time.sleep(0.1)
