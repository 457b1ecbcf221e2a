"""A consumer-group member reading the embedded log: positions, polling with short waits, commits.

Readers never block the writer (SQLite WAL). Waiting for new records is a poll of ``PRAGMA
data_version`` (a counter SQLite bumps when another connection commits) with back-off sleeps from 1 ms up
to 50 ms, so a record appended by any process is seen within ~50 ms without re-running range queries
while nothing changes; a poll that finds the version of its last empty read returns at once, so a
caller polling often (the stream processor, while idle) costs one query per look.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pinpipe.errors import LogError
from pinpipe.log.base import Record, TopicPartition
from pinpipe.log.embedded.db import connect, decode_headers, errors_of, rollback, table

MAX_WAIT_S = 0.05


class EmbeddedLogReader:
    """Reads every partition of its topics from the group's committed offsets (earliest if none).

    Topics that do not exist yet are picked up when they appear. ``poll`` holds at most ``max_records``
    records in memory; it starts each poll at the next partition in turn, so a busy partition cannot
    starve the others.
    """

    def __init__(self, directory: Path, group: str, topics: Sequence[str]) -> None:
        self._directory = directory
        self._group = group
        self._topics = list(dict.fromkeys(topics))
        self._conn = connect(directory)
        self._lock = threading.Lock()
        self._ids: dict[str, tuple[int, int]] = {}  # topic -> (topic id, partition count)
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0
        self._version: int | None = None
        self._empty_at: int | None = None
        """The data version at which every partition was read to its end (nothing to query again)."""
        self._closed = False

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + max(0.0, timeout)
        wait = 0.001
        with self._lock, errors_of(self._directory):
            self._check_open()
            while True:
                self._version = self._data_version()
                records = [] if self._version == self._empty_at else self._take(max_records)
                self._empty_at = None if records or max_records <= 0 else self._version
                if records or max_records <= 0:
                    return records
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    self._lock.release()  # commit() and seek() from other threads may run meanwhile
                    try:
                        time.sleep(min(wait, remaining))
                    finally:
                        self._lock.acquire()
                    self._check_open()
                    wait = min(wait * 2, MAX_WAIT_S)
                    if self._data_version() != self._version:
                        break

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        rows = [(self._group, topic, int(p), int(off)) for (topic, p), off in offsets.items()]
        with self._lock, errors_of(self._directory):
            self._check_open()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    'INSERT INTO commits ("group", topic, partition, "offset") VALUES (?, ?, ?, ?) '
                    'ON CONFLICT ("group", topic, partition) DO UPDATE SET "offset" = excluded."offset"',
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    def seek(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._positions[(topic, partition)] = max(0, int(offset))
            self._empty_at = None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    # internals (called with the lock held)
    def _check_open(self) -> None:
        if self._closed:
            raise LogError("use of a closed embedded log reader")

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _refresh_ids(self) -> None:
        marks = ",".join("?" * len(self._topics))
        rows = self._conn.execute(
            f"SELECT name, id, partitions FROM topics WHERE name IN ({marks})", self._topics
        ).fetchall()
        ids = {name: (topic_id, count) for name, topic_id, count in rows}
        if ids != self._ids:
            committed = self._committed()
            for name, (topic_id, count) in ids.items():
                if self._ids.get(name, (topic_id, 0))[0] != topic_id:  # deleted and created again
                    for p in range(self._ids[name][1]):
                        self._positions.pop((name, p), None)
                for p in range(count):
                    self._positions.setdefault((name, p), committed.get((name, p), 0))
            self._ids = ids

    def _committed(self) -> dict[TopicPartition, int]:
        rows = self._conn.execute(
            'SELECT topic, partition, "offset" FROM commits WHERE "group" = ?', (self._group,)
        ).fetchall()
        return {(topic, p): off for topic, p, off in rows}

    def _take(self, max_records: int) -> list[Record]:
        if len(self._ids) < len(self._topics):
            self._refresh_ids()
        order = [(name, p) for name in self._topics if name in self._ids for p in range(self._ids[name][1])]
        if not order:
            return []
        self._turn = (self._turn + 1) % len(order)
        out: list[Record] = []
        for name, p in order[self._turn :] + order[: self._turn]:
            if len(out) >= max_records:
                break
            position = self._positions[(name, p)]
            try:
                rows = self._conn.execute(
                    f'SELECT "offset", key, value, ts, headers FROM {table(self._ids[name][0], p)} '
                    f'WHERE "offset" >= ? ORDER BY "offset" LIMIT ?',
                    (position, max_records - len(out)),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                self._ids.pop(name, None)  # the topic was deleted: look it up again next time
                continue
            if rows:
                out.extend(
                    Record(name, p, off, key, value, ts, decode_headers(headers))
                    for off, key, value, ts, headers in rows
                )
                self._positions[(name, p)] = rows[-1][0] + 1
        return out
