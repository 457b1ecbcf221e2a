"""Small helpers every DuckDB step uses: quoting, single values, row counts."""

from __future__ import annotations

from typing import Any


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
