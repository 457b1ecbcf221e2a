"""The outputs read from the aggregates equal ``queries.output_sql`` over the same cleaned rows, and the
aggregates of rows split into kept and appended ones, merged, equal those of all rows at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pinpipe.engines.base import PyArrowTables
from pinpipe.engines.duckdb.outputs import PARTIAL, add_aggregates, aggregates_query, outputs
from pinpipe.schema import KINDS, Kind
from pinpipe.transform.aggregates import aggregates_sql
from pinpipe.transform.clean import clean_arrow_schema
from pinpipe.transform.export import sort_output
from pinpipe.transform.queries import COLUMNS_READ, JOINS, OUTPUTS, BatchOptions, join_sql, output_sql

WHEN = [None, *(datetime(y, 6, 1) for y in (2014, 2015, 2017, 2018, 2020, 2021, 2022, 2023))]
BIG = 2**52 + 1  # follower counts a double holds only to the nearest even integer, for the exact median
rows: dict[Kind, Any] = {
    "pin": st.fixed_dictionaries({
        "ind": st.integers(0, 4), "category": st.sampled_from(["art", "b", None]),
        "poster_name": st.sampled_from(["al", "Al", "bo", None]),
        "follower_count": st.sampled_from([None, 0, 5, 7, 12_000, BIG, BIG + 2, -3]),
    }),
    "geo": st.fixed_dictionaries({
        "ind": st.integers(0, 4), "country": st.sampled_from(["X", "Y", None]),
        "timestamp": st.sampled_from(WHEN),
    }),
    "user": st.fixed_dictionaries({
        "ind": st.integers(0, 4), "age": st.sampled_from([None, 17, 20, 30, 40, 60]),
        "date_joined": st.sampled_from(WHEN),
    }),
}  # fmt: skip
SCHEMAS = {kind: pa.schema([clean_arrow_schema(kind).field(c) for c in COLUMNS_READ[kind]]) for kind in KINDS}


def table(con: Any, name: str, kind: Kind, records: list[dict]) -> None:
    """Table ``name`` of cleaned ``kind`` rows (the columns the outputs read)."""
    con.register("arrow_rows", pa.Table.from_pylist(records, schema=SCHEMAS[kind]))
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow_rows")
    con.unregister("arrow_rows")


def aggregate(con: Any, name: str, sources: dict[Kind, str]) -> None:
    """Table ``name``: the aggregates of the cleaned rows in ``sources`` (kind -> table)."""
    joins = {}
    for join in JOINS:
        text = join_sql(join)
        for kind, source in sources.items():
            text = text.replace(f"cleaned_{kind}", source)
        joins[join] = f"({text})"
    con.execute(
        f"CREATE TABLE {name} AS {aggregates_sql(joins['pin_geo'], joins['pin_user'], sources['user'])}"
    )


def rows_of(outputs: Mapping[str, pa.Table]) -> dict[str, list[tuple]]:
    return {name: [tuple(r.values()) for r in t.to_pylist()] for name, t in outputs.items()}


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries({kind: st.lists(rows[kind], max_size=10) for kind in KINDS}),
    st.fixed_dictionaries({kind: st.integers(0, 10) for kind in KINDS}),
    st.sampled_from(["lower", "exact"]),
    st.booleans(),
)
def test_outputs_from_kept_and_added_aggregates_equal_the_output_statements(
    records: dict[Kind, list[dict]], cut: dict[Kind, int], median: Any, keep_ties: bool
) -> None:
    options = BatchOptions(median=median, keep_ties=keep_ties)
    con = duckdb.connect()
    for kind in KINDS:
        table(con, f"cleaned_{kind}", kind, records[kind])
        table(con, f"old_{kind}", kind, records[kind][: cut[kind]])
        table(con, f"new_{kind}", kind, records[kind][cut[kind] :])
    expected = {
        name: sort_output(name, con.sql(output_sql(name, options)).to_arrow_table()) for name in OUTPUTS
    }
    aggregate(con, "kept", {kind: f"old_{kind}" for kind in KINDS})
    add_aggregates(con, "kept", {k: f"new_{k}" for k in KINDS}, {k: f"old_{k}" for k in KINDS})
    partial = PyArrowTables(outputs(con, options, PARTIAL))  # kept and added aggregates, not merged
    assert rows_of(partial) == rows_of(expected)  # also in export order
    merged = con.sql(f"{aggregates_query(PARTIAL, merge=True)} ORDER BY ALL").fetchall()
    aggregate(con, "aggregates", {kind: f"cleaned_{kind}" for kind in KINDS})
    assert con.sql(f"{aggregates_query()} ORDER BY ALL").fetchall() == merged
    whole = PyArrowTables(outputs(con, options))
    assert rows_of(whole) == rows_of(expected)
    for name, result in whole.items():
        assert result.schema == expected[name].schema == partial[name].schema, name
