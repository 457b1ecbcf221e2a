"""The cleaned tables as Delta: Parquet parts written by DuckDB, committed with their bookkeeping, and
the rows a table held before the run, read back as a pruned columnar source."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinpipe.delta import ParquetFile, local_table_dir, open_table
from pinpipe.engines.duckdb.sql import quote
from pinpipe.engines.increments import commit_parts, write_table
from pinpipe.locations import duckdb_path
from pinpipe.schema import Kind
from pinpipe.transform.clean import CLEAN_TYPES, clean_arrow_schema

if TYPE_CHECKING:
    from deltalake import DeltaTable

_BATCH_ROWS = 122_880
"""Rows per Arrow record batch streamed from DuckDB to Delta (a multiple of DuckDB's 2,048-row vectors)."""


def copy_cleaned(con: Any, kind: Kind, cleaned: str, target: Path, number: int) -> list[ParquetFile]:
    """One Parquet part of the cleaned ``kind`` table, its columns typed as ``CLEAN_TYPES``: written by
    DuckDB itself (``COPY``: parallel, streaming, within ``memory_limit``)."""
    select = "SELECT " + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in CLEAN_TYPES[kind].items())
    path = target / f"part-{number:05d}-{uuid.uuid4()}-c000.snappy.parquet"
    stats = con.execute(
        f"COPY ({select} FROM ({cleaned}) AS c) TO {quote(str(path))}"
        " (FORMAT parquet, COMPRESSION snappy, RETURN_STATS)"
    ).fetchall()
    return [ParquetFile(Path(r[0]).name, int(r[2]), int(r[1])) for r in stats]


def commit(url: str, kind: Kind, target: Path, parts: list[ParquetFile], append: bool, metadata: str) -> None:
    """One commit: the new parts (appended, or replacing the table) and the kind's bookkeeping. Parts of
    a local table are in its directory already; those of a remote one are uploaded by delta-rs. Parts
    appended take the table's schema, which ``CLEAN_TYPES`` match (an Arrow one would import pyarrow)."""
    if local_table_dir(url) is not None:
        commit_parts(url, None if append else clean_arrow_schema(kind), parts, append, metadata)
        return
    import pyarrow.dataset as ds

    schema = clean_arrow_schema(kind)
    dataset = ds.dataset([str(target / p.name) for p in parts], schema=schema)
    write_table(url, dataset.scanner(batch_size=_BATCH_ROWS).to_reader().cast(schema), append, metadata)


def register_history(con: Any, kind: Kind, url: str) -> str:
    """The rows the table at ``url`` holds, as a source (``table_source``)."""
    return table_source(con, f"history_{kind}", url, open_table(url), CLEAN_TYPES[kind])


def table_source(con: Any, name: str, url: str, table: DeltaTable, types: dict[str, str]) -> str:
    """The rows of ``table`` (open at ``url``; columns ``types``) as a source DuckDB reads columnar and
    pruned: its Parquet files (local tables), else delta-rs' Arrow dataset registered as ``name``."""
    files = table.file_uris()
    if not files:
        return no_rows(types)
    if local_table_dir(url) is not None:
        return "read_parquet([" + ", ".join(quote(f) for f in files) + "])"
    con.register(name, table.to_pyarrow_dataset())
    return name


def read_parts(directory: Path, parts: list[ParquetFile]) -> str:
    """A source reading the Parquet ``parts`` written in ``directory``."""
    return "read_parquet([" + ", ".join(quote(duckdb_path(directory / p.name)) for p in parts) + "])"


def no_rows(types: dict[str, str]) -> str:
    """A source of no rows with the columns ``types`` (name -> DuckDB type), e.g. ``CLEAN_TYPES[kind]``."""
    cols = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in types.items())
    return f"(SELECT {cols} LIMIT 0)"
