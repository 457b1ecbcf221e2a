"""The ten outputs on DuckDB, from the ``cleaned_<kind>`` tables of a connection, and their Delta tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pinpipe.config import Settings
from pinpipe.delta import replace_table
from pinpipe.schema import KINDS
from pinpipe.tables import batch_table
from pinpipe.transform.export import sort_output
from pinpipe.transform.queries import JOINS, OUTPUTS, BatchOptions, join_sql, output_sql


def outputs(con: Any, options: BatchOptions, drop_cleaned: bool = False) -> dict[str, pa.Table]:
    """The ten outputs; the two joins they read are built once, then the cleaned tables may go."""
    for join in JOINS:
        con.execute(f"CREATE TEMP TABLE {join} AS {join_sql(join)}")
    statements = {name: output_sql(name, options, joins_built=True) for name in OUTPUTS}
    if drop_cleaned:  # free memory: keep only the cleaned tables an output still reads directly
        for kind in KINDS:
            if not any(f"cleaned_{kind}" in sql for sql in statements.values()):
                con.execute(f"DROP TABLE cleaned_{kind}")
    try:
        return {name: sort_output(name, con.sql(sql).to_arrow_table()) for name, sql in statements.items()}
    finally:
        for join in JOINS:
            con.execute(f"DROP TABLE {join}")


def write_outputs(settings: Settings, tables: dict[str, pa.Table]) -> dict[str, str]:
    """Each output replaces its Delta table; returns their locations."""
    urls: dict[str, str] = {}
    for name, table in tables.items():
        urls[name] = batch_table(settings, name)
        replace_table(urls[name], table)
    return urls
