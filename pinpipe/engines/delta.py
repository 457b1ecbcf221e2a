"""Delta tables through delta-rs (the ``deltalake`` package): DuckDB cannot download its delta extension."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pinpipe import locations
from pinpipe.errors import ConfigError
from pinpipe.tables import delta_options, delta_uri, open_delta


def write_delta(url: str, data: pa.Table | pa.RecordBatchReader) -> None:
    """Replace the table at ``url`` (created if absent) with ``data``: reruns are idempotent."""
    from deltalake import write_deltalake

    write_deltalake(
        delta_uri(url),
        data,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=delta_options(url),
    )


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
    table = open_delta(url)

    def vacuum(dry_run: bool) -> list[str]:
        return table.vacuum(
            retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False, full=True
        )

    stray = [p for p in vacuum(dry_run=True) if not _inside_table(p)]
    if stray:
        raise ConfigError(f"refusing to clean {url}: the vacuum would delete {stray[0]!r}, outside the table")
    return len(vacuum(dry_run=False))


def _inside_table(path: str) -> bool:
    """A path delta-rs reports relative to the table's directory, not climbing out of it."""
    return not path.startswith("/") and "://" not in path and ".." not in path.split("/")


def read_delta(url: str) -> pa.Table:
    return open_delta(url).to_pyarrow_table()


def local_table_dir(url: str) -> Path | None:
    """The directory of a table on the local file system, None for remote (``s3://``) tables."""
    return locations.local_path(url) if locations.scheme(url) == "file" else None


@dataclass(frozen=True)
class ParquetFile:
    """A Parquet file already written inside a table's directory (``name`` relative to it)."""

    name: str
    size: int
    rows: int


def commit_files(
    url: str, schema: pa.Schema, files: list[ParquetFile], append: bool = False, properties: Any = None
) -> None:
    """Commit Parquet ``files`` already written in the table's directory: appended to the table at ``url``,
    or replacing its content (created if absent), with the deltalake ``CommitProperties`` ``properties``
    (the incremental batch's bookkeeping): one commit.

    For writers that produce the Parquet themselves (DuckDB's ``COPY``, parallel and within its memory
    limit) instead of handing Arrow data to delta-rs, whose writer buffers far more than it writes.
    """
    from deltalake import Schema
    from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

    now = int(time.time() * 1000)
    actions = [AddAction(f.name, f.size, {}, now, True, json.dumps({"numRecords": f.rows})) for f in files]
    if append:
        open_delta(url).create_write_transaction(
            list[AddAction | RemoveAction](actions),
            mode="append",
            schema=Schema.from_arrow(schema),
            commit_properties=properties,
        )
        return
    create_table_with_add_actions(
        delta_uri(url),
        Schema.from_arrow(schema),
        actions,
        mode="overwrite",
        storage_options=delta_options(url),
        commit_properties=properties,
    )
