"""The DuckDB engine's work beside its main thread: background commits made in the order asked, none after a
failure, errors raised; the kinds of a small run cleaned side by side."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pinpipe.config import load_settings
from pinpipe.engines import run_batch
from pinpipe.engines.duckdb.commits import Commits
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_incremental import lake_objects, put, snapshot


def test_ordered_commits_are_made_one_after_the_other_in_order() -> None:
    made: list[int] = []
    running = threading.Lock()
    commits = Commits()

    def commit(n: int) -> None:
        assert running.acquire(blocking=False), "two ordered commits at once"
        time.sleep(0.002 * (5 - n))  # earlier ones slower: an unordered pool would reorder them
        made.append(n)
        running.release()

    for n in range(5):
        commits.submit(commit, n)
    commits.wait()
    commits.close()
    assert made == [0, 1, 2, 3, 4]


def test_a_failed_commit_is_raised_and_the_commits_after_it_are_not_made() -> None:
    made: list[str] = []
    commits = Commits()
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise OSError("disk full")

    commits.submit(made.append, "before")
    commits.submit(fail)
    commits.submit(made.append, "after")
    commits.submit(made.append, "unordered after", ordered=False)
    gate.set()
    with pytest.raises(OSError, match="disk full"):
        commits.wait()
    commits.close()
    assert "after" not in made and made[0] == "before"


def test_commits_run_in_the_callers_context() -> None:
    """The Delta handles of ``delta.shared_handles`` live in a context variable: commits see them."""
    from pinpipe import delta

    commits = Commits()
    seen: list[object] = []
    with delta.shared_handles():
        handles = delta._HANDLES.get()
        commits.submit(lambda: seen.append(delta._HANDLES.get()))
        commits.submit(lambda: seen.append(delta._HANDLES.get()), ordered=False)
        commits.wait()
    commits.close()
    assert seen == [handles, handles] and handles is not None


def _threads_of_staging(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """kind -> name of the thread that staged it, for every staging by the engine."""
    from pinpipe.engines.duckdb import engine

    seen: dict[str, str] = {}
    load_raw = engine.load_raw

    def spy(con: Any, kind: Any, objects: Any, ordered: bool) -> Any:
        seen[kind] = threading.current_thread().name
        return load_raw(con, kind, objects, ordered)

    monkeypatch.setattr(engine, "load_raw", spy)
    return seen


def test_a_small_incremental_run_cleans_geo_and_user_beside_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Geo and user on a second cursor while pin is cleaned, only in a small incremental run; a rebuild
    and a run of more than ``SMALL_RUN`` bytes clean one kind at a time. Either gives the same tables."""
    from pinpipe.engines.duckdb import engine

    every = lake_objects([[("a", 1, 0)], [("b", 2, 1)], [("c", 3, 2), ("a", 4, 0)]])
    side, one = load_settings(workdir=tmp_path / "side"), load_settings(workdir=tmp_path / "one")
    for settings in (side, one):
        for kind, name, data in every[:3]:
            put(settings, kind, name, data)
        seen = _threads_of_staging(monkeypatch)
        run_batch(settings, BatchOptions())
        assert set(seen.values()) == {threading.main_thread().name}  # a rebuild
    for kind, name, data in every[3:]:
        put(side, kind, name, data)
    seen = _threads_of_staging(monkeypatch)
    run_batch(side, BatchOptions())
    assert seen["pin"] == threading.main_thread().name
    assert seen["geo"] == seen["user"] != seen["pin"]
    monkeypatch.setattr(engine, "SMALL_RUN", 0)
    for kind, name, data in every[3:]:
        put(one, kind, name, data)
    seen = _threads_of_staging(monkeypatch)
    run_batch(one, BatchOptions())
    assert set(seen.values()) == {threading.main_thread().name}
    assert snapshot(side, {}) == snapshot(one, {})


def test_a_small_incremental_run_gives_duckdb_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its statements are too short for a second DuckDB thread; its cursors work at once instead. A rebuild
    keeps every core."""
    from pinpipe.engines.duckdb import engine

    threads: list[int] = []
    connect = engine.DuckDBEngine._connect

    def spy(self: Any, database: str = ":memory:") -> Any:
        con = connect(self, database)
        con.execute("SET threads TO 2")  # two cores, whatever this machine has
        threads.append(-1)  # a connection made
        return _Recorder(con, threads)

    monkeypatch.setattr(engine.DuckDBEngine, "_connect", spy)
    every = lake_objects([[("a", 1, 0)], [("b", 2, 1)]])
    settings = load_settings(workdir=tmp_path)
    for kind, name, data in every[:3]:
        put(settings, kind, name, data)
    run_batch(settings, BatchOptions())
    assert threads == [-1]  # a rebuild: DuckDB's threads left as they are
    for kind, name, data in every[3:]:
        put(settings, kind, name, data)
    run_batch(settings, BatchOptions())
    assert threads == [-1, -1, 1]


class _Recorder:
    """A DuckDB connection that notes the thread counts it is set to."""

    def __init__(self, con: Any, threads: list[int]) -> None:
        self._con, self._threads = con, threads

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("SET threads TO "):
            self._threads.append(int(sql.rsplit(" ", 1)[1]))
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_aggregates_read_ahead_are_not_used_when_pin_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small run reads the kept aggregates beside pin; when pin must then be rebuilt (a new record is
    the first of a kept unique_id), the outputs are computed from the whole tables, as one full run gives."""
    from pinpipe.engines.duckdb import engine
    from pinpipe.engines.increments import PRECEDES_KEPT

    read_ahead: list[bool] = []  # whether usable kept aggregates were read ahead
    loaded = threading.Event()
    load, precedes = engine.load_kept_aggregates, engine.DuckDBEngine._precedes_kept

    def load_first(*args: Any) -> Any:
        kept = load(*args)
        read_ahead.append(kept is not None)
        loaded.set()
        return kept

    def decide_after(self: Any, con: Any, plan: Any, *args: Any) -> bool:  # pin's, once they are read
        if plan.kind == "pin":
            loaded.wait(10)
        return precedes(self, con, plan, *args)

    monkeypatch.setattr(engine, "load_kept_aggregates", load_first)
    monkeypatch.setattr(engine.DuckDBEngine, "_precedes_kept", decide_after)
    every = lake_objects([[("a", 1, 0)], [("a", 2, 1)]], partitions=2)  # object 0 sorts first
    step, full = load_settings(workdir=tmp_path / "step"), load_settings(workdir=tmp_path / "full")
    for kind, name, data in every:
        put(full, kind, name, data)
    for kind, name, data in every[3:]:
        put(step, kind, name, data)
    run_batch(step, BatchOptions())
    for kind, name, data in every[:3]:
        put(step, kind, name, data)
    result = run_batch(step, BatchOptions())
    assert read_ahead == [True]
    assert result.rebuilt == {"pin": PRECEDES_KEPT} and not result.outputs_incremental
    assert snapshot(step, result.outputs) == snapshot(full, run_batch(full, BatchOptions()).outputs)
