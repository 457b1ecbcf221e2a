"""Appending to the embedded log: one transaction per call, or per group of concurrent calls.

Group commit: when several threads share a writer (the API server answers requests from a thread pool),
the first caller becomes the leader and runs one transaction for every call queued meanwhile, each call
inside its own SAVEPOINT. A call that fails (unknown topic, bad partition) is rolled back to its savepoint
alone and gets its error; the others commit together, paying for one fsync instead of one each. Every
caller returns only after the COMMIT that holds its records: durability is unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pinpipe.errors import IdempotencyConflictError, LogError, TopicNotFoundError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded.db import connect, encode_headers, enforce_retention, errors_of, rollback, table
from pinpipe.log.partitioner import partition_for_key

_KEY_CACHE = 65_536


@dataclass(slots=True)
class _Call:
    topic: str
    records: Sequence[OutgoingRecord]
    placed: list[tuple[int, int]] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class EmbeddedLogWriter:
    """Appends: all records of a call or none of them; thread-safe, with group commit across threads."""

    def __init__(
        self,
        directory: Path,
        retention_bytes: int | None = None,
        retention_s: float | None = None,
        retention_check_s: float = 10.0,
    ) -> None:
        self._directory = directory
        self._retention = (retention_bytes, retention_s, retention_check_s)
        self._conn = connect(directory)
        self._cond = threading.Condition()
        self._queue: list[_Call] = []
        self._leading = False
        self._key_partitions: dict[tuple[bytes, int], int] = {}
        self._next_retention = time.monotonic() + retention_check_s
        self._closed = False

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        (result,) = self.append_many([(topic, records)])
        if isinstance(result, BaseException):
            raise result
        return result

    def append_many(
        self, calls: Sequence[tuple[str, Sequence[OutgoingRecord]]]
    ) -> list[list[tuple[int, int]] | BaseException]:
        """Several appends, each all or nothing, committed with whatever other threads queued: for a
        caller that gathers appends itself (the API's committer) and so spares a thread per append. Each
        call's result is its positions or its error."""
        mine = [_Call(topic, records) for topic, records in calls]
        with self._cond:
            if self._closed:
                raise LogError("append on a closed embedded log writer")
            self._queue.extend(mine)
            while not all(call.done for call in mine):
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                group, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._commit_group(group)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    for c in group:
                        if not c.done:
                            c.error = c.error or LogError("append interrupted")
                            c.done = True
                    self._cond.notify_all()
        results: list[list[tuple[int, int]] | BaseException] = []
        for call in mine:
            if call.error is not None:
                results.append(call.error)
            else:
                assert call.placed is not None
                results.append(call.placed)
        return results

    def _commit_group(self, group: list[_Call]) -> None:
        conn = self._conn
        try:
            with errors_of(self._directory):
                if self._closed:
                    raise LogError("append on a closed embedded log writer")
                conn.execute("BEGIN IMMEDIATE")
                now = time.time()  # one append time per commit: records / distinct times = records per fsync
                try:
                    for call in group:
                        self._run_call(conn, call, now, savepoint=len(group) > 1)
                    conn.execute("COMMIT")
                except BaseException:
                    rollback(conn)
                    raise
        except Exception as exc:
            for call in group:
                call.placed, call.error = None, call.error or exc
            return
        for call in group:
            call.done = True
        self._maybe_enforce_retention()

    def _run_call(self, conn: sqlite3.Connection, call: _Call, now: float, savepoint: bool) -> None:
        if not savepoint:
            call.placed = self._place(conn, call.topic, call.records, now)
            return
        conn.execute("SAVEPOINT call")
        try:
            with errors_of(self._directory):
                call.placed = self._place(conn, call.topic, call.records, now)
        except Exception as exc:
            conn.execute("ROLLBACK TO call")
            call.error = exc
        finally:
            conn.execute("RELEASE call")

    def _maybe_enforce_retention(self) -> None:
        retention_bytes, retention_s, every = self._retention
        if time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + every
        try:
            with errors_of(self._directory):
                enforce_retention(self._conn, retention_bytes, retention_s)
        except LogError:
            pass  # retention is best effort: the next check tries again; the appends are committed

    def _place(
        self, conn: sqlite3.Connection, topic: str, records: Sequence[OutgoingRecord], now: float
    ) -> list[tuple[int, int]]:
        row = conn.execute("SELECT id, partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            raise TopicNotFoundError(f"topic {topic!r} not found")
        topic_id, count = row
        ends = dict(
            conn.execute("SELECT partition, end_offset FROM partitions WHERE topic_id = ?", (topic_id,))
        )
        seen = self._known_keys(conn, topic_id, count, records)
        rows: dict[int, list[tuple[int, bytes | None, bytes, float, str | None, str | None, bytes | None]]]
        rows = {}
        added: dict[int, int] = {}
        placed: list[tuple[int, int]] = []
        held = sum(ends.values())  # keyless records round-robin on the topic's own count: deterministic
        for rec in records:
            ikey, key, value = rec.idempotency_key or None, rec.key, rec.value
            if ikey and ikey in seen:
                where, fingerprint = seen[ikey]
                if fingerprint != rec.fingerprint:  # raised inside the call's transaction: nothing stays
                    raise IdempotencyConflictError(
                        f"idempotency key {ikey!r} is stored in {topic!r} with another fingerprint"
                    )
                placed.append(where)
                continue
            if type(value) is not bytes or not (key is None or type(key) is bytes):
                raise LogError("record key and value must be bytes")
            if rec.partition is not None:
                p = rec.partition
                if not 0 <= p < count:
                    raise LogError(f"partition {p} out of range: topic {topic!r} has {count} partitions")
            elif key is not None:
                p = self._partition_of(key, count)
            else:
                p = held % count
            held += 1
            offset = ends[p]
            ends[p] = offset + 1
            fingerprint = rec.fingerprint if ikey else None
            ts = now if rec.timestamp is None else rec.timestamp
            rows.setdefault(p, []).append(
                (offset, key, value, ts, ikey, fingerprint, encode_headers(rec.headers))
            )
            added[p] = added.get(p, 0) + len(value) + (len(key) if key else 0)
            if ikey:
                seen[ikey] = ((p, offset), rec.fingerprint)
            placed.append((p, offset))
        for p, batch in rows.items():
            conn.executemany(f"INSERT INTO {table(topic_id, p)} VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            conn.execute(
                "UPDATE partitions SET end_offset = ?, bytes = bytes + ? "
                "WHERE topic_id = ? AND partition = ?",
                (ends[p], added[p], topic_id, p),
            )
        return placed

    def _partition_of(self, key: bytes, count: int) -> int:
        """Kafka's partition of a key, remembered: murmur2 in Python costs microseconds per key."""
        cached = self._key_partitions.get((key, count))
        if cached is None:
            if len(self._key_partitions) >= _KEY_CACHE:
                self._key_partitions.clear()
            cached = self._key_partitions[(key, count)] = partition_for_key(key, count)
        return cached

    @staticmethod
    def _known_keys(
        conn: sqlite3.Connection, topic_id: int, count: int, records: Sequence[OutgoingRecord]
    ) -> dict[str, tuple[tuple[int, int], str | None]]:
        """The positions and fingerprints of the call's idempotency keys already stored: per partition,
        one indexed query per 500 keys."""
        keys = list({rec.idempotency_key for rec in records if rec.idempotency_key})
        seen: dict[str, tuple[tuple[int, int], str | None]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for p in range(count):
                for ikey, offset, fingerprint in conn.execute(
                    f'SELECT ikey, "offset", fp FROM {table(topic_id, p)} '
                    f"WHERE ikey IS NOT NULL AND ikey IN ({marks})",
                    chunk,
                ):
                    seen[ikey] = ((p, offset), fingerprint)
        return seen

    def flush(self) -> None:
        """Nothing to do: every append is durable when it returns."""

    def close(self) -> None:
        with self._cond:
            while self._leading:
                self._cond.wait()
            if not self._closed:
                self._closed = True
                self._conn.close()
