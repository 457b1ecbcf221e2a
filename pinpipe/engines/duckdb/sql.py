"""Small helpers every DuckDB step uses: quoting, single values, row counts, DuckDB's names of Arrow types."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.string(): "VARCHAR",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.timestamp("us"): "TIMESTAMP",
}
"""The DuckDB spelling of each Arrow type in ``CLEAN_ARROW_SCHEMA``: the Parquet DuckDB writes matches it."""
SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "datetime": "VARCHAR"}
"""The DuckDB type of each ``schema.FIELDS`` type, as staged from the lake."""


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fetch_one(con: Any, sql: str) -> Any:
    """The single value ``sql`` returns; fetched whole, since DuckDB refuses a new query while a result
    is half-read."""
    return con.execute(sql).fetchall()[0][0]


def count(con: Any, table: str) -> int:
    rows: int = fetch_one(con, f"SELECT count(*) FROM {table}")
    return rows
