"""Outputs are presented in one order everywhere (docs/data-rules.md): the same as Arrow's ascending sort."""

from __future__ import annotations

import ast
import subprocess
import sys

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pinpipe.transform.export import order_by_sql, sort_output
from pinpipe.transform.queries import OUTPUTS

texts = st.one_of(st.none(), st.sampled_from(["", "a", "B", "b", "é", "z", "Ünïcode", "日本", "a b"]))
counts = st.one_of(st.none(), st.integers(-3, 3))
medians = st.one_of(st.none(), st.sampled_from([0.0, -1.5, 2.0, 41500.5, float("nan")]))


@settings(deadline=None)  # the first example imports pyarrow.compute
@given(st.lists(st.tuples(texts, texts, counts), max_size=30))
def test_text_and_integer_columns_sort_as_arrow_does(
    rows: list[tuple[str | None, str | None, int | None]],
) -> None:
    table = pa.table(
        {name: pa.array([r[i] for r in rows], pa.int64() if i == 2 else pa.string())
         for i, name in enumerate(OUTPUTS["top_user_by_country"].columns)}
    )  # fmt: skip
    expected = table.sort_by(
        [("country", "ascending"), ("poster_name", "ascending"), ("follower_count", "ascending")]
    )
    assert sort_output("top_user_by_country", table).to_pylist() == expected.to_pylist()


@settings(deadline=None)
@given(st.lists(st.tuples(texts, medians), max_size=30))
def test_nan_and_null_come_last_as_in_arrow(rows: list[tuple[str | None, float | None]]) -> None:
    table = pa.table({"age_group": pa.array([r[0] for r in rows], pa.string()),
                      "median_follower_count": pa.array([r[1] for r in rows], pa.float64())})  # fmt: skip
    expected = table.sort_by([("age_group", "ascending"), ("median_follower_count", "ascending")])
    got = sort_output("median_followers_by_age_group", table).to_pylist()
    assert [str(r) for r in got] == [str(r) for r in expected.to_pylist()]  # str: nan == nan


def test_sorting_keeps_the_schema_and_imports_neither_pandas_nor_arrow_compute() -> None:
    """Every batch run sorts its ten outputs: ``pa.array``/``from_pylist`` would import pandas (0.3 s of
    the run) and ``sort_by`` ``pyarrow.compute``. The input comes from DuckDB, as in the engine."""
    code = (
        "import sys, duckdb\n"
        "from pinpipe.transform.export import sort_output\n"
        "t = duckdb.sql(\"SELECT * FROM (VALUES ('b', 2.5), (NULL, 1.0), ('a', NULL))"
        ' AS v(age_group, median_follower_count)").to_arrow_table()\n'
        "s = sort_output('median_followers_by_age_group', t)\n"
        "assert s.schema == t.schema, (s.schema, t.schema)\n"
        "print([s.column('age_group').to_pylist(), 'pandas' in sys.modules,"
        " 'pyarrow.compute' in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ast.literal_eval(run.stdout) == [["a", "b", None], False, False]


@settings(deadline=None)
@given(
    st.lists(st.tuples(texts, texts, counts), max_size=30), st.lists(st.tuples(texts, medians), max_size=30)
)
def test_the_duckdb_engines_order_by_equals_sort_output(
    users: list[tuple[str | None, str | None, int | None]], medians: list[tuple[str | None, float | None]]
) -> None:
    """The DuckDB engine sorts its outputs in SQL (``order_by_sql``): the same rows in the same order as
    :func:`sort_output`, with strings by code point, NaN after numbers and nulls last."""
    con = duckdb.connect()
    con.register(
        "u",
        pa.table(
            {
                "country": pa.array([r[0] for r in users], pa.string()),
                "poster_name": pa.array([r[1] for r in users], pa.string()),
                "follower_count": pa.array([r[2] for r in users], pa.int64()),
            }
        ),
    )
    con.register(
        "m",
        pa.table(
            {
                "age_group": pa.array([r[0] for r in medians], pa.string()),
                "median_follower_count": pa.array([r[1] for r in medians], pa.float64()),
            }
        ),
    )
    for name, table in (("top_user_by_country", "u"), ("median_followers_by_age_group", "m")):
        got = con.sql(f"SELECT * FROM {table} {order_by_sql(name)}").fetchall()
        expected = sort_output(name, con.sql(f"SELECT * FROM {table}").to_arrow_table()).to_pylist()
        assert [str(r) for r in got] == [str(tuple(r.values())) for r in expected], name
