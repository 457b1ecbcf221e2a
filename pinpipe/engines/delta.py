"""Delta tables through delta-rs (the ``deltalake`` package): DuckDB cannot download its delta extension."""

from __future__ import annotations

import pyarrow as pa

from pinpipe.tables import delta_options, delta_uri


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


def read_delta(url: str) -> pa.Table:
    from deltalake import DeltaTable

    return DeltaTable(delta_uri(url), storage_options=delta_options(url)).to_pyarrow_table()
