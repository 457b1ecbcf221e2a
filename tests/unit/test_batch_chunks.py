"""The DuckDB engine cleans a big lake in chunks of objects: the result must be the one-pass result."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pinpipe.config import Settings, load_settings
from pinpipe.delta import read_table
from pinpipe.engines.duckdb import DuckDBEngine
from pinpipe.engines.duckdb.chunks import chunk_bytes, chunks
from pinpipe.tables import batch_table
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_run import lines, pin, write_lake

ONE_PASS = 1 << 40
EVERY_OBJECT = 1
"""``chunk_bytes`` values: the whole lake at once, or each object its own chunk."""


def test_chunks_are_runs_of_consecutive_objects_of_about_equal_bytes() -> None:
    assert chunks([], 10) == [[]]
    assert chunks([5, 5, 5, 5], None) == [[0, 1, 2, 3]]
    assert chunks([5, 5, 5, 5], 20) == [[0, 1, 2, 3]]
    assert chunks([5, 5, 5, 5], 10) == [[0, 1], [2, 3]]
    assert chunks([5, 5, 5, 5], 9) == [[0], [1, 2], [3]]  # an object goes where its middle byte falls
    assert chunks([1, 1, 1, 30, 1], 16) == [[0, 1, 2], [3], [4]]  # one object may exceed the budget
    assert chunks([3, 3, 3], 1) == [[0], [1], [2]]


@pytest.mark.parametrize("limit", ["432MB", "2GB", "700MiB"])
def test_chunk_budget_is_the_memory_limit_over_1_8(limit: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    number, unit = float(limit[:-3] if limit.endswith("iB") else limit[:-2]), limit.lstrip("0123456789.")
    expected = number * {"MB": 1e6, "GB": 1e9, "MiB": 2**20}[unit] / 1.8
    assert chunk_bytes(con) == pytest.approx(expected, rel=0.05)  # DuckDB prints "1.8 GiB": rounded


def geo(ind: int, country: str) -> dict[str, object]:
    when = "2020-01-01 00:00:00"
    return {"ind": ind, "timestamp": when, "latitude": 1.5, "longitude": 2.0, "country": country}


def user(ind: int, age: int) -> dict[str, object]:
    return {"ind": ind, "first_name": "A", "last_name": "B", "age": age, "date_joined": "2016-01-01 00:00:00"}


def run(settings: Settings, chunk_bytes: int, options: BatchOptions) -> dict[str, list[tuple]]:
    result = DuckDBEngine(settings, threads=1, chunk_bytes=chunk_bytes).run_batch(options)
    tables = {kind: read_table(batch_table(settings, kind)).to_pylist() for kind in ("pin", "geo", "user")}
    for name, table in result.outputs.items():
        tables[name] = table.to_pylist()
    return {name: sorted(tuple(str(v) for v in r.values()) for r in rows) for name, rows in tables.items()}


@pytest.mark.parametrize("keep_duplicates", [False, True])
def test_each_object_its_own_chunk_gives_the_one_pass_tables(
    settings: Settings, keep_duplicates: bool
) -> None:
    write_lake(settings, "pin", [
        lines(pin(1, "a", "first a"), pin(2, None, "no id"), pin(3, "b", "first b"), pin(4, "b", "second b")),
        lines(pin(5, "a", "later a"), pin(6, None, "no id"), pin(7, None, "other")),
        lines(pin(8, "c", "first c"), pin(9, "a", "last a"), pin(2, None, "no id")),
    ])  # fmt: skip
    write_lake(settings, "geo", [lines(geo(1, "X"), geo(2, "Y")), lines(geo(1, "X")), lines(geo(1, "Z"))])
    write_lake(settings, "user", [lines(user(1, 20)), lines(user(1, 20), user(3, 40)), lines(user(3, 40))])
    options = BatchOptions(keep_duplicates=keep_duplicates)
    chunked = run(settings, EVERY_OBJECT, options)
    assert chunked == run(settings, ONE_PASS, options)
    titles = sorted(row[2] for row in chunked["pin"])
    if keep_duplicates:
        assert len(chunked["pin"]) == 10 and len(chunked["geo"]) == 4 and len(chunked["user"]) == 4
    else:  # the first record per unique_id, over objects and within one; id-less pins once per identical row
        assert titles == ["first a", "first b", "first c", "no id", "no id", "other"]
        assert [row[0] for row in chunked["pin"] if row[2] == "no id"] == ["2", "6"]
        assert len(chunked["geo"]) == 3 and len(chunked["user"]) == 2


ids = st.sampled_from(["a", "b", "c", None])
records = st.lists(st.tuples(ids, st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=5)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=4), st.booleans())
def test_random_lakes_clean_the_same_in_chunks_as_in_one_pass(objects: list, keep_duplicates: bool) -> None:
    """Duplicates of every kind fall in the same object and across objects (ids, rows and ind drawn from
    small pools); the chunked run must equal the one-pass run, outputs included."""
    with tempfile.TemporaryDirectory(prefix="pinpipe-chunks-") as workdir:
        settings = load_settings(workdir=Path(workdir))
        write_lake(settings, "pin", [
            lines(*(pin(i, u, f"object {n} line {line}") for line, (u, i, _) in enumerate(obj)))
            for n, obj in enumerate(objects)
        ])  # fmt: skip
        write_lake(settings, "geo", [lines(*(geo(i, f"C{c}") for _, i, c in obj)) for obj in objects])
        write_lake(settings, "user", [lines(*(user(i, 20 + 10 * c) for _, i, c in obj)) for obj in objects])
        options = BatchOptions(keep_duplicates=keep_duplicates)
        assert run(settings, EVERY_OBJECT, options) == run(settings, ONE_PASS, options)
