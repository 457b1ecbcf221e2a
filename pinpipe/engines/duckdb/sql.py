"""Small helpers every DuckDB step uses: quoting, single values, row counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

CURSORS = 2
"""Queries :func:`arrows` runs at once."""


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fetch_one(con: Any, sql: str) -> Any:
    """The single value ``sql`` returns; fetched whole, since DuckDB refuses a new query while a result
    is half-read."""
    return con.execute(sql).fetchall()[0][0]


def count(con: Any, table: str) -> int:
    rows: int = fetch_one(con, f"SELECT count(*) FROM {table}")
    return rows


def arrow(con: Any, sql: str) -> Any:
    """The result of ``sql`` as an Arrow table of ``arro3`` (the Arrow library deltalake itself uses,
    loaded with it), taken through the Arrow C stream interface: unlike ``to_arrow_table`` it does not
    import pyarrow and numpy (0.12 s, a sixth of a small incremental run)."""
    from arro3.core import Table

    return Table.from_arrow(con.sql(sql))


def arrows(con: Any, queries: Mapping[str, str]) -> Iterator[tuple[str, Any]]:
    """(name, :func:`arrow` result) of each of ``queries`` (name -> SQL), in the order they finish: run
    :data:`CURSORS` at a time, each thread on a cursor of its own (a connection to the same database;
    temporary tables are not seen). Small queries use one core each: this fills the other."""
    local = threading.local()
    cursors: list[Any] = []

    def run(sql: str) -> Any:
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            cursor = local.cursor = con.cursor()
            cursors.append(cursor)
        return arrow(cursor, sql)

    try:
        with ThreadPoolExecutor(CURSORS, thread_name_prefix="pinpipe-duckdb") as pool:
            futures = {pool.submit(run, sql): name for name, sql in queries.items()}
            for future in as_completed(futures):
                yield futures[future], future.result()
    finally:
        for cursor in cursors:
            cursor.close()
