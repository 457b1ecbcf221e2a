"""What Kinesis does not keep for pinpipe, in one small SQLite file (no DynamoDB).

- ``positions``: per shard, the dense offset of every record (its rank in the shard, from the first
  record the index saw, normally the stream's first) and its sequence number. Offsets are a pure function
  of the shard's content, so two processes indexing the same shard agree; the index only makes the
  mapping cheap (seek to offset N = read after the sequence number of N-1).
- ``commits``: per consumer group and (stream, partition), the next offset to read.
- ``idempotency``: per stream and idempotency key, where the first record with that key landed and its
  fingerprint (the column is added to a file written before it had one).
- ``streams``: each stream's creation time, so a stream deleted and created again starts a fresh index.

Every process of one deployment (API, sink, stream processor, ``status``) should open the same file
(``kinesis://?state=PATH``, by default ``<workdir>/kinesis-state.db``). WAL mode: readers never block.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from pinpipe.errors import LogUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    stream TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, seq TEXT NOT NULL,
    PRIMARY KEY (stream, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    grp TEXT NOT NULL, stream TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, stream, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    stream TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, fp TEXT,
    PRIMARY KEY (stream, key)
) WITHOUT ROWID;
"""


class KinesisStateStore:
    """The SQLite file; one connection shared by the threads of a process (short transactions)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(idempotency)")]
            if "fp" not in columns:
                self._db.execute("ALTER TABLE idempotency ADD COLUMN fp TEXT")
        except sqlite3.Error as exc:
            raise LogUnavailableError(f"cannot open the Kinesis state file {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise LogUnavailableError(f"Kinesis state file {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise LogUnavailableError(f"Kinesis state file {self.path}: {exc}") from exc

    # streams
    def check_incarnation(self, stream: str, created: float) -> None:
        """Forget what was indexed for an older stream of the same name."""
        rows = self._read("SELECT created FROM streams WHERE stream = ?", (stream,))
        if rows and rows[0][0] == created:
            return
        self.forget(stream)
        self._write("INSERT OR REPLACE INTO streams VALUES (?, ?)", [(stream, created)])

    def forget(self, stream: str) -> None:
        for table in ("streams", "positions", "commits", "idempotency"):
            self._write(f"DELETE FROM {table} WHERE stream = ?", [(stream,)])

    # positions
    def last(self, stream: str, partition: int) -> tuple[int, str] | None:
        """(offset, sequence number) of the last indexed record of the shard."""
        rows = self._read(
            "SELECT offset, seq FROM positions WHERE stream = ? AND partition = ?"
            " ORDER BY offset DESC LIMIT 1",
            (stream, partition),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None  # type: ignore[call-overload]

    def sequence(self, stream: str, partition: int, offset: int) -> str | None:
        rows = self._read(
            "SELECT seq FROM positions WHERE stream = ? AND partition = ? AND offset = ?",
            (stream, partition, offset),
        )
        return str(rows[0][0]) if rows else None

    def offsets_of(self, stream: str, partition: int, seqs: list[str]) -> dict[str, int]:
        """Offsets of the given sequence numbers (those indexed)."""
        found: dict[str, int] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT seq, offset FROM positions WHERE stream = ? AND partition = ? AND seq IN ({marks})",
                (stream, partition, *chunk),
            )
            found.update((str(s), int(o)) for s, o in rows)  # type: ignore[call-overload]
        return found

    def index(self, stream: str, partition: int, first_offset: int, seqs: list[str]) -> None:
        """Record that the shard's records from ``first_offset`` on have these sequence numbers."""
        if seqs:
            self._write(
                "INSERT OR IGNORE INTO positions VALUES (?, ?, ?, ?)",
                [(stream, partition, first_offset + i, s) for i, s in enumerate(seqs)],
            )

    # consumer groups
    def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        self._write(
            "INSERT OR REPLACE INTO commits VALUES (?, ?, ?, ?)",
            [(group, stream, partition, off) for (stream, partition), off in offsets.items()],
        )

    def committed(self, group: str, stream: str) -> dict[int, int]:
        rows = self._read(
            "SELECT partition, next_offset FROM commits WHERE grp = ? AND stream = ?", (group, stream)
        )
        return {int(p): int(o) for p, o in rows}  # type: ignore[call-overload]

    def groups(self) -> list[str]:
        return [str(g) for (g,) in self._read("SELECT DISTINCT grp FROM commits ORDER BY grp", ())]

    # idempotency
    def placed(self, stream: str, keys: list[str]) -> dict[str, tuple[int, int, str | None]]:
        """(partition, offset, fingerprint) of the keys already stored."""
        found: dict[str, tuple[int, int, str | None]] = {}
        for key in keys:
            rows = self._read(
                "SELECT partition, offset, fp FROM idempotency WHERE stream = ? AND key = ?", (stream, key)
            )
            if rows:
                p, o, fp = rows[0]
                found[key] = (int(p), int(o), None if fp is None else str(fp))  # type: ignore[call-overload]
        return found

    def remember(self, stream: str, placed: Mapping[str, tuple[int, int, str | None]]) -> None:
        self._write(
            "INSERT OR IGNORE INTO idempotency (stream, key, partition, offset, fp) VALUES (?, ?, ?, ?, ?)",
            [(stream, key, p, o, fp) for key, (p, o, fp) in placed.items()],
        )
