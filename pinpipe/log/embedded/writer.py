"""Appending to the embedded log: one transaction per call, or per group of concurrent calls.

Group commit: when several threads share a writer (the API server answers requests from a thread pool),
the first caller becomes the leader and runs one transaction for every call queued meanwhile. The group
reads each topic (with its partition ends) and its stored idempotency keys once, places every call's
records in memory, then writes multi-row INSERTs per partition and one UPDATE of the end offsets: few
statements, since each one releases the GIL and may wait to get it back from a busy event loop. A call
that fails (unknown topic, bad partition, key conflict) fails while being placed, before anything is
written, and gets its error alone; the others commit together, paying for one fsync instead of one each.
An error while writing fails the whole group. Every caller returns only after the COMMIT that holds its
records: durability is unchanged.
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
_ROWS_PER_INSERT = 128
"""Rows per INSERT statement (at most 7 values each, far below SQLite's variable limit): a group is written
in a few statements, since each one hands the GIL to the event loop and waits to get it back."""

_Bound = tuple[str, tuple[object, ...]]
"""A row ready to insert: its ``VALUES`` group, with ``NULL`` written in for the columns it has none of,
and the values of its other columns, bytes as ``bytearray``."""
_SHAPES: dict[tuple[bool, bool, bool, bool], str] = {}


def _bound(
    offset: int,
    key: bytes | None,
    value: bytes,
    ts: float,
    ikey: str | None,
    fp: str | None,
    headers: bytes | None,
) -> _Bound:
    """A row as :meth:`EmbeddedLogWriter._write` binds it. Python 3.11's sqlite3 binds ``bytes`` and
    ``None`` through its adapter lookup, which raises and clears an AttributeError for each (binding a
    pin record took 2.2-2.5 µs, now 1.3); ``bytearray`` (stored as the same BLOB) and ``NULL`` written
    in the statement skip it."""
    if ikey is None and fp is None and headers is None:  # the common rows
        if key is None:
            return _NO_KEY, (offset, bytearray(value), ts)
        return _KEYED, (offset, bytearray(key), bytearray(value), ts)
    has = (key is not None, ikey is not None, fp is not None, headers is not None)
    shape = _SHAPES.get(has)
    if shape is None:
        marks = ["?", "?" if has[0] else "NULL", "?", "?", *("?" if h else "NULL" for h in has[1:])]
        shape = _SHAPES[has] = f"({', '.join(marks)})"
    given = (offset, key, value, ts, ikey, fp, headers)
    return shape, tuple(bytearray(v) if type(v) is bytes else v for v in given if v is not None)


_KEYED = "(?, ?, ?, ?, NULL, NULL, NULL)"
_NO_KEY = "(?, NULL, ?, ?, NULL, NULL, NULL)"


@dataclass(slots=True)
class _Call:
    topic: str
    records: Sequence[OutgoingRecord]
    placed: list[tuple[int, int]] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


@dataclass(slots=True)
class _Topic:
    """One topic's state while a group is placed: ends and keys include the calls placed so far."""

    name: str
    id: int
    count: int
    ends: dict[int, int]
    seen: dict[str, tuple[tuple[int, int], str | None]]
    rows: dict[tuple[int, str], list[tuple[object, ...]]] = field(default_factory=dict)
    """The rows to insert by partition and ``VALUES`` group (see :func:`_bound`)."""
    added: dict[int, int] = field(default_factory=dict)


def _known_keys(
    conn: sqlite3.Connection, topic_id: int, count: int, keys: set[str | None]
) -> dict[str, tuple[tuple[int, int], str | None]]:
    """The positions and fingerprints of stored idempotency keys: every partition in one indexed
    query (a UNION ALL) per chunk of keys, the chunk kept under SQLite's oldest limit of 999 variables."""
    wanted = [k for k in keys if k]
    seen: dict[str, tuple[tuple[int, int], str | None]] = {}
    size = max(1, 999 // count)
    for i in range(0, len(wanted), size):
        chunk = wanted[i : i + size]
        marks = ",".join("?" * len(chunk))
        sql = " UNION ALL ".join(
            f'SELECT {p}, ikey, "offset", fp FROM {table(topic_id, p)} '
            f"WHERE ikey IS NOT NULL AND ikey IN ({marks})"
            for p in range(count)
        )
        for p, ikey, offset, fingerprint in conn.execute(sql, chunk * count):
            seen[ikey] = ((p, offset), fingerprint)
    return seen


def alone(results: list[list[tuple[int, int]] | BaseException]) -> list[tuple[int, int]]:
    """The positions of the one call of ``append_many``, or its error raised."""
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    return result


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
        self._key_partitions: dict[int, dict[bytes, int]] = {}
        """Kafka's partition of each key seen lately, by partition count (see :meth:`_partitions_of`)."""
        self._next_retention = time.monotonic() + retention_check_s
        self._closed = False

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        return alone(self.append_many([(topic, records)]))

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
                    topics = self._load_topics(conn, group)
                    for call in group:
                        self._place(topics.get(call.topic), call, now)
                    for state in topics.values():
                        if state is not None:
                            self._write(conn, state)
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

    @staticmethod
    def _load_topics(conn: sqlite3.Connection, group: list[_Call]) -> dict[str, _Topic | None]:
        """Each topic of the group once: its id, partition ends (one row for the topic) and the group's
        stored idempotency keys."""
        topics: dict[str, _Topic | None] = {}
        for call in group:
            if call.topic in topics:
                continue
            topic_id, count, ends_text = conn.execute(
                "SELECT t.id, t.partitions, group_concat(p.partition || ' ' || p.end_offset) "
                "FROM topics t JOIN partitions p ON p.topic_id = t.id WHERE t.name = ?",
                (call.topic,),
            ).fetchone()
            if topic_id is None:
                topics[call.topic] = None
                continue
            ends: dict[int, int] = {}
            for pair in ends_text.split(","):
                partition, end = pair.split(" ")
                ends[int(partition)] = int(end)
            keys = {r.idempotency_key for c in group if c.topic == call.topic for r in c.records}
            keys.discard(None)
            keys.discard("")
            topics[call.topic] = _Topic(
                call.topic, topic_id, count, ends, _known_keys(conn, topic_id, count, keys)
            )
        return topics

    def _place(self, state: _Topic | None, call: _Call, now: float) -> None:
        """Positions for one call's records, in memory: a call that fails changes nothing, so the
        others of the group commit without it (no SQL runs until every call is placed)."""
        try:
            if state is None:
                raise TopicNotFoundError(f"topic {call.topic!r} not found")
            ends = dict(state.ends)
            seen: dict[str, tuple[tuple[int, int], str | None]] = {}
            rows: list[tuple[int, int, _Bound]] = []
            placed: list[tuple[int, int]] = []
            count, topic = state.count, state.name
            held = sum(ends.values())  # keyless records round-robin on the topic's own count: deterministic
            known = self._partitions_of(count)
            for rec in call.records:
                ikey, key, value = rec.idempotency_key or None, rec.key, rec.value
                if ikey and (ikey in seen or ikey in state.seen):
                    where, fingerprint = seen[ikey] if ikey in seen else state.seen[ikey]
                    if fingerprint != rec.fingerprint:
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
                    cached = known.get(key)
                    if cached is None:
                        cached = known[key] = partition_for_key(key, count)
                    p = cached
                else:
                    p = held % count
                held += 1
                offset = ends[p]
                ends[p] = offset + 1
                fingerprint = rec.fingerprint if ikey else None
                ts = now if rec.timestamp is None else rec.timestamp
                size = len(value) + (len(key) if key else 0)
                rows.append(
                    (p, size, _bound(offset, key, value, ts, ikey, fingerprint, encode_headers(rec.headers)))
                )
                if ikey:
                    seen[ikey] = ((p, offset), rec.fingerprint)
                placed.append((p, offset))
        except Exception as exc:
            call.error = exc
            return
        state.ends = ends
        state.seen.update(seen)
        for p, size, (shape, values) in rows:
            state.rows.setdefault((p, shape), []).append(values)
            state.added[p] = state.added.get(p, 0) + size
        call.placed = placed

    @staticmethod
    def _write(conn: sqlite3.Connection, state: _Topic) -> None:
        """The group's rows of one topic: multi-row INSERTs per partition and one end-offset UPDATE."""
        for (p, shape), batch in state.rows.items():
            for i in range(0, len(batch), _ROWS_PER_INSERT):
                chunk = batch[i : i + _ROWS_PER_INSERT]
                marks = ",".join([shape] * len(chunk))
                conn.execute(
                    f"INSERT INTO {table(state.id, p)} VALUES {marks}", [v for row in chunk for v in row]
                )
        written = list(state.added)
        if not written:  # every call of the group was a retry of stored records
            return
        cases = " ".join(["WHEN ? THEN ?"] * len(written))
        conn.execute(
            f"UPDATE partitions SET end_offset = CASE partition {cases} END, "
            f"bytes = bytes + CASE partition {cases} END "
            f"WHERE topic_id = ? AND partition IN ({','.join('?' * len(written))})",
            [
                *(v for p in written for v in (p, state.ends[p])),
                *(v for p in written for v in (p, state.added[p])),
                state.id,
                *written,
            ],
        )

    def _partitions_of(self, count: int) -> dict[bytes, int]:
        """The remembered partitions of keys for a topic of ``count`` partitions (murmur2 in Python costs
        about a microsecond per key; the three kinds' records share their keys), emptied once it holds
        ``_KEY_CACHE`` keys."""
        known = self._key_partitions.setdefault(count, {})
        if len(known) >= _KEY_CACHE:
            known.clear()
        return known

    def flush(self) -> None:
        """Nothing to do: every append is durable when it returns."""

    def close(self) -> None:
        with self._cond:
            while self._leading:
                self._cond.wait()
            if not self._closed:
                self._closed = True
                self._conn.close()
