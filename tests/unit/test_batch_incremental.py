"""Incremental batch runs: a lake cleaned in increments gives the tables and outputs of one full run."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pinpipe.config import Settings, load_settings
from pinpipe.delta import read_table
from pinpipe.engines import run_batch
from pinpipe.schema import KINDS, topic_name
from pinpipe.tables import batch_table
from pinpipe.transform.queries import OUTPUTS, BatchOptions
from tests.unit.test_batch_chunks import geo, user
from tests.unit.test_batch_run import lines, pin

SWITCHES = [
    BatchOptions(keep_duplicates=d, median=m, keep_ties=t)
    for d in (False, True)
    for m in ("lower", "exact")
    for t in (False, True)
]


def lake_objects(objects: list[list[tuple[Any, ...]]], partitions: int = 1) -> list[tuple[str, str, bytes]]:
    """(kind, file name, bytes) of every object, from drawn records (unique_id, ind, variant[, value: 0]);
    object n goes to partition n % ``partitions``. Every third object of a kind holds one bad line. The value
    varies what the outputs' aggregates keep: follower counts (medians, best posters and their ties),
    categories, posters, post and join years."""
    out: list[tuple[str, str, bytes]] = []
    for n, drawn in enumerate(objects):
        p = n % partitions
        records = [(*r, 0) if len(r) == 3 else r for r in drawn]
        for kind in KINDS:
            if kind == "pin":
                rows = [
                    {**pin(i, u, f"v{c}"), "follower_count": FOLLOWERS[v], "poster_name": f"p{v % 2}",
                     "category": "art" if v < 2 else "diy"}
                    for u, i, c, v in records
                ]  # fmt: skip
            elif kind == "geo":
                rows = [
                    {**geo(i, f"C{c}"), "timestamp": f"{2017 + v}-05-05 05:05:05"} for _, i, c, v in records
                ]
            else:
                rows = [
                    {**user(i, 20 + 10 * c), "date_joined": f"{2014 + v}-01-01 00:00:00"}
                    for _, i, c, v in records
                ]
            data = lines(*rows) + (b"{broken\n" if n % 3 == 2 else b"")
            out.append((kind, f"partition={p}/{{topic}}+{p}+{n * 1000:010d}.json", data))
    return out


def put(settings: Settings, kind: str, name: str, data: bytes) -> None:
    topic = topic_name(settings.prefix, kind)  # type: ignore[arg-type]
    path = settings.workdir / "lake" / "topics" / topic / name.format(topic=topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def snapshot(settings: Settings, outputs: Mapping[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """Every batch table's rows (sorted) and the ten outputs as returned (in export order)."""
    tables = {}
    for name in [*KINDS, "quarantine", *OUTPUTS]:
        rows = read_table(batch_table(settings, name)).to_pylist()
        tables[name] = sorted(tuple(str(v) for v in r.values()) for r in rows)
    for name, table in outputs.items():
        tables[f"returned {name}"] = [tuple(str(v) for v in r.values()) for r in table.to_pylist()]
    return tables


FOLLOWERS = ["5", "7", "12k", "User Info Error"]
ids = st.sampled_from(["a", "b", "c", None])
records = st.lists(
    st.tuples(ids, st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=4
)


@pytest.mark.parametrize("options", SWITCHES, ids=str)
@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=7), st.lists(st.integers(0, 6), max_size=5), st.integers(1, 2))
def test_runs_after_each_increment_equal_one_full_run(
    options: BatchOptions, objects: list, cuts: list[int], partitions: int
) -> None:
    """The lake split into 1-6 increments at random object boundaries (with two partitions, a later
    increment also holds objects that sort before earlier ones), a run after each: the same tables,
    quarantine and ten outputs as one run over the whole lake, for every combination of the switches;
    each run after the first updates the outputs' aggregates with its rows alone unless it rebuilt."""
    every = lake_objects(objects, partitions)
    bounds = sorted({min(c, len(objects)) for c in cuts} | {len(objects)})
    with tempfile.TemporaryDirectory(prefix="pinpipe-incr-") as a, tempfile.TemporaryDirectory() as b:
        full, step = load_settings(workdir=Path(a)), load_settings(workdir=Path(b))
        for kind, name, data in every:
            put(full, kind, name, data)
        expected = snapshot(full, run_batch(full, options).outputs)
        written = 0
        for bound in bounds:
            for kind, name, data in every[written * 3 : bound * 3]:
                put(step, kind, name, data)
            written = bound
            result = run_batch(step, options)
            assert result.outputs_incremental == (not result.rebuilt)  # aggregates kept unless rebuilt
        assert snapshot(step, result.outputs) == expected
        last = len(objects) - [0, *bounds][-2]  # objects of the last increment, per kind
        for kind in KINDS:  # pin may be rebuilt: a new record preceding a differing kept one
            assert result.objects_read[kind] == (len(objects) if kind in result.rebuilt else last), kind
        assert set(result.rebuilt) <= ({"pin"} if len(bounds) > 1 else set(KINDS))


def test_a_rerun_reads_nothing_and_new_objects_are_the_only_ones_read(settings: Settings) -> None:
    put(settings, "pin", "partition=0/{topic}+0+0000000000.json", lines(pin(1, "a", "first")))
    first = run_batch(settings, BatchOptions())
    assert first.records_read["pin"] == 1 and first.rebuilt == {
        k: "no bookkeeping in the tables yet" for k in KINDS
    }
    again = run_batch(settings, BatchOptions())
    assert again.records_read == {"pin": 0, "geo": 0, "user": 0} and again.rebuilt == {}
    assert again.objects_done["pin"] == 1
    put(
        settings,
        "pin",
        "partition=0/{topic}+0+0000000001.json",
        lines(pin(2, "a", "later"), pin(3, "b", "b")),
    )
    third = run_batch(settings, BatchOptions())
    assert third.records_read["pin"] == 2 and third.objects_read["pin"] == 1
    assert sorted(read_table(batch_table(settings, "pin")).column("title").to_pylist()) == ["b", "first"]


def test_switching_keep_duplicates_rebuilds_and_full_refresh_rebuilds(settings: Settings) -> None:
    put(settings, "user", "partition=0/{topic}+0+0000000000.json", lines(user(1, 20), user(1, 20)))
    assert run_batch(settings, BatchOptions()).cleaned_rows["user"] == 1
    kept = run_batch(settings, BatchOptions(keep_duplicates=True))
    assert (
        kept.cleaned_rows["user"] == 2
        and kept.rebuilt["user"] == "the table was built without --keep-duplicates"
    )
    assert run_batch(settings, BatchOptions(keep_duplicates=True, median="exact")).rebuilt == {}
    refreshed = run_batch(settings, BatchOptions(keep_duplicates=True), full_refresh=True)
    assert refreshed.rebuilt["user"] == "--full-refresh" and refreshed.cleaned_rows["user"] == 2


@pytest.mark.parametrize("edit", ["rewrite", "grow", "delete", "touch"])
def test_objects_changed_after_cleaning_are_reported(settings: Settings, edit: str) -> None:
    name = "partition=0/{topic}+0+0000000000.json"
    put(settings, "user", name, lines(user(1, 20)))
    run_batch(settings, BatchOptions())
    topic = topic_name(settings.prefix, "user")
    path = settings.workdir / "lake" / "topics" / topic / name.format(topic=topic)
    key = f"topics/{topic}/{name.format(topic=topic)}"
    import os

    if edit == "rewrite":  # same size, other bytes
        path.write_bytes(lines(user(2, 20)))
    elif edit == "grow":
        path.write_bytes(lines(user(1, 20), user(2, 30)))
    elif edit == "delete":
        path.unlink()
    else:  # the same bytes, a new modification time: no change
        os.utime(path, ns=(1, 1))
    result = run_batch(settings, BatchOptions())
    assert result.changed == ({} if edit == "touch" else {"user": [key]})
    assert sorted(read_table(batch_table(settings, "user")).column("ind").to_pylist()) == [1]


@pytest.mark.parametrize("table", ["user", "quarantine"])
def test_a_table_written_without_bookkeeping_is_rebuilt(settings: Settings, table: str) -> None:
    """Rows written by another writer (an older pinpipe, another tool) after a run with bookkeeping:
    that older bookkeeping no longer describes the table, so the next run rebuilds, never appends."""
    from pinpipe.delta import remove_replaced_files, replace_table

    put(settings, "user", "partition=0/{topic}+0+0000000000.json", lines(user(1, 20)))
    run_batch(settings, BatchOptions())
    url = batch_table(settings, table)
    replace_table(url, read_table(url))
    remove_replaced_files(url, 0, settings.tables_url)
    result = run_batch(settings, BatchOptions())
    assert result.rebuilt.get("user") == "no bookkeeping in the tables yet"
    assert read_table(batch_table(settings, "user")).column("ind").to_pylist() == [1]


def test_bookkeeping_in_user_metadata_is_continued(settings: Settings) -> None:
    """delta-spark keeps the bookkeeping in the commit's ``userMetadata``: a table whose last commit holds
    it there (the Spark engine's) is continued, not rebuilt."""
    from deltalake import CommitProperties, write_deltalake

    from pinpipe.engines.increments import last_metadata, user_metadata
    from pinpipe.locations import delta_uri

    put(settings, "user", "partition=0/{topic}+0+0000000000.json", lines(user(1, 20)))
    run_batch(settings, BatchOptions())
    url = batch_table(settings, "user")
    metadata = last_metadata(url)
    assert metadata is not None
    spark_shaped = CommitProperties(custom_metadata={"userMetadata": user_metadata(metadata)})
    write_deltalake(delta_uri(url), read_table(url), mode="overwrite", commit_properties=spark_shaped)
    put(settings, "user", "partition=0/{topic}+0+0000000001.json", lines(user(2, 30)))
    result = run_batch(settings, BatchOptions())
    assert result.rebuilt == {} and result.objects_read["user"] == 1 and result.objects_done["user"] == 1
    assert sorted(read_table(url).column("ind").to_pylist()) == [1, 2]


def test_aggregates_of_other_rows_are_not_used(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after committing its cleaned rows but before the outputs' aggregates leaves
    aggregates that describe fewer rows: the next run computes them again from the whole tables."""
    from pinpipe.engines.duckdb import engine

    every = lake_objects([[("a", 1, 0, 0)], [("b", 2, 1, 2), (None, 3, 2, 1)]])
    for kind, name, data in every[:3]:
        put(settings, kind, name, data)
    assert not run_batch(settings, BatchOptions()).outputs_incremental
    for kind, name, data in every[3:]:
        put(settings, kind, name, data)

    def die(*args: Any) -> None:
        raise RuntimeError("killed before the aggregates' commit")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "write_aggregates", die)
        with pytest.raises(RuntimeError):
            run_batch(settings, BatchOptions())
    rerun = run_batch(settings, BatchOptions())
    assert rerun.records_read == {"pin": 0, "geo": 0, "user": 0} and not rerun.outputs_incremental
    with tempfile.TemporaryDirectory() as whole:
        full = load_settings(workdir=Path(whole))
        for kind, name, data in every:
            put(full, kind, name, data)
        expected = snapshot(full, run_batch(full, BatchOptions()).outputs)
    assert snapshot(settings, rerun.outputs) == expected


def test_added_aggregates_are_appended_until_they_outgrow_the_merged_ones(settings: Settings) -> None:
    """An incremental run appends the aggregates of its rows unmerged while the rows appended since the
    last merged write stay within that write's rows, and writes them merged once they would not; the
    outputs equal one full run's either way."""
    from deltalake import DeltaTable

    from pinpipe.engines.duckdb.outputs import AGGREGATES
    from pinpipe.engines.increments import last_metadata

    url = batch_table(settings, AGGREGATES)

    def aggregates_written() -> tuple[str, dict[str, int]]:
        """The last write's mode and the rows its commit records."""
        mode = DeltaTable(url).history(1)[0]["operationParameters"]["mode"]
        text = last_metadata(url)
        assert text is not None
        return mode, json.loads(text)["rows"]

    history = [(f"u{i}", i, i % 3, i % 4) for i in range(12)]
    small = [("x", 100, 1, 2)]
    large = [(f"w{i}", 200 + i, i % 3, (i + 1) % 4) for i in range(40)]
    every = lake_objects([history, small, large])
    for index, expected_mode in enumerate(["Overwrite", "Append", "Overwrite"]):
        for kind, name, data in every[index * 3 : index * 3 + 3]:
            put(settings, kind, name, data)
        result = run_batch(settings, BatchOptions())
        mode, rows = aggregates_written()
        assert mode == expected_mode, index
        with tempfile.TemporaryDirectory() as whole:
            full = load_settings(workdir=Path(whole))
            for kind, name, data in every[: index * 3 + 3]:
                put(full, kind, name, data)
            assert snapshot(settings, result.outputs) == snapshot(
                full, run_batch(full, BatchOptions()).outputs
            )
        kept = read_table(url).num_rows
        if mode == "Append":
            assert 0 < rows["appended"] <= rows["merged"] and kept == rows["merged"] + rows["appended"]
        else:
            assert rows["appended"] == 0 and kept == rows["merged"]
