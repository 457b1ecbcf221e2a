"""The DuckDB engine stages raw rows in any order within an object, and restages pins in arrival order
only when the first record per unique_id depends on it (differing records with one id in one object)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from pinpipe.config import Settings
from pinpipe.delta import read_table
from pinpipe.engines.duckdb import DuckDBEngine
from pinpipe.schema import FIELDS
from pinpipe.tables import batch_table
from pinpipe.transform.clean import arrival_order_matters_sql
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_run import lines, pin, write_lake


def order_matters(rows: list[tuple[int, str | None, str | None]]) -> bool:
    """``arrival_order_matters_sql`` over staged pins given as (object, unique_id, title)."""
    con = duckdb.connect()
    columns = ", ".join(
        f'"{f}" {"BIGINT" if t == "int" else "VARCHAR"} DEFAULT {1 if t == "int" else repr("same")}'
        for f, t in FIELDS["pin"].items()
    )
    con.execute(f"CREATE TABLE staged (_file BIGINT, {columns})")
    con.executemany("INSERT INTO staged (_file, index, unique_id, title) VALUES (?, 7, ?, ?)", rows)
    result: bool = con.execute(arrival_order_matters_sql("staged", "_file")).fetchall()[0][0]
    return result


def test_order_matters_only_for_differing_records_with_one_id_in_one_object() -> None:
    assert not order_matters([(0, "a", "x"), (0, "b", "y"), (1, "c", "z")])
    assert not order_matters([(0, "a", "x"), (0, "a", "x")])  # the usual duplicate: a post sent twice
    assert not order_matters([(0, "a", "x"), (1, "a", "y")])  # objects are ordered by their keys
    assert not order_matters([(0, "", "x"), (0, "", "y"), (0, None, "x"), (0, None, "y")])  # no id
    assert order_matters([(0, "a", "x"), (1, "b", "y"), (1, "b", "z")])
    assert order_matters([(0, "a", "x"), (0, "a", "x"), (0, "a", None)])


def stage_orders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Records the (kind, ordered) of every staging of a chunk by the engine."""
    calls: list[tuple[str, bool]] = []
    from pinpipe.engines.duckdb import engine

    load_raw = engine.load_raw

    def spy(con: Any, kind: Any, objects: Any, ordered: bool) -> Any:
        calls.append((kind, ordered))
        return load_raw(con, kind, objects, ordered)

    monkeypatch.setattr(engine, "load_raw", spy)
    return calls


def big_object(first: dict[str, object], last: dict[str, object], rows: int = 20_000) -> bytes:
    """One object of ``rows`` pins of ~2 KB (40 MB: DuckDB reads it in parallel pieces when it need not keep
    the order), ``first`` on its first line and ``last`` on its last."""
    filler = [{**pin(i, f"id {i}", f"title {i}"), "description": "d" * 2000} for i in range(1, rows - 1)]
    return lines(first, *filler, last)


def test_the_first_pin_per_unique_id_wins_within_a_big_object(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = stage_orders(monkeypatch)
    write_lake(settings, "pin", [big_object(pin(0, "dup", "first"), pin(19_999, "dup", "last"))])
    DuckDBEngine(settings, threads=2).run_batch(BatchOptions())
    titles = {r["unique_id"]: r["title"] for r in read_table(batch_table(settings, "pin")).to_pylist()}
    assert titles["dup"] == "first" and len(titles) == 19_999
    assert calls == [("pin", False), ("pin", True), ("geo", False), ("user", False)]


@pytest.mark.parametrize("keep_duplicates", [False, True])
def test_pins_are_staged_once_without_order_when_it_cannot_matter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, keep_duplicates: bool
) -> None:
    calls = stage_orders(monkeypatch)
    same = pin(0, "dup", "same")
    write_lake(settings, "pin", [big_object(same, {**same, "index": 0}), lines(pin(1, "dup", "later"))])
    DuckDBEngine(settings, threads=2).run_batch(BatchOptions(keep_duplicates=keep_duplicates))
    titles = sorted(
        r["title"] for r in read_table(batch_table(settings, "pin")).to_pylist() if r["unique_id"] == "dup"
    )
    assert titles == (["later", "same", "same"] if keep_duplicates else ["same"])
    assert calls == [("pin", False), ("geo", False), ("user", False)]
