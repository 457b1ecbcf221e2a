"""An in-memory log for unit tests: the interface's reference semantics, with no durability at all."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence

from pinpipe.errors import IdempotencyConflictError, LogError, TopicNotFoundError
from pinpipe.log.base import Headers, OutgoingRecord, Record, TopicPartition
from pinpipe.log.partitioner import partition_for_key


class MemoryLog:
    """Topics, offsets and group commits in dictionaries, shared by its writers and readers."""

    def __init__(self, url: str = "memory://", partitions: int = 3, auto_create: bool = True) -> None:
        self.url = url
        self.default_partitions = partitions
        self.auto_create = auto_create
        self._parts: dict[str, list[list[Record]]] = {}
        self._commits: dict[str, dict[TopicPartition, int]] = {}
        self._idempotency: dict[tuple[str, str], tuple[int, int, str | None]] = {}
        self._round_robin = itertools.count()
        self._lock = threading.Condition()

    # admin
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self._lock:
            self._parts.setdefault(topic, [[] for _ in range(partitions or self.default_partitions)])

    def delete_topic(self, topic: str) -> None:
        with self._lock:
            if self._parts.pop(topic, None) is None:
                raise TopicNotFoundError(f"topic {topic!r} not found")

    def topics(self) -> dict[str, int]:
        with self._lock:
            return {name: len(parts) for name, parts in self._parts.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {p: len(records) for p, records in enumerate(self._partitions(topic))}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._lock:
            return {p: off for (t, p), off in self._commits.get(group, {}).items() if t == topic}

    def groups(self) -> list[str]:
        return sorted(self._commits)

    def _partitions(self, topic: str) -> list[list[Record]]:
        if topic not in self._parts:
            if not self.auto_create:
                raise TopicNotFoundError(f"topic {topic!r} not found")
            self._parts[topic] = [[] for _ in range(self.default_partitions)]
        return self._parts[topic]

    def refusal(
        self, value: bytes, key: bytes | None, headers: Headers, timestamp: float | None
    ) -> str | None:
        return None

    # factories
    def writer(self) -> MemoryLogWriter:
        return MemoryLogWriter(self)

    def reader(self, group: str, topics: Sequence[str]) -> MemoryLogReader:
        return MemoryLogReader(self, group, topics)

    def close(self) -> None:
        pass

    # used by writer and reader
    def _append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        with self._lock:
            parts = self._partitions(topic)
            for rec in records:
                if rec.partition is not None and not 0 <= rec.partition < len(parts):
                    raise LogError(f"partition {rec.partition} out of range: {topic!r} has {len(parts)}")
            fingerprints: dict[str, str | None] = {}
            for rec in records:  # every conflict is found before anything is stored
                if rec.idempotency_key:
                    seen = self._idempotency.get((topic, rec.idempotency_key))
                    stored = seen[2] if seen else fingerprints.get(rec.idempotency_key, rec.fingerprint)
                    if stored != rec.fingerprint:
                        raise IdempotencyConflictError(
                            f"idempotency key {rec.idempotency_key!r} is stored with another fingerprint"
                        )
                    fingerprints[rec.idempotency_key] = rec.fingerprint
            placed = []
            for rec in records:
                seen = self._idempotency.get((topic, rec.idempotency_key)) if rec.idempotency_key else None
                if seen is not None:
                    placed.append(seen[:2])
                    continue
                if rec.partition is not None:
                    p = rec.partition
                elif rec.key is not None:
                    p = partition_for_key(rec.key, len(parts))
                else:
                    p = next(self._round_robin) % len(parts)
                offset = len(parts[p])
                ts = time.time() if rec.timestamp is None else rec.timestamp
                parts[p].append(Record(topic, p, offset, rec.key, rec.value, ts, rec.headers))
                if rec.idempotency_key:
                    self._idempotency[(topic, rec.idempotency_key)] = (p, offset, rec.fingerprint)
                placed.append((p, offset))
            self._lock.notify_all()
            return placed


class MemoryLogWriter:
    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        return self._log._append(topic, records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryLogReader:
    def __init__(self, log: MemoryLog, group: str, topics: Sequence[str]) -> None:
        self._log = log
        self._group = group
        self._topics = list(topics)
        self._positions: dict[TopicPartition, int] = {}

    def _position(self, tp: TopicPartition) -> int:
        if tp not in self._positions:
            self._positions[tp] = self._log._commits.get(self._group, {}).get(tp, 0)
        return self._positions[tp]

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for topic in self._topics:
            for p, records in enumerate(self._log._partitions(topic)):
                pos = self._position((topic, p))
                chunk = records[pos : pos + max_records - len(out)]
                out.extend(chunk)
                self._positions[(topic, p)] = pos + len(chunk)
                if len(out) >= max_records:
                    return out
        return out

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        with self._log._lock:
            while True:
                out = self._take(max_records)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._log._lock.wait(remaining)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self._log._lock:
            self._log._commits.setdefault(self._group, {}).update(offsets)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._positions[(topic, partition)] = offset

    def close(self) -> None:
        pass
