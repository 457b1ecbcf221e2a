"""The embedded log's on-disk layout: one SQLite database in WAL mode, its schema, and retention.

Layout of ``<dir>/log.db``::

    topics(id, name, partitions, created)          id AUTOINCREMENT: never reused, so a stale cached id
                                                   can never read a later topic of the same name
    partitions(topic_id, partition, start_offset, end_offset, bytes)
    r_<topic_id>_<partition>(offset INTEGER PRIMARY KEY, key, value, ts, ikey, fp)
                                                   one table per partition: the offset is the rowid, so
                                                   append and range reads need no secondary index;
                                                   a partial UNIQUE index on ikey finds idempotency keys,
                                                   fp is the fingerprint stored with the key
    commits("group", topic, partition, offset)     consumer group offsets

``partitions.end_offset`` is stored, not derived from the rows, so offsets are never reused even after
retention removed every record of a partition. An idempotency key lives in its record's row, so it is
stored in the same transaction and dropped by retention with its record at no extra cost.
``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`; a log of version 2 (no ``fp`` column) is upgraded in
place when opened (one transaction adding the column); a log of another version is refused clearly.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pinpipe.errors import LogError, LogUnavailableError

DB_NAME = "log.db"
SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL DEFAULT 0,
    end_offset INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (  -- created last: its presence means the schema is complete
    "group" TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    PRIMARY KEY ("group", topic, partition)
) WITHOUT ROWID;
"""


def table(topic_id: int, partition: int) -> str:
    """The name of a partition's record table (ids are integers: nothing to quote)."""
    return f"r_{int(topic_id)}_{int(partition)}"


def create_partition(conn: sqlite3.Connection, topic_id: int, partition: int) -> None:
    """A partition's record table and its idempotency key index (inside the caller's transaction)."""
    name = table(topic_id, partition)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {name} "
        '("offset" INTEGER PRIMARY KEY, key BLOB, value BLOB NOT NULL, ts REAL NOT NULL, ikey TEXT, fp TEXT)'
    )
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name}_ikey ON {name} (ikey) WHERE ikey IS NOT NULL")
    conn.execute("INSERT INTO partitions (topic_id, partition) VALUES (?, ?)", (topic_id, partition))


def connect(directory: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL, synchronous=FULL.

    Errors: busy or I/O trouble is LogUnavailableError (retriable); a path that cannot hold the log or a
    file that is not a log database is LogError.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogError(f"embedded log {directory}: {exc}") from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            directory / DB_NAME,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LogError(f"embedded log {directory}: cannot switch to WAL (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise LogUnavailableError(f"embedded log {directory}: {exc}") from exc
        if isinstance(exc, sqlite3.Error):
            raise LogError(f"embedded log {directory}: {exc}") from exc
        raise


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables on first use; an existing log is only checked, without taking the write lock
    (unless it must be upgraded)."""
    if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'commits'").fetchone()[0]:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 2:
            _upgrade_from_2(conn)
        _check_version(conn)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'commits'").fetchone()[0]:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    _check_version(conn)


def _upgrade_from_2(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: add the fingerprint column to every partition table (records stored before keep
    no fingerprint). Another process may upgrade at the same moment: the version is re-read under the
    write lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 2:
            names = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'r_[0-9]*_[0-9]*'"
            ).fetchall()
            for (name,) in names:
                conn.execute(f"ALTER TABLE {name} ADD COLUMN fp TEXT")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _check_version(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        raise LogError(
            f"embedded log {path} has layout version {version}, this pinpipe reads {SCHEMA_VERSION}: "
            "consume what you need with the pinpipe that wrote it, then delete the log directory"
        )


def enforce_retention(
    conn: sqlite3.Connection, retention_bytes: int | None, retention_s: float | None
) -> int:
    """Drop the oldest records of every partition beyond the size or age limit; returns how many.

    One transaction per partition that has something to drop. The start offset moves forward; the end
    offset never moves back. Idempotency keys go with their records (a repeat after that is stored again).
    """
    if retention_bytes is None and retention_s is None:
        return 0
    rows = conn.execute(
        "SELECT topic_id, partition, end_offset - start_offset, bytes FROM partitions"
    ).fetchall()
    cutoff = time.time() - retention_s if retention_s is not None else None
    removed = 0
    for topic_id, partition, held, size in rows:
        try:
            if held > 0 and _over_limit(conn, table(topic_id, partition), size, retention_bytes, cutoff):
                removed += _trim(conn, topic_id, partition, retention_bytes, cutoff)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # the topic was deleted meanwhile
                raise
    return removed


def _trim(
    conn: sqlite3.Connection, topic_id: int, partition: int, retention_bytes: int | None, cutoff: float | None
) -> int:
    name = table(topic_id, partition)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT start_offset, end_offset, bytes FROM partitions WHERE topic_id = ? AND partition = ?",
            (topic_id, partition),
        ).fetchone()
        count = 0
        if row is not None:
            start, end, size = row
            new_start = start
            if cutoff is not None:
                young = conn.execute(
                    f'SELECT "offset" FROM {name} WHERE ts >= ? ORDER BY "offset" LIMIT 1', (cutoff,)
                ).fetchone()
                new_start = young[0] if young else end
            dropped = _bytes_between(conn, name, start, new_start)
            if retention_bytes is not None and size - dropped > retention_bytes:
                excess = size - dropped - retention_bytes
                cursor = conn.execute(
                    f'SELECT "offset", length(value) + ifnull(length(key), 0) FROM {name} '
                    f'WHERE "offset" >= ? ORDER BY "offset"',
                    (new_start,),
                )
                for offset, nbytes in cursor:
                    if excess <= 0:
                        break
                    excess -= nbytes
                    dropped += nbytes
                    new_start = offset + 1
                cursor.close()
            if new_start > start:
                count = conn.execute(f'DELETE FROM {name} WHERE "offset" < ?', (new_start,)).rowcount
                conn.execute(
                    "UPDATE partitions SET start_offset = ?, bytes = max(0, bytes - ?) "
                    "WHERE topic_id = ? AND partition = ?",
                    (new_start, dropped, topic_id, partition),
                )
        conn.execute("COMMIT")
        return count
    except BaseException:
        rollback(conn)
        raise


def _over_limit(
    conn: sqlite3.Connection, name: str, size: int, retention_bytes: int | None, cutoff: float | None
) -> bool:
    """A cheap look (no write lock) at whether a partition has anything to drop."""
    if retention_bytes is not None and size > retention_bytes:
        return True
    if cutoff is None:
        return False
    oldest = conn.execute(f'SELECT ts FROM {name} ORDER BY "offset" LIMIT 1').fetchone()
    return oldest is not None and oldest[0] < cutoff


def _bytes_between(conn: sqlite3.Connection, name: str, start: int, stop: int) -> int:
    if stop <= start:
        return 0
    row = conn.execute(
        f'SELECT sum(length(value) + ifnull(length(key), 0)) FROM {name} WHERE "offset" < ?', (stop,)
    ).fetchone()
    return int(row[0] or 0)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any (after an error inside BEGIN ... COMMIT)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteErrors:
    """Context manager turning sqlite3 errors into LogUnavailableError (busy, I/O) or LogError."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return
        message = f"embedded log {self.directory}: {exc}"
        if isinstance(exc, sqlite3.OperationalError):
            raise LogUnavailableError(message) from exc
        raise LogError(message) from exc


def errors_of(directory: Path) -> SqliteErrors:
    return SqliteErrors(directory)
