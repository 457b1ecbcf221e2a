"""Delta tables through delta-rs (the ``deltalake`` package): the one place pinpipe opens, reads, writes,
commits and cleans a Delta table, for the batch engines, the stream processor and the dashboard.

delta-rs rather than DuckDB's delta extension, which cannot be downloaded where pinpipe runs offline.

- Opening: :func:`open_table` raises deltalake's ``TableNotFoundError`` when nothing was committed at the
  URL yet; :func:`open_table_if_exists` (and the ``read_*_if_exists`` readers) return None instead.
  Within :func:`shared_handles` each table is opened once and that handle serves every read, commit and
  clean-up of it.
- Exactly once: a commit may carry *application transactions* (``SetTransaction`` actions: an app id and
  a version) beside its rows, so the rows and, say, the stream offsets they came from become visible
  atomically (:func:`append`, :func:`overwrite`, :func:`transaction_versions`).
- Writers that commit every second keep their tables open (:class:`TableCache`) and tidy them
  (:func:`tidy`, :func:`compact`); the batch job deletes replaced files (:func:`remove_replaced_files`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pinpipe import locations
from pinpipe.errors import ConfigError, TableError
from pinpipe.locations import delta_uri

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable

_log = logging.getLogger(__name__)


# -- opening and reading --------------------------------------------------------------------------------
def storage_options(url: str) -> dict[str, str] | None:
    """``storage_options`` for deltalake at ``url``: None for local tables, the AWS settings for ``s3://``."""
    if locations.scheme(url) != "s3":
        return None
    from pinpipe.aws import delta_storage_options

    return delta_storage_options(url)


_HANDLES: ContextVar[dict[str, DeltaTable] | None] = ContextVar("pinpipe_delta_handles", default=None)


@contextmanager
def shared_handles() -> Iterator[None]:
    """Within it, each table is opened once: its handle serves every read, commit and clean-up of the table,
    and each commit made through this module brings it to the new version. An open reads the table's log
    again (about 2 ms; a small batch run made some 40). Only for code that makes every commit to the tables
    it touches itself, through this module: a handle does not see another writer's commits."""
    token = _HANDLES.set({})
    try:
        yield
    finally:
        _HANDLES.reset(token)


def open_table(url: str) -> DeltaTable:
    """The Delta table at ``url`` (deltalake's ``TableNotFoundError`` when none was written there yet)."""
    from deltalake import DeltaTable

    handles = _HANDLES.get()
    table = None if handles is None else handles.get(url)
    if table is None:
        table = DeltaTable(delta_uri(url), storage_options=storage_options(url))
        if handles is not None:
            handles[url] = table
    return table


def open_table_if_exists(url: str) -> DeltaTable | None:
    from deltalake.exceptions import TableNotFoundError

    try:
        return open_table(url)
    except TableNotFoundError:
        return None


def read_table(url: str) -> pa.Table:
    """The latest version's rows (``TableNotFoundError`` when there is no table)."""
    return open_table(url).to_pyarrow_table()


def read_table_if_exists(url: str) -> pa.Table | None:
    table = open_table_if_exists(url)
    return None if table is None else table.to_pyarrow_table()


@dataclass(frozen=True)
class Snapshot:
    """One committed version of a table, with when it was committed."""

    table: pa.Table
    version: int
    committed_at: dt.datetime | None


def read_snapshot_if_exists(url: str) -> Snapshot | None:
    """The latest version of the table at ``url``, or None when nothing was committed there yet."""
    delta = open_table_if_exists(url)
    if delta is None:
        return None
    committed_at = None
    history = delta.history(1)
    if history and "timestamp" in history[0]:
        committed_at = dt.datetime.fromtimestamp(history[0]["timestamp"] / 1000, tz=dt.UTC)
    return Snapshot(delta.to_pyarrow_table(), delta.version(), committed_at)


def transaction_versions(url: str, apps: list[str]) -> dict[str, int]:
    """The version of each of ``apps`` the table's application transactions hold (absent: none)."""
    table = open_table_if_exists(url)
    if table is None:
        return {}
    found = {app: table.transaction_version(app) for app in apps}
    return {app: version for app, version in found.items() if version is not None}


def local_table_dir(url: str) -> Path | None:
    """The directory of a table on the local file system, None for remote (``s3://``) tables."""
    return locations.local_path(url) if locations.scheme(url) == "file" else None


# -- writing ----------------------------------------------------------------------------------------------
def write_table(url: str, data: Any, append: bool = False, properties: Any = None) -> None:
    """Append ``data`` to the table at ``url``, or replace its content (schema too; created if absent),
    with the deltalake ``CommitProperties`` ``properties``: one commit. ``data`` is any Arrow table or
    stream (a pyarrow table or reader, a DuckDB relation, an ``arro3`` table)."""
    from deltalake import write_deltalake

    table = None if _HANDLES.get() is None else open_table_if_exists(url)  # a write moves its handle on
    write_deltalake(
        delta_uri(url) if table is None else table,
        data,
        mode="append" if append else "overwrite",
        schema_mode=None if append else "overwrite",
        storage_options=storage_options(url) if table is None else None,
        commit_properties=properties,
    )


def replace_table(url: str, data: Any) -> None:
    """Replace the table at ``url`` (created if absent) with ``data``: reruns are idempotent."""
    write_table(url, data)


@dataclass(frozen=True)
class ParquetFile:
    """A Parquet file already written inside a table's directory (``name`` relative to it)."""

    name: str
    size: int
    rows: int


def commit_files(
    url: str, schema: pa.Schema | None, files: list[ParquetFile], append: bool = False, properties: Any = None
) -> None:
    """Commit Parquet ``files`` already written in the table's directory: appended to the table at ``url``,
    or replacing its content (created if absent), with the deltalake ``CommitProperties`` ``properties``
    (the incremental batch's bookkeeping): one commit. ``schema`` None (appending only): the table's own.

    For writers that produce the Parquet themselves (DuckDB's ``COPY``, parallel and within its memory
    limit) instead of handing Arrow data to delta-rs, whose writer buffers far more than it writes.
    """
    from deltalake import Schema
    from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

    now = int(time.time() * 1000)
    actions = [AddAction(f.name, f.size, {}, now, True, json.dumps({"numRecords": f.rows})) for f in files]
    handles = _HANDLES.get()
    if append:
        table = open_table(url)
        table.create_write_transaction(
            list[AddAction | RemoveAction](actions),
            mode="append",
            schema=table.schema() if schema is None else Schema.from_arrow(schema),
            commit_properties=properties,
        )
        if handles is not None:
            table.update_incremental()  # the transaction leaves the handle at the version it read
        return
    if schema is None:
        raise ValueError("replacing a table's files needs their schema")
    if handles is not None:
        handles.pop(url, None)  # replaced through the URL: opened again when next used
    create_table_with_add_actions(
        delta_uri(url),
        Schema.from_arrow(schema),
        actions,
        mode="overwrite",
        storage_options=storage_options(url),
        commit_properties=properties,
    )


SNAPSHOT_CONFIG = {
    "delta.logRetentionDuration": "interval 1 hours",
    "delta.enableExpiredLogCleanup": "true",
    "delta.checkpointInterval": "50",
}
"""Tables overwritten every few seconds (metrics, state) keep little history."""

APPEND_CONFIG = {"delta.checkpointInterval": "100", "delta.logRetentionDuration": "interval 7 days"}
"""Tables appended every few seconds keep a week of history."""

REOPEN_EVERY = 50
"""Commits through one open table before it is read afresh from its log (see :class:`TableCache`)."""


class TableCache:
    """Open tables of one writer by URL: a write through an open table skips re-reading its log (about
    half of each commit's cost when a table is written every micro-batch). Only for tables that writer
    alone changes (the stream processor holds its lock).

    delta-rs grows an open table's in-memory log with every commit made through it (memory and commit
    time rise with it: +7 MiB and +100 ms per commit after 1,000 appends here), so a table is reopened
    from its last checkpoint every ``reopen_every`` commits: memory stays bounded however long it runs.
    """

    def __init__(self, reopen_every: int = REOPEN_EVERY) -> None:
        self.reopen_every = reopen_every
        self._open: dict[str, tuple[DeltaTable, int]] = {}

    def get(self, url: str) -> DeltaTable | None:
        """The open table at ``url`` (opened now if needed), None when none was written yet."""
        table, commits = self._open.get(url, (None, 0))
        if table is None or commits >= self.reopen_every:
            table = open_table_if_exists(url)
            if table is None:
                return None
            self._open[url] = (table, 0)
        return table

    def committed(self, url: str, table: DeltaTable | None) -> None:
        """A commit went through ``table`` (or created the table, when None)."""
        if table is None:
            self._open.pop(url, None)
        else:
            self._open[url] = (table, self._open.get(url, (table, 0))[1] + 1)

    def drop(self, url: str) -> None:
        """Forget the open table (after a failure its snapshot may not match the log)."""
        self._open.pop(url, None)


def _transactions(versions: Mapping[str, int]) -> CommitProperties:
    from deltalake import CommitProperties, Transaction

    return CommitProperties(app_transactions=[Transaction(app, v) for app, v in versions.items()])


def append(
    url: str, data: pa.Table, transactions: Mapping[str, int], cache: TableCache | None = None
) -> None:
    """Append ``data`` (possibly no rows) and set the application ``transactions`` (app id -> version),
    in one commit."""
    _write(url, data, "append", transactions, APPEND_CONFIG, cache)


def overwrite(
    url: str, data: pa.Table, transactions: Mapping[str, int] | None = None, cache: TableCache | None = None
) -> None:
    """Replace the table's content with ``data`` (and set ``transactions``), in one commit."""
    _write(url, data, "overwrite", transactions or {}, SNAPSHOT_CONFIG, cache)


def _write(
    url: str,
    data: pa.Table,
    mode: Literal["append", "overwrite"],
    transactions: Mapping[str, int],
    config: dict[str, str],
    cache: TableCache | None,
) -> None:
    from deltalake import write_deltalake

    table = None if cache is None else cache.get(url)
    try:
        write_deltalake(
            delta_uri(url) if table is None else table,
            data,
            mode=mode,
            schema_mode="overwrite" if mode == "overwrite" else None,
            configuration=config,
            storage_options=storage_options(url) if table is None else None,
            commit_properties=_transactions(transactions),
        )
    except Exception as exc:  # delta-rs raises several unrelated types (IO, protocol, commit)
        if cache is not None:
            cache.drop(url)
        raise TableError(f"cannot write Delta table {url}: {exc}") from exc
    if cache is not None:
        cache.committed(url, table)


# -- cleaning ------------------------------------------------------------------------------------------
def _opened(url: str, cache: TableCache | None) -> DeltaTable | None:
    return open_table_if_exists(url) if cache is None else cache.get(url)


def tidy(url: str, cache: TableCache | None = None) -> None:
    """Drop files of old snapshots (metric and state tables are overwritten every batch)."""
    table = _opened(url, cache)
    if table is None:
        return
    try:
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        table.cleanup_metadata()
    except Exception:  # best effort: a concurrent reader may still hold a file
        if cache is not None:
            cache.drop(url)
        return
    if cache is not None:
        cache.committed(url, table)


COMPACT_TARGET_BYTES = 2 * 2**20
"""Files at least this large are final: a compaction merges only the smaller ones (into files about
this size). With delta-rs' default (100 MB) every compaction rewrote all the table had gathered so far
with the new small files: a stream table at 10,000 rows/s took longer and more memory each round."""


def compact(url: str, cache: TableCache | None = None) -> None:
    """Merge an appended table's small files (one per micro-batch) into larger ones
    (:data:`COMPACT_TARGET_BYTES`), leaving files of that size alone: a round costs about what was
    appended since the last one.

    Rows and application transactions are unchanged, so exactly once is unaffected; the replaced files
    stay on disk for the table's vacuum retention, so a reader holding an older version still finds them.
    Without this a table written every second holds 86,400 files a day, and every reader lists and opens
    them all.
    """
    table = _opened(url, cache)
    if table is None:
        return
    try:
        table.optimize.compact(target_size=COMPACT_TARGET_BYTES)
    except Exception as exc:  # best effort: the next round tries again
        _log.warning("compacting %s failed (retried later): %s", url, exc)
    if cache is not None:
        cache.drop(url)  # reopened from the log on its next write


def remove_replaced_files(url: str, retain_hours: int, root: str) -> int:
    """Delete the files of the table at ``url`` that no version of the last ``retain_hours`` hours reads
    (Delta's vacuum, also of files a failed run left behind); returns how many went.

    An overwrite keeps the files it replaces, so that older versions stay readable (time travel, a reader
    mid-scan): without this a daily batch job grows every table by a full copy a day.

    A full vacuum deletes every file of the directory the table does not read, so it only runs on a Delta
    table below ``root`` (the tables root), on files inside that table: anything else is a ConfigError.
    """
    if not locations.is_below(url, root):
        raise ConfigError(f"refusing to clean {url}: it is not below the tables root {root}")
    directory = local_table_dir(url)
    if directory is not None:
        outer = local_table_dir(root)
        if outer is None or not directory.resolve().is_relative_to(outer.resolve()):
            raise ConfigError(f"refusing to clean {directory}: it resolves outside the tables root {root}")
        if not (directory / "_delta_log").is_dir():
            raise ConfigError(f"refusing to clean {directory}: not a Delta table (no _delta_log)")
    table = open_table(url)

    def vacuum(dry_run: bool) -> list[str]:
        return table.vacuum(
            retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False, full=True
        )

    candidates = vacuum(dry_run=True)
    stray = [p for p in candidates if not _inside_table(p)]
    if stray:
        raise ConfigError(f"refusing to clean {url}: the vacuum would delete {stray[0]!r}, outside the table")
    return len(vacuum(dry_run=False)) if candidates else 0  # nothing to delete: no second pass


def _inside_table(path: str) -> bool:
    """A path delta-rs reports relative to the table's directory, not climbing out of it."""
    return not path.startswith("/") and "://" not in path and ".." not in path.split("/")
