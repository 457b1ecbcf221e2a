"""Delta tables of the stream processor, written with delta-rs, offsets in the same transaction.

Exactly once rests on Delta *application transactions* (``SetTransaction`` actions): every commit of
an output table carries, for each (stream, partition) it consumed, the app id
``pinpipe-stream:<stream>:<partition>`` with version = the next offset to read. The rows and the offsets
become visible atomically, so on restart the table itself says where to resume, and a replayed record
below that version is never written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from pinpipe.errors import StreamError
from pinpipe.log.base import TopicPartition
from pinpipe.tables import delta_options, delta_uri, open_delta

_log = logging.getLogger(__name__)
APP_PREFIX = "pinpipe-stream"

SNAPSHOT_CONFIG = {
    "delta.logRetentionDuration": "interval 1 hours",
    "delta.enableExpiredLogCleanup": "true",
    "delta.checkpointInterval": "50",
}
"""Tables overwritten every micro-batch (metrics, state) keep little history."""

APPEND_CONFIG = {"delta.checkpointInterval": "100", "delta.logRetentionDuration": "interval 7 days"}


def app_id(tp: TopicPartition) -> str:
    """Application transaction id of one consumed (stream, partition)."""
    return f"{APP_PREFIX}:{tp[0]}:{tp[1]}"


def open_table(url: str) -> DeltaTable | None:
    """The table at ``url``, or None when none was written yet."""
    try:
        return open_delta(url)
    except TableNotFoundError:
        return None


def transaction_versions(url: str, apps: list[str]) -> dict[str, int]:
    """The version of each of ``apps`` the table's application transactions hold (absent: none)."""
    table = open_table(url)
    if table is None:
        return {}
    found = {app: table.transaction_version(app) for app in apps}
    return {app: version for app, version in found.items() if version is not None}


def committed_offsets(url: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Per (stream, partition), the next offset the table has consumed (0 when never committed)."""
    versions = transaction_versions(url, [app_id(tp) for tp in partitions])
    return {tp: versions.get(app_id(tp), 0) for tp in partitions}


def _properties(offsets: Mapping[TopicPartition, int]) -> CommitProperties:
    return CommitProperties(app_transactions=[Transaction(app_id(tp), v) for tp, v in offsets.items()])


REOPEN_EVERY = 50
"""Commits through one open table before it is read afresh from its log (see :class:`TableCache`)."""


class TableCache:
    """Open tables of one writer by URL: a write through an open table skips re-reading its log (about
    half of each commit's cost when a table is written every micro-batch). Only for tables that writer
    alone changes (the processor holds :class:`~pinpipe.streaming.lock.ProcessorLock`).

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
            table = open_table(url)
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


def append(
    url: str, data: pa.Table, offsets: Mapping[TopicPartition, int], cache: TableCache | None = None
) -> None:
    """Append ``data`` (possibly no rows) and record ``offsets``, in one Delta commit."""
    _write(url, data, "append", offsets, APPEND_CONFIG, cache)


def overwrite(
    url: str,
    data: pa.Table,
    offsets: Mapping[TopicPartition, int] | None = None,
    cache: TableCache | None = None,
) -> None:
    """Replace the table's content with ``data`` (and record ``offsets``), in one Delta commit."""
    _write(url, data, "overwrite", offsets or {}, SNAPSHOT_CONFIG, cache)


def _write(
    url: str,
    data: pa.Table,
    mode: str,
    offsets: Mapping[TopicPartition, int],
    config: dict[str, str],
    cache: TableCache | None,
) -> None:
    table = None if cache is None else cache.get(url)
    target = delta_uri(url) if table is None else table
    options = delta_options(url) if table is None else None
    try:
        if mode == "overwrite":
            write_deltalake(
                target,
                data,
                mode="overwrite",
                schema_mode="overwrite",
                configuration=config,
                storage_options=options,
                commit_properties=_properties(offsets),
            )
        else:
            write_deltalake(
                target,
                data,
                mode="append",
                configuration=config,
                storage_options=options,
                commit_properties=_properties(offsets),
            )
    except Exception as exc:  # delta-rs raises several unrelated types (IO, protocol, commit)
        if cache is not None:
            cache.drop(url)
        raise StreamError(f"cannot write Delta table {url}: {exc}") from exc
    if cache is not None:
        cache.committed(url, table)


def read_table(url: str) -> pa.Table | None:
    table = open_table(url)
    return None if table is None else table.to_pyarrow_table()


def _opened(url: str, cache: TableCache | None) -> DeltaTable | None:
    """The table at ``url``, through ``cache`` when the writer has one."""
    return open_table(url) if cache is None else cache.get(url)


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


def compact(url: str, cache: TableCache | None = None) -> None:
    """Merge an appended table's small files (one per micro-batch) into large ones.

    Rows and application transactions (the offsets) are unchanged, so exactly once is unaffected; the
    replaced files stay on disk for the table's vacuum retention, so a reader holding an older version
    still finds them. Without this a table written every second holds 86,400 files a day, and every
    reader lists and opens them all.
    """
    table = _opened(url, cache)
    if table is None:
        return
    try:
        table.optimize.compact()
    except Exception as exc:  # best effort: the next round tries again
        _log.warning("compacting %s failed (retried later): %s", url, exc)
    if cache is not None:
        cache.drop(url)  # reopened from the log on its next write
