"""Writers and readers of :class:`~pinpipe.log.kinesis.KinesisLog` (the mapping is described there)."""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pinpipe.errors import IdempotencyConflictError, LogError, LogUnavailableError
from pinpipe.log.base import OutgoingRecord, Record, TopicPartition
from pinpipe.log.kinesis.streams import GET_LIMIT, KinesisStreams, error_code
from pinpipe.log.partitioner import partition_for_key

MAX_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
PUT_ATTEMPTS = 8
NO_KEY = "pinpipe~none"
B64 = "pinpipe~b64~"


def encode_key(key: bytes | None) -> str:
    """The PartitionKey holding ``key``: its text when that is valid, else a marked base64 form."""
    if key is None:
        return NO_KEY
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if 1 <= len(text) <= 256 and not text.startswith("pinpipe~"):
        return text
    encoded = B64 + base64.b64encode(key).decode("ascii")
    if len(encoded) > 256:
        raise LogError(f"record key of {len(key)} bytes does not fit a Kinesis partition key")
    return encoded


def record_problem(value: bytes, key: bytes | None) -> str | None:
    """Why a Kinesis stream would not take the record, or None: its data and partition key together
    hold at most 1 MiB, and the key must fit a partition key."""
    try:
        partition_key = encode_key(key)
    except LogError as exc:
        return str(exc)
    size = len(value) + len(partition_key.encode())
    if size > MAX_RECORD_BYTES:
        return f"record of {size} bytes: a Kinesis record holds at most 1 MiB of data and partition key"
    return None


def decode_key(partition_key: str) -> bytes | None:
    if partition_key == NO_KEY:
        return None
    if partition_key.startswith(B64):
        try:
            return base64.b64decode(partition_key[len(B64) :], validate=True)
        except binascii.Error:
            pass
    return partition_key.encode("utf-8")


class KinesisLogWriter:
    def __init__(self, log: KinesisStreams) -> None:
        self.log = log
        self._round_robin = itertools.count()
        self._lock = threading.Lock()

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        if not records:
            return []
        shards = self.log.shards(topic)
        count = len(shards)
        for rec in records:
            if rec.partition is not None and not 0 <= rec.partition < count:
                raise LogError(f"partition {rec.partition} out of range: {topic!r} has {count}")
            if (problem := record_problem(rec.value, rec.key)) is not None:
                raise LogError(problem)
            if rec.headers or rec.timestamp is not None:
                raise LogError("a Kinesis record carries neither headers nor a producer's timestamp")
        with self._lock:  # an idempotency key is checked and stored by one append at a time
            keys = sorted({r.idempotency_key for r in records if r.idempotency_key})
            known = self.log.state.placed(topic, keys)
            fingerprints = {key: where[2] for key, where in known.items()}
            for rec in records:  # every conflict is found before anything is sent
                key = rec.idempotency_key
                if key and fingerprints.setdefault(key, rec.fingerprint) != rec.fingerprint:
                    raise IdempotencyConflictError(
                        f"idempotency key {key!r} is stored in {topic!r} with another fingerprint"
                    )
            first_of: dict[str, int] = {}
            todo: dict[int, int] = {}  # record index -> partition
            for i, rec in enumerate(records):
                key = rec.idempotency_key
                if key and (key in known or key in first_of):
                    continue
                if key:
                    first_of[key] = i
                todo[i] = self._partition(rec, count)
            entries = [
                (
                    i,
                    {
                        "Data": records[i].value,
                        "PartitionKey": encode_key(records[i].key),
                        "ExplicitHashKey": shards[p].start_hash,
                    },
                )
                for i, p in todo.items()
            ]
            seqs, failure = self._put(topic, entries)
            placed = self._offsets(topic, todo, seqs)
            self.log.state.remember(
                topic, {k: (*placed[i], records[i].fingerprint) for k, i in first_of.items() if i in placed}
            )
            if failure is not None:
                raise failure
        out = []
        for i, rec in enumerate(records):
            key = rec.idempotency_key or ""
            if i in placed:
                out.append(placed[i])
            else:
                out.append(known[key][:2] if key in known else placed[first_of[key]])
        return out

    def _partition(self, rec: OutgoingRecord, count: int) -> int:
        if rec.partition is not None:
            return rec.partition
        if rec.key is not None:
            return partition_for_key(rec.key, count)
        return next(self._round_robin) % count

    def _put(
        self, topic: str, entries: list[tuple[int, dict[str, Any]]]
    ) -> tuple[dict[int, str], LogError | None]:
        """PutRecords in batches within the limits; retry each batch's failed records. Returns the
        sequence number of every record that landed, and the error that stopped the rest (if any)."""
        seqs: dict[int, str] = {}
        for batch in _batches(entries):
            pending = batch
            delay = 0.05
            for _attempt in range(PUT_ATTEMPTS):
                try:
                    resp = self.log.call(
                        topic, self.log.client.put_records, StreamName=topic, Records=[e for _, e in pending]
                    )
                except LogError as exc:
                    return seqs, exc
                failed = []
                for (i, entry), result in zip(pending, resp["Records"], strict=True):
                    if result.get("SequenceNumber") and not result.get("ErrorCode"):
                        seqs[i] = result["SequenceNumber"]
                    else:
                        failed.append(((i, entry), result.get("ErrorCode", "?")))
                pending = [item for item, _ in failed]
                if not pending:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            if pending:
                codes = sorted({code for _, code in failed})
                return seqs, LogUnavailableError(
                    f"Kinesis did not accept {len(pending)} records of {topic!r} "
                    f"after {PUT_ATTEMPTS} tries: {codes}"
                )
        return seqs, None

    def _offsets(
        self, topic: str, todo: Mapping[int, int], seqs: Mapping[int, str]
    ) -> dict[int, tuple[int, int]]:
        """Offsets of the records that landed: read each touched shard back up to the last of them."""
        placed: dict[int, tuple[int, int]] = {}
        for p in sorted({todo[i] for i in seqs}):
            mine = {i: s for i, s in seqs.items() if todo[i] == p}
            wanted = list(mine.values())
            found: dict[str, int] = {}
            for _attempt in range(20):
                self.log.sync(topic, p, until=max(int(s) for s in wanted))
                found = self.log.state.offsets_of(topic, p, wanted)
                if len(found) == len(wanted):
                    break
                time.sleep(0.1)
            else:
                raise LogUnavailableError(f"records appended to {topic!r} are not readable back yet")
            placed.update((i, (p, found[s])) for i, s in mine.items())
        return placed

    def flush(self) -> None:
        """Appends are synchronous: nothing is buffered."""

    def close(self) -> None:
        pass


def _batches(entries: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    batches: list[list[tuple[int, dict[str, Any]]]] = []
    current: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for item in entries:
        entry = item[1]
        weight = len(entry["Data"]) + len(entry["PartitionKey"].encode("utf-8"))
        if current and (len(current) == MAX_RECORDS or size + weight > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += weight
    if current:
        batches.append(current)
    return batches


class KinesisLogReader:
    """Reads every shard of its streams from the group's committed offsets (0 when none)."""

    def __init__(self, log: KinesisStreams, group: str, topics: Sequence[str]) -> None:
        self.log = log
        self.group = group
        self.tps: list[TopicPartition] = [(t, p) for t in topics for p in range(len(log.shards(t)))]
        self.position: dict[TopicPartition, int] = {}
        for topic in topics:
            committed = log.state.committed(group, topic)
            self.position.update({(topic, p): committed.get(p, 0) for t, p in self.tps if t == topic})
        self._iterators: dict[TopicPartition, str | None] = {}
        self._turn = 0

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        out: list[Record] = []
        while True:
            order = self.tps[self._turn :] + self.tps[: self._turn]
            self._turn = (self._turn + 1) % max(1, len(self.tps))
            for tp in order:
                if len(out) >= max_records:
                    break
                out.extend(self._read(tp, max_records - len(out)))
            left = deadline - time.monotonic()
            if out or left <= 0 or max_records <= 0:
                return out
            time.sleep(min(0.2, left))  # Kinesis allows 5 GetRecords per second per shard

    def _read(self, tp: TopicPartition, limit: int) -> list[Record]:
        topic, partition = tp
        for _attempt in range(2):
            it = self._iterators.get(tp) or self._start(tp)
            if it is None:
                return []
            try:
                page = self.log.call(
                    topic, self.log.client.get_records, ShardIterator=it, Limit=min(limit, GET_LIMIT)
                )
                break
            except LogError as exc:
                if error_code(exc.__cause__ or exc) != "ExpiredIteratorException":
                    raise
                self._iterators.pop(tp, None)
        else:
            return []
        self._iterators[tp] = page.get("NextShardIterator")
        raw = page["Records"]
        start = self.position[tp]
        self.log.state.index(topic, partition, start, [r["SequenceNumber"] for r in raw])
        self.position[tp] = start + len(raw)
        return [
            Record(
                topic,
                partition,
                start + n,
                decode_key(r["PartitionKey"]),
                bytes(r["Data"]),
                r["ApproximateArrivalTimestamp"].timestamp(),
            )
            for n, r in enumerate(raw)
        ]

    def _start(self, tp: TopicPartition) -> str | None:
        """A shard iterator at this reader's position, or None when the position is past the end."""
        topic, partition = tp
        pos = self.position[tp]
        state = self.log.state
        if pos == 0:
            first = state.sequence(topic, partition, 0)
            if first is None:
                return self.log.iterator(topic, partition, "TRIM_HORIZON")
            return self.log.iterator(topic, partition, "AT_SEQUENCE_NUMBER", first)
        before = state.sequence(topic, partition, pos - 1)
        if before is None:
            self.log.sync(topic, partition)
            before = state.sequence(topic, partition, pos - 1)
            if before is None:
                return None
        return self.log.iterator(topic, partition, "AFTER_SEQUENCE_NUMBER", before)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.log.state.commit(self.group, offsets)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if (topic, partition) not in self.position:
            raise LogError(f"{topic!r} partition {partition} is not read by this reader")
        self.position[(topic, partition)] = offset
        self._iterators.pop((topic, partition), None)

    def close(self) -> None:
        self._iterators.clear()
