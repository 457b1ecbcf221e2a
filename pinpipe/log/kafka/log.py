"""Apache Kafka as the log, through confluent-kafka (librdkafka).

``open_log("kafka://host:port[,host:port]")``. Extra librdkafka settings (SASL/SSL for MSK or any
cluster) come from ``settings.log.kafka`` passed as ``kafka={...}`` (or as keyword arguments with the
librdkafka names), e.g. ``{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
"sasl.username": "...", "sasl.password": "..."}``, or from the URL query, which reaches every command
unchanged: ``kafka://b-1.msk:9096,b-2.msk:9096?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512``
(keep passwords out of URLs: put them in ``settings.log.kafka``). ``?partitions=6&timeout_s=30`` set
pinpipe's own options.

Mapping onto Kafka:

- topics and Kinesis-style streams are both Kafka topics (``<prefix>.pin`` and ``streaming-<prefix>-pin``),
  created by :meth:`KafkaLog.create_topic` with ``partitions`` (default 3), ``replication_factor``
  replicas (default: the live broker count, at most 3) and ``min.insync.replicas`` (default 2 with three
  replicas, else 1), so an acknowledged record survives the loss of any one broker of three;
  an append to a missing topic raises TopicNotFoundError, as on the embedded log;
- writers use the idempotent producer (``enable.idempotence``, ``acks=all``) and wait for every delivery
  report before returning (partition, offset); keyed records go where Kafka's Java default partitioner
  puts them (``partitioner=murmur2_random``, the same function as :mod:`pinpipe.log.partitioner`);
  an append is not all-or-nothing on Kafka: after an error some records may have landed, and a retry
  with the same idempotency keys does not write them twice (:mod:`pinpipe.log.kafka.idempotency`), and
  API processes agree on who writes a new key through ``__pinpipe-claims.<topic>``
  (:mod:`pinpipe.log.kafka.claims`);
- readers are members of a Kafka consumer group that assign themselves every partition of their topics
  (like the embedded log: one reader per group, no rebalance pause after a ``kill -9``), start at the
  group's committed offsets (earliest when none) and commit synchronously, only when told to.

Errors: an unreachable broker or a timeout is LogUnavailableError (retriable), within ``timeout_s``
(default 10 s) instead of librdkafka's minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse

from pinpipe._optional import require
from pinpipe.errors import (
    ConfigError,
    LogError,
    LogUnavailableError,
    TopicCollisionError,
    TopicNotFoundError,
)
from pinpipe.log.base import Headers
from pinpipe.log.kafka.claims import PREFIX as CLAIMS_PREFIX
from pinpipe.log.kafka.claims import KafkaClaims
from pinpipe.log.kafka.group import KafkaGroupReader, PartitionListener
from pinpipe.log.kafka.idempotency import KafkaIdempotencyIndex
from pinpipe.log.kafka.reader import KafkaLogReader, raise_for
from pinpipe.log.kafka.writer import KafkaLogWriter

ck = require("confluent_kafka", "kafka")
admin = require("confluent_kafka.admin", "kafka")

FRAMING_BYTES = 1024
"""Room left under ``message.max.bytes`` for a record's framing and the log's own headers."""
TOO_LARGE = (
    "record of %d bytes (value, key and headers): the Kafka producer sends at most %d "
    "(message.max.bytes less 1 KiB for the record's framing and the log's own headers)"
)

ONE_CHARACTER = "Kafka takes '.' and '_' for one character in topic names"
AHEAD_S = 55 * 60
"""How far after this process's clock a record's timestamp may be: Kafka 4 refuses the whole append
beyond ``log.message.timestamp.after.max.ms`` (one hour by default) of the broker's clock; five minutes
are left for the two clocks to differ."""
BEHIND_S = 24 * 3600
"""How far before it: Kafka's time retention counts from the record's timestamp, so a record stamped a
week ago (``log.retention.hours``, 168 by default) was deleted within minutes of its acknowledgement; one
a day old still lives six days."""
TOO_NEW = (
    f"timestamp more than {AHEAD_S // 60} minutes in the future: a Kafka broker refuses it "
    "(log.message.timestamp.after.max.ms)"
)
TOO_OLD = (
    f"timestamp more than {BEHIND_S // 3600} hours in the past: Kafka's time retention counts from "
    "it and would delete the record early (send none: the append time is used)"
)


class _RepeatFilter(logging.Filter):
    """Drops a librdkafka message repeated within ``window_s``: a broker outage otherwise logs every
    reconnect attempt of every client (hundreds of lines a minute)."""

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        # "[thrd:...]: 127.0.0.1:9092/1: Connect to ... failed" differs only by thread and timing text
        key = text.split("]: ", 1)[-1][:120]
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.window_s) < self.window_s:
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        return True


LOGGER = logging.getLogger("pinpipe.kafka")
LOGGER.addHandler(logging.NullHandler())  # librdkafka's reconnect chatter shows only if the app logs
LOGGER.addFilter(_RepeatFilter())


_SETTLING = {
    ck.KafkaError.NOT_LEADER_FOR_PARTITION,
    ck.KafkaError.LEADER_NOT_AVAILABLE,
    ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
    ck.KafkaError.UNKNOWN_LEADER_EPOCH,
}
"""Errors of a topic whose creation is still propagating (a leader epoch newer than the broker's
metadata answers list_offsets seconds after the topic was created and written)."""


def parse_url(url: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """``kafka://host:port[,host:port][?name=value...]`` -> (bootstrap servers, pinpipe options, librdkafka
    settings). ``partitions`` and ``timeout_s`` in the query are pinpipe's; any other name is passed to
    librdkafka as it is, e.g. ``?security.protocol=SSL``."""
    parsed = urlparse(url)
    if parsed.scheme != "kafka" or not parsed.netloc:
        raise ConfigError(f"not a Kafka log URL: {url!r} (use kafka://host:port[,host:port])")
    options: dict[str, Any] = {}
    settings: dict[str, str] = {}
    for name, values in parse_qs(parsed.query).items():
        if name in ("partitions", "timeout_s"):
            try:
                options[name] = int(values[-1]) if name == "partitions" else float(values[-1])
            except ValueError as exc:
                raise ConfigError(f"bad value for {name} in {url!r}: {values[-1]!r}") from exc
        else:
            settings[name] = values[-1]
    return parsed.netloc, options, settings


class KafkaLog:
    """Admin operations on a Kafka cluster and the factory of its writers and readers."""

    def __init__(
        self,
        url: str,
        partitions: int = 3,
        *,
        timeout_s: float = 10.0,
        kafka: Mapping[str, Any] | None = None,
        replication_factor: int = 0,
        min_insync_replicas: int = 0,
        **config: Any,
    ) -> None:
        bootstrap, options, url_settings = parse_url(url)
        partitions = options.get("partitions", partitions)
        timeout_s = options.get("timeout_s", timeout_s)
        if partitions < 1:
            raise ConfigError(f"partitions must be at least 1, got {partitions}")
        if replication_factor and min_insync_replicas > replication_factor:
            raise ConfigError(
                f"min_insync_replicas {min_insync_replicas} exceeds replication_factor {replication_factor}"
            )
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas
        self.url = url
        self.default_partitions = partitions
        self.timeout_s = timeout_s
        ms = int(timeout_s * 1000)
        self.common: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": "pinpipe",
            "logger": LOGGER,  # librdkafka's own logs, through Python logging
            "socket.connection.setup.timeout.ms": ms,
            "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 5000,
            **url_settings,
            **dict(kafka or {}),
            **config,
        }
        self.max_record_bytes = int(self.common.get("message.max.bytes", 1_000_000)) - FRAMING_BYTES
        """The largest record (value, key and headers) sent: librdkafka refuses a larger one at once."""
        try:
            self._admin = admin.AdminClient(self.common)
        except ck.KafkaException as exc:  # an unknown or invalid librdkafka property
            raise ConfigError(f"invalid Kafka setting for {bootstrap}: {exc.args[0].str()}") from exc
        self.index = KafkaIdempotencyIndex(self.common, timeout_s)
        self.claims = KafkaClaims(self)
        self._partitions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._children: list[KafkaLogWriter | KafkaLogReader] = []

    # admin
    def create_topic(
        self, topic: str, partitions: int | None = None, *, config: Mapping[str, str] | None = None
    ) -> None:
        """Create ``topic`` (with extra topic ``config``) unless it exists."""
        count = partitions or self.default_partitions
        if not topic or count < 1:
            raise LogError(f"cannot create topic {topic!r} with {count} partitions")
        listed = self._listed()
        if topic in listed:
            return
        same = topic.replace(".", "_")
        twin = next((name for name in listed if name.replace(".", "_") == same), None)
        if twin is not None:
            raise TopicCollisionError(
                f"topic {topic!r} collides with the existing topic {twin!r}: {ONE_CHARACTER}"
            )
        replicas, min_isr = self.replication()
        futures = self._admin.create_topics(
            [
                admin.NewTopic(
                    topic,
                    num_partitions=count,
                    replication_factor=replicas,
                    config={"min.insync.replicas": str(min_isr), **dict(config or {})},
                )
            ],
            operation_timeout=self.timeout_s,
            request_timeout=self.timeout_s,
        )
        try:
            futures[topic].result()
        except ck.KafkaException as exc:
            error = exc.args[0]
            if error.code() == ck.KafkaError.TOPIC_EXCEPTION and "collides" in error.str():
                raise TopicCollisionError(f"{error.str()}: {ONE_CHARACTER}") from exc  # created meanwhile
            if error.code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise_for(error, f"create topic {topic!r}")
        self._wait_for(lambda names: topic in names, f"topic {topic!r} to appear")
        deadline = time.monotonic() + self.timeout_s
        while True:  # returns once every partition's leader answers
            try:
                self.end_offsets(topic)
                return
            except TopicNotFoundError:  # on a cluster, the next metadata answer may come from a broker
                if time.monotonic() > deadline:  # that has not heard of the topic yet
                    raise
                time.sleep(0.05)

    def replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) for new topics: the settings, or derived from the
        brokers alive now (three or more: 3 and 2, so one broker may fail without refusing appends)."""
        replicas = self.replication_factor or min(3, max(1, len(self.brokers())))
        min_isr = self.min_insync_replicas or (2 if replicas >= 3 else 1)
        return replicas, min(min_isr, replicas)

    def brokers(self) -> dict[int, str]:
        """The cluster's live brokers: id -> ``host:port``."""
        try:
            meta = self._admin.list_topics(timeout=self.timeout_s)
        except ck.KafkaException as exc:
            raise_for(exc.args[0], "list brokers")
        return {b.id: f"{b.host}:{b.port}" for b in sorted(meta.brokers.values(), key=lambda b: b.id)}

    def owners(self, group: str) -> dict[tuple[str, int], str]:
        """Which member of ``group`` owns each assigned partition now (its client id), from the group
        coordinator; empty for a group without subscribed members."""
        try:
            described = self._admin.describe_consumer_groups([group], request_timeout=self.timeout_s)
            members = described[group].result().members or []
        except ck.KafkaException as exc:
            if exc.args[0].code() == ck.KafkaError.GROUP_ID_NOT_FOUND:
                return {}
            raise_for(exc.args[0], f"describe group {group!r}")
        return {
            (tp.topic, tp.partition): m.client_id
            for m in members
            if m.assignment is not None
            for tp in m.assignment.topic_partitions
        }

    def delete_topic(self, topic: str) -> None:
        """Delete ``topic`` and its idempotency claims topic."""
        claims = CLAIMS_PREFIX + topic
        futures = self._admin.delete_topics([topic, claims], operation_timeout=self.timeout_s)
        try:
            futures[topic].result()
        except ck.KafkaException as exc:
            raise_for(exc.args[0], f"delete topic {topic!r}")
        try:
            futures[claims].result()
        except ck.KafkaException as exc:  # a topic never written with idempotency keys has none
            if exc.args[0].code() not in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError.TOPIC_EXCEPTION):
                raise_for(exc.args[0], f"delete topic {claims!r}")
        self.index.forget(topic)
        self.claims.forget(topic)
        with self._lock:
            self._partitions.pop(topic, None)
        self._wait_for(lambda names: topic not in names, f"topic {topic!r} to go")

    def topics(self) -> dict[str, int]:
        """Topics and partition counts, without internal ``__*`` topics (Kafka's, pinpipe's claims)."""
        return {name: count for name, count in self._listed().items() if not name.startswith("__")}

    def _listed(self) -> dict[str, int]:
        """Every topic and its partition count."""
        try:
            meta = self._admin.list_topics(timeout=self.timeout_s)
        except ck.KafkaException as exc:
            raise_for(exc.args[0], "list topics")
        found = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        with self._lock:
            self._partitions.update(found)
        return found

    def partition_count(self, topic: str) -> int:
        """Partitions of ``topic`` (cached once seen); TopicNotFoundError when it does not exist."""
        with self._lock:
            if topic in self._partitions:
                return self._partitions[topic]
        count = self._listed().get(topic)
        if count is None:
            raise TopicNotFoundError(f"topic {topic!r} not found")
        return count

    def end_offsets(self, topic: str) -> dict[int, int]:
        count = self._listed().get(topic)
        if count is None:
            raise TopicNotFoundError(f"topic {topic!r} not found")
        requests = {ck.TopicPartition(topic, p): admin.OffsetSpec.latest() for p in range(count)}
        deadline = time.monotonic() + self.timeout_s
        while True:
            futures = self._admin.list_offsets(requests, request_timeout=self.timeout_s)
            try:
                out = {tp.partition: future.result().offset for tp, future in futures.items()}
                return dict(sorted(out.items()))
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.code() == ck.KafkaError._NOENT:  # "Failed to query partition leaders: No leaders
                    # found": no broker leads them now (one down or restarting), as retryable as a timeout
                    raise LogUnavailableError(f"Kafka: end offsets of {topic!r}: {err.str()}") from exc
                # a new topic's partitions are listed before their leader serves them: wait for it
                if err.code() not in _SETTLING or time.monotonic() > deadline:
                    raise_for(err, f"end offsets of {topic!r}")
                time.sleep(0.05)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        request = [ck.ConsumerGroupTopicPartitions(group)]
        try:
            result = self._admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s)
            partitions = result[group].result().topic_partitions or []
        except ck.KafkaException as exc:
            if exc.args[0].code() == ck.KafkaError.GROUP_ID_NOT_FOUND:
                return {}
            raise_for(exc.args[0], f"committed offsets of group {group!r}")
        return {
            tp.partition: tp.offset
            for tp in sorted(partitions, key=lambda tp: tp.partition)
            if tp.topic == topic and tp.offset >= 0
        }

    def groups(self) -> list[str]:
        try:
            result = self._admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        except ck.KafkaException as exc:
            raise_for(exc.args[0], "list consumer groups")
        return sorted(g.group_id for g in result.valid if g.group_id != "pinpipe-idempotency-scan")

    def _wait_for(self, done: Any, what: str) -> None:
        """Topic creation and deletion are asynchronous in Kafka: wait until metadata shows them."""
        deadline = time.monotonic() + self.timeout_s
        while not done(self._listed()):
            if time.monotonic() > deadline:
                raise LogUnavailableError(
                    f"Kafka at {self.common['bootstrap.servers']}: timed out waiting for {what}"
                )
            time.sleep(0.05)

    def refusal(
        self, value: bytes, key: bytes | None, headers: Headers, timestamp: float | None
    ) -> str | None:
        size = len(value) + len(key or b"") + sum(len(n.encode()) + len(v or b"") for n, v in headers)
        if size > self.max_record_bytes:
            return TOO_LARGE % (size, self.max_record_bytes)
        if timestamp is not None:
            now = time.time()
            if timestamp > now + AHEAD_S:
                return TOO_NEW
            if timestamp < now - BEHIND_S:
                return TOO_OLD
        return None

    # factories
    def writer(self) -> KafkaLogWriter:
        writer = KafkaLogWriter(self)
        self._children.append(writer)
        return writer

    def reader(self, group: str, topics: Sequence[str]) -> KafkaLogReader:
        reader = KafkaLogReader(self.common, group, topics, self.timeout_s)
        self._children.append(reader)
        return reader

    def group_reader(
        self,
        group: str,
        topics: Sequence[str],
        listener: PartitionListener,
        instance_id: str | None = None,
    ) -> KafkaGroupReader:
        """A reader sharing the topics' partitions with the group's other members (see kafka.group);
        ``instance_id``: its static membership name."""
        reader = KafkaGroupReader(self.common, group, topics, self.timeout_s, listener, instance_id)
        self._children.append(reader)
        return reader

    def close(self) -> None:
        for child in self._children:
            child.close()
        self._children.clear()
        self.claims.close()

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
