"""The pin keys (``engines.duckdb.pin_keys``): kept unique_ids are read only when a new one may repeat
them, and keys that do not describe the pin table as it is are not trusted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import duckdb
import pytest

from pinpipe.config import Settings
from pinpipe.delta import local_table_dir, read_table
from pinpipe.engines import run_batch
from pinpipe.engines.duckdb import engine
from pinpipe.engines.duckdb.pin_keys import PIN_KEYS
from pinpipe.tables import batch_table
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_incremental import put
from tests.unit.test_batch_run import lines, pin


def _object(settings: Settings, n: int, *pins: tuple[int, str, str]) -> None:
    put(settings, "pin", f"partition=0/{{topic}}+0+{n:010d}.json", lines(*(pin(*p) for p in pins)))


def _keys(settings: Settings) -> set[int]:
    return set(read_table(batch_table(settings, PIN_KEYS)).column("key").to_pylist())


def _keys_of(*ids: str) -> set[int]:
    values = ", ".join(f"('{i}')" for i in ids)
    rows = duckdb.execute(f"SELECT CAST(hash(u) >> 1 AS BIGINT) FROM (VALUES {values}) AS t(u)").fetchall()
    return {r[0] for r in rows}


def _titles(settings: Settings) -> list[tuple[str, str]]:
    rows = read_table(batch_table(settings, "pin")).to_pylist()
    return sorted((r["unique_id"], r["title"]) for r in rows)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``repeats`` of each look-up of kept pins: False when no kept unique_id was read."""
    seen: list[bool] = []
    real = engine.kept_rows_sql

    def recording(kind: Any, kept: str, staged: str, repeats: bool = True) -> str:
        if kind == "pin":
            seen.append(repeats)
        return real(kind, kept, staged, repeats)

    monkeypatch.setattr(engine, "kept_rows_sql", recording)
    return seen


def test_kept_unique_ids_are_read_only_when_a_new_one_may_repeat_them(
    settings: Settings, lookups: list[bool]
) -> None:
    _object(settings, 0, (1, "a", "first a"), (2, "b", "b"))
    run_batch(settings, BatchOptions())
    assert _keys(settings) == _keys_of("a", "b") and lookups == []  # a rebuild reads no kept pins
    _object(settings, 1, (3, "c", "c"))
    run_batch(settings, BatchOptions())
    assert lookups == [False] and _keys(settings) == _keys_of("a", "b", "c")
    _object(settings, 2, (4, "a", "later a"), (5, "d", "d"))
    run_batch(settings, BatchOptions())
    assert lookups == [False, True] and _keys(settings) == _keys_of("a", "b", "c", "d")
    assert _titles(settings) == [("a", "first a"), ("b", "b"), ("c", "c"), ("d", "d")]


def test_keys_of_an_earlier_pin_table_are_not_trusted(settings: Settings, lookups: list[bool]) -> None:
    """As after a run killed between its pin commit and its keys commit: the keys describe fewer pins
    than the table holds, so a repeat of a pin they miss is found by reading the kept unique_ids."""
    _object(settings, 0, (1, "a", "a"))
    run_batch(settings, BatchOptions())
    directory = local_table_dir(batch_table(settings, PIN_KEYS))
    assert directory is not None
    earlier = directory.with_name("earlier-keys")
    shutil.copytree(directory, earlier)
    _object(settings, 1, (2, "b", "first b"))
    run_batch(settings, BatchOptions())
    shutil.rmtree(directory)
    earlier.rename(directory)
    _object(settings, 2, (3, "b", "later b"))
    run_batch(settings, BatchOptions())
    assert lookups == [False, True] and _titles(settings) == [("a", "a"), ("b", "first b")]
    assert _keys(settings) == _keys_of("a", "b")  # written again from the whole table


def test_keep_duplicates_leaves_the_keys_alone(settings: Settings) -> None:
    _object(settings, 0, (1, "a", "a"), (2, "a", "a again"))
    run_batch(settings, BatchOptions())
    before = _keys(settings)
    result = run_batch(settings, BatchOptions(keep_duplicates=True))
    assert result.cleaned_rows["pin"] == 2 and PIN_KEYS not in result.tables
    assert _keys(settings) == before


def test_an_incremental_quiet_run_imports_no_pyarrow(settings: Settings) -> None:
    """A ``batch run --quiet`` that appends new objects hands DuckDB's results to delta-rs through the Arrow
    C stream interface: pyarrow and numpy (a sixth of a small run's CPU) are imported only by a reader of
    the outputs, a rebuild or a remote table."""
    _object(settings, 0, (1, "a", "a"), (2, "b", "b"))
    run_batch(settings, BatchOptions())
    _object(settings, 1, (3, "c", "c"), (4, "a", "again"))  # a repeated unique_id: kept ids read too
    code = (
        "import sys\nfrom pinpipe.cli import main\ntry:\n"
        "    main(['batch', 'run', '--workdir', sys.argv[1], '--quiet'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pyarrow', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(settings.workdir)], capture_output=True, text=True, check=True
    )
    assert "pin: 2 records read from 1 new objects" in run.stdout, run.stdout
    assert run.stdout.splitlines()[-1] == "[]", run.stdout
    assert _titles(settings) == [("a", "a"), ("b", "b"), ("c", "c")]


def test_a_small_run_looks_new_pins_up_in_the_raw_objects_while_they_are_staged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, lookups: list[bool]
) -> None:
    """The other cursor answers from the raw objects whether a new pin may repeat a kept unique_id: a
    "no" spares the look-up of the staged pins; a "may", or objects the raw reader cannot read (a broken
    line), leave it to the staged pins."""
    staged: list[bool] = []
    real = engine.may_repeat

    def recording(con: Any, keys: str, source: str) -> bool:
        staged.append(real(con, keys, source))
        return staged[-1]

    monkeypatch.setattr(engine, "may_repeat", recording)
    _object(settings, 0, (1, "a", "first a"), (2, "b", "b"))
    run_batch(settings, BatchOptions())
    _object(settings, 1, (3, "c", "c"))
    run_batch(settings, BatchOptions())
    assert staged == [] and lookups == [False]
    _object(settings, 2, (4, "a", "later a"), (5, "d", "d"))
    run_batch(settings, BatchOptions())
    assert staged == [True] and lookups == [False, True]
    put(settings, "pin", "partition=0/{topic}+0+0000000003.json", lines(pin(6, "e", "e")) + b"{broken\n")
    run_batch(settings, BatchOptions())
    assert staged == [True, False] and lookups == [False, True, False]
    assert _titles(settings) == [("a", "first a"), ("b", "b"), ("c", "c"), ("d", "d"), ("e", "e")]
