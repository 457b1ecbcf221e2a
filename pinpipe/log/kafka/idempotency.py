"""Idempotency keys on Kafka: an index rebuilt from the topic itself.

Kafka's idempotent producer removes duplicates caused by its own retries inside one producer session,
but knows nothing of an application's retry (the emulator re-sending a request after a 503). pinpipe
therefore writes each record's idempotency key into a record header (``pinpipe-idempotency-key``), its
fingerprint into another (``pinpipe-idempotency-fingerprint``), and keeps, per topic, an in-memory index
key -> (partition, offset, fingerprint).

The index is rebuilt from the topic, not from a side file, so it cannot disagree with the log: the
first keyed append to a topic in a process reads the headers of the whole topic once; after an append
that failed or timed out (the records may or may not have landed) the index is marked stale and the next
keyed append reads what was added since the last read before deciding. Our own acknowledged appends
update the index directly.

The index covers appends from this process and everything in the topic at the last catch-up; two
processes writing the same new key at the same moment agree through claims
(:mod:`pinpipe.log.kafka.claims`), which call :meth:`KafkaIdempotencyIndex.refresh` to learn what another
process stored. Memory grows with the number of keys (about 150 bytes each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HEADER = "pinpipe-idempotency-key"
FINGERPRINT_HEADER = "pinpipe-idempotency-fingerprint"
Placement = tuple[int, int, str | None]
"""(partition, offset, fingerprint) of the record stored under a key."""


class KafkaIdempotencyIndex:
    """(topic, idempotency key) -> (partition, offset, fingerprint), with in-flight claims so that two
    threads appending the same key never both write it."""

    def __init__(self, consumer_config: Mapping[str, Any], timeout_s: float) -> None:
        self._config = dict(consumer_config)
        self._timeout_s = timeout_s
        self._seen: dict[str, dict[str, Placement]] = {}
        self._scanned: dict[str, dict[int, int]] = {}  # topic -> partition -> next offset to read
        self._fresh: set[str] = set()
        self._pending: set[tuple[str, str]] = set()
        self._scanning: set[str] = set()
        self._cond = threading.Condition()

    def claim(self, topic: str, keys: Iterable[str]) -> dict[str, Placement]:
        """Placements already known for ``keys``; the other keys are claimed by the caller, who must
        :meth:`release` them."""
        return self.claim_many(topic, [list(keys)])[0]

    def claim_many(self, topic: str, calls: Sequence[Sequence[str]]) -> list[dict[str, Placement]]:
        """:meth:`claim` for the keys of several calls (no key in two of them) under one lock: what a
        group of appends does once instead of once per call. Waits while any of the keys is claimed."""
        with self._cond:
            while True:
                while topic in self._scanning or (
                    self._pending and any((topic, k) in self._pending for keys in calls for k in keys)
                ):
                    self._cond.wait(self._timeout_s)
                if topic in self._fresh:
                    break
                self._catch_up(topic)
            seen = self._seen.setdefault(topic, {})
            pending = self._pending
            out = []
            for keys in calls:
                known = {}
                for k in keys:
                    if k in seen:
                        known[k] = seen[k]
                    else:
                        pending.add((topic, k))
                out.append(known)
            return out

    def release(
        self, topic: str, keys: Iterable[str], placed: Mapping[str, Placement], wrote: bool = True
    ) -> None:
        """Record where claimed keys landed (``placed``); a claimed key missing from it failed, so the
        topic is re-read before the next keyed append (unless nothing was written: ``wrote`` False)."""
        self.release_many(topic, [(keys, placed, wrote)])

    def release_many(
        self, topic: str, calls: Sequence[tuple[Iterable[str], Mapping[str, Placement], bool]]
    ) -> None:
        """:meth:`release` for several calls, each ``(keys, placed, wrote)``, under one lock."""
        with self._cond:
            seen = self._seen.setdefault(topic, {})
            scanned = self._scanned.setdefault(topic, {})
            pending = self._pending
            for keys, placed, wrote in calls:
                for key in keys:
                    pending.discard((topic, key))
                    if not wrote:
                        continue
                    where = placed.get(key)
                    if where is None:
                        self._fresh.discard(topic)
                        continue
                    seen[key] = where
                    partition, offset, _ = where
                    if scanned.get(partition) == offset:  # contiguous: nobody else wrote in between
                        scanned[partition] = offset + 1
            self._cond.notify_all()

    def refresh(self, topic: str, keys: Iterable[str]) -> dict[str, Placement]:
        """Placements of ``keys`` (claimed by the caller) after reading what the topic gained since the
        last read: how a process learns that another one stored them."""
        with self._cond:
            while topic in self._scanning:
                self._cond.wait(self._timeout_s)
            self._catch_up(topic)
            seen = self._seen.setdefault(topic, {})
            return {k: seen[k] for k in keys if k in seen}

    def forget(self, topic: str) -> None:
        with self._cond:
            self._seen.pop(topic, None)
            self._scanned.pop(topic, None)
            self._fresh.discard(topic)

    def _catch_up(self, topic: str) -> None:
        """Read the idempotency headers appended to ``topic`` since the last read. Called holding the
        lock; the network read runs without it (other topics' appends go on), this topic's claims wait."""
        self._scanning.add(topic)
        start = dict(self._scanned.get(topic, {}))
        self._cond.release()
        try:
            found, scanned = self._read_headers(topic, start)
        finally:
            self._cond.acquire()
            self._scanning.discard(topic)
            self._cond.notify_all()
        seen = self._seen.setdefault(topic, {})
        for key, where in found.items():
            seen.setdefault(key, where)
        done = self._scanned.setdefault(topic, {})
        for partition, offset in scanned.items():
            done[partition] = max(done.get(partition, 0), offset)
        self._fresh.add(topic)

    def _read_headers(
        self, topic: str, start: Mapping[int, int]
    ) -> tuple[dict[str, Placement], dict[int, int]]:
        """(key -> placement, partition -> next offset) for records from ``start`` on; nothing for a
        missing topic (the append will say it is missing)."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        consumer = Consumer(
            {
                **self._config,
                "group.id": "pinpipe-idempotency-scan",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        found: dict[str, Placement] = {}
        scanned: dict[int, int] = {}
        try:
            meta = consumer.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                return found, scanned
            todo = []
            for p in meta.partitions:
                low, high = self._watermarks(consumer, TopicPartition(topic, p))
                begin = max(start.get(p, 0), low)
                if begin < high:
                    todo.append(TopicPartition(topic, p, begin))
                else:
                    scanned[p] = max(begin, high)
            if todo:
                consumer.assign(todo)
            remaining = {tp.partition for tp in todo}
            while remaining:
                msg: Any = consumer.poll(self._timeout_s)
                if msg is None:
                    raise TimeoutError(f"reading idempotency keys of {topic!r} timed out")
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                        continue
                    raise RuntimeError(err.str())
                headers = {name: value for name, value in msg.headers() or () if value is not None}
                if HEADER in headers:
                    fingerprint = headers.get(FINGERPRINT_HEADER)
                    found.setdefault(
                        headers[HEADER].decode(),
                        (msg.partition(), msg.offset(), fingerprint.decode() if fingerprint else None),
                    )
                scanned[msg.partition()] = msg.offset() + 1
            return found, scanned
        finally:
            consumer.close()

    def _watermarks(self, consumer: Any, tp: Any) -> tuple[int, int]:
        """(low, high) of a partition, retrying while a new topic's leader is still being elected."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)
                return int(low), int(high)
            except KafkaException:  # NOT_LEADER..., not flagged retriable by librdkafka here
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
