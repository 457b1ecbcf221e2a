"""The embedded log: durable, partitioned topics in one SQLite database on local disk, no server.

Why SQLite: it gives, with no extra dependency, atomic multi-row transactions that several processes
(the API server appending, the lake sink and the stream processor reading and committing, ``pinpipe
status`` looking) may use at once, with readers never blocking the writer (WAL mode). One ``append()``
call is one transaction holding the records, the partitions' new end offsets and the idempotency keys,
so a retried idempotency key survives a crash exactly like the records do. Threads sharing one writer
get group commit (:mod:`pinpipe.log.embedded.writer`): concurrent calls share one transaction and one
fsync, each call still all or nothing. A server whose event loop holds the GIL appends through a writer
in a child process instead (:meth:`EmbeddedLog.process_writer`, :mod:`pinpipe.log.embedded.process`).

Durability (fsync policy): the database runs in WAL mode with ``synchronous=FULL``; ``append()`` returns
only after its transaction's COMMIT, and SQLite fsyncs the write-ahead log on every commit. An
acknowledged append therefore survives ``kill -9`` of any process and a power loss or OS crash (as far as
the disk honours fsync). Offset commits of consumer groups are durable the same way. Nothing is
acknowledged before it is on disk; there is no "fsync every N ms" window.

Retention, as in Kafka: by age (``retention_ms``, default 7 days) and by size (``retention_bytes`` per
partition, default unlimited), checked by writers at most every ``retention_check_s`` and by
:meth:`EmbeddedLog.enforce_retention`. Offsets are never reused; a reader positioned below a partition's
retained start continues at the start. Options come from keyword arguments or the URL query, e.g.
``embedded:///var/pinpipe/log?partitions=6&retention_ms=86400000&retention_bytes=1073741824``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pinpipe.errors import ConfigError, LogError, LogUnavailableError, TopicNotFoundError
from pinpipe.locations import local_path
from pinpipe.log.base import Headers, TopicPartition
from pinpipe.log.embedded.db import (
    SqliteErrors,
    connect,
    create_partition,
    create_schema,
    enforce_retention,
    errors_of,
    rollback,
    table,
)
from pinpipe.log.embedded.process import ProcessWriter
from pinpipe.log.embedded.reader import EmbeddedLogReader
from pinpipe.log.embedded.writer import EmbeddedLogWriter

DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
_OPTIONS = {"partitions": int, "retention_ms": int, "retention_bytes": int, "retention_check_s": float}


def parse_url(url: str) -> tuple[Path, dict[str, Any]]:
    """``embedded:///abs/dir?opt=v`` -> (directory, options)."""
    parsed = urlsplit(url)
    if parsed.scheme != "embedded":
        raise ConfigError(f"not an embedded log URL: {url!r}")
    directory = local_path(url)
    if directory is None or directory == Path("/"):
        raise ConfigError(f"embedded log URL without a directory: {url!r} (use embedded:///abs/dir)")
    options: dict[str, Any] = {}
    for name, values in parse_qs(parsed.query).items():
        if name not in _OPTIONS:
            raise ConfigError(f"unknown embedded log option {name!r} in {url!r}; known: {sorted(_OPTIONS)}")
        try:
            options[name] = _OPTIONS[name](values[-1])
        except ValueError as exc:
            raise ConfigError(f"bad value for {name} in {url!r}: {values[-1]!r}") from exc
    return directory, options


class EmbeddedLog:
    """The admin side of the embedded log and the factory of its writers and readers.

    Each writer and reader has its own SQLite connection (safe to use from several threads: calls are
    serialised by a lock); any number of processes may open the same directory.
    """

    def __init__(
        self,
        url: str,
        partitions: int = 3,
        retention_ms: int | None = DEFAULT_RETENTION_MS,
        retention_bytes: int | None = None,
        retention_check_s: float = 10.0,
    ) -> None:
        directory, options = parse_url(url)
        self.url = url
        self.directory = directory
        self.default_partitions = int(options.get("partitions", partitions))
        retention_ms = options.get("retention_ms", retention_ms)
        retention_bytes = options.get("retention_bytes", retention_bytes)
        self.retention_s = retention_ms / 1000 if retention_ms is not None and retention_ms >= 0 else None
        self.retention_bytes = (
            retention_bytes if retention_bytes is not None and retention_bytes >= 0 else None
        )
        self.retention_check_s = float(options.get("retention_check_s", retention_check_s))
        if self.default_partitions < 1:
            raise ConfigError(f"partitions must be at least 1, got {self.default_partitions}")
        self._conn = connect(directory)
        self._lock = threading.Lock()
        self._children: weakref.WeakSet[EmbeddedLogWriter | ProcessWriter | EmbeddedLogReader] = (
            weakref.WeakSet()
        )
        try:
            create_schema(self._conn)
        except sqlite3.Error as exc:
            raise LogUnavailableError(f"embedded log {directory}: {exc}") from exc

    # admin
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        count = partitions or self.default_partitions
        if not topic or count < 1:
            raise LogError(f"cannot create topic {topic!r} with {count} partitions")
        with self._lock, self._guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is None:
                    topic_id = conn.execute(
                        "INSERT INTO topics (name, partitions, created) VALUES (?, ?, ?)",
                        (topic, count, time.time()),
                    ).lastrowid
                    assert topic_id is not None
                    for p in range(count):
                        create_partition(conn, topic_id, p)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    def delete_topic(self, topic: str) -> None:
        with self._lock, self._guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT id, partitions FROM topics WHERE name = ?", (topic,)).fetchone()
                if row is None:
                    raise TopicNotFoundError(f"topic {topic!r} not found")
                topic_id, count = row
                for p in range(count):
                    conn.execute(f"DROP TABLE IF EXISTS {table(topic_id, p)}")
                for statement in (
                    "DELETE FROM partitions WHERE topic_id = ?",
                    "DELETE FROM topics WHERE id = ?",
                ):
                    conn.execute(statement, (topic_id,))
                conn.execute("DELETE FROM commits WHERE topic = ?", (topic,))
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    def topics(self) -> dict[str, int]:
        with self._lock, self._guard():
            return dict(self._conn.execute("SELECT name, partitions FROM topics ORDER BY name").fetchall())

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: end for p, (_, end) in self._bounds(topic).items()}

    def start_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the oldest retained offset (equal to the end offset when nothing is held)."""
        return {p: start for p, (start, _) in self._bounds(topic).items()}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._lock, self._guard():
            rows = self._conn.execute(
                'SELECT partition, "offset" FROM commits WHERE "group" = ? AND topic = ? ORDER BY partition',
                (group, topic),
            ).fetchall()
        return dict(rows)

    def groups(self) -> list[str]:
        with self._lock, self._guard():
            return [g for (g,) in self._conn.execute('SELECT DISTINCT "group" FROM commits ORDER BY 1')]

    def enforce_retention(self) -> int:
        """Apply the age and size limits now; returns the number of records dropped."""
        with self._lock, self._guard():
            return enforce_retention(self._conn, self.retention_bytes, self.retention_s)

    def _bounds(self, topic: str) -> dict[int, tuple[int, int]]:
        with self._lock, self._guard():
            rows = self._conn.execute(
                "SELECT p.partition, p.start_offset, p.end_offset FROM topics t "
                "JOIN partitions p ON p.topic_id = t.id WHERE t.name = ? ORDER BY p.partition",
                (topic,),
            ).fetchall()
        if not rows:
            raise TopicNotFoundError(f"topic {topic!r} not found")
        return {p: (start, end) for p, start, end in rows}

    def _guard(self) -> SqliteErrors:
        return errors_of(self.directory)

    def refusal(
        self, value: bytes, key: bytes | None, headers: Headers, timestamp: float | None
    ) -> str | None:
        return None  # SQLite holds a blob of up to 1 GB, far over any request the API reads

    # factories
    def writer(self) -> EmbeddedLogWriter:
        writer = EmbeddedLogWriter(
            self.directory, self.retention_bytes, self.retention_s, self.retention_check_s
        )
        self._children.add(writer)
        return writer

    def process_writer(self) -> ProcessWriter:
        """A writer whose commits run in a child process: for a server whose event loop holds the GIL
        (see :mod:`pinpipe.log.embedded.process`)."""
        writer = ProcessWriter(
            self.directory, (self.retention_bytes, self.retention_s, self.retention_check_s)
        )
        self._children.add(writer)
        return writer

    def reader(self, group: str, topics: Sequence[str]) -> EmbeddedLogReader:
        reader = EmbeddedLogReader(self.directory, group, topics)
        self._children.add(reader)
        return reader

    def close(self) -> None:
        for child in list(self._children):
            child.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EmbeddedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EmbeddedLog", "EmbeddedLogReader", "EmbeddedLogWriter", "TopicPartition", "parse_url"]
