"""Paths that keep data where it belongs: a workdir or lake path holding ``#``, ``?``, ``%``, spaces or
non-ASCII stays that path for the log, the lake, the source database and every Delta table; a local URL
with a host is refused; the table clean-up deletes only files of the Delta table it was asked to clean."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from pinpipe.config import Settings, load_settings
from pinpipe.dashboard import create_dashboard_app
from pinpipe.delta import open_table, remove_replaced_files, replace_table
from pinpipe.engines import run_batch
from pinpipe.errors import ConfigError
from pinpipe.lake.store import FileStore, open_store
from pinpipe.locations import delta_uri, embedded_url, file_url, join, local_path, sqlite_url
from pinpipe.log import OutgoingRecord, open_log, open_settings_log
from pinpipe.log.embedded import parse_url
from pinpipe.schema import KINDS, topic_name
from pinpipe.source.database import open_source
from pinpipe.tables import batch_table
from pinpipe.transform.queries import BatchOptions
from tests.processes import clean_env

USER = {"ind": 1, "first_name": "A", "last_name": "B", "age": 30, "date_joined": "2016-01-01 00:00:00"}
TABLES = 16  # pin, geo, user, ten outputs, quarantine, the outputs' aggregates, the pin keys


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("PINPIPE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PINPIPE_CONFIG", str(tmp_path / "no-such-pinpipe.toml"))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def pinpipe(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args],
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert done.returncode == 0, (
            f"pinpipe {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def write_users(settings: Settings, count: int) -> None:
    """``count`` user records in the settings' lake, through its store."""
    topic = topic_name(settings.prefix, "user")
    body = b"".join(json.dumps({**USER, "ind": i}).encode() + b"\n" for i in range(1, count + 1))
    open_store(settings.lake_url).put(f"topics/{topic}/partition=0/{topic}+0+0000000000.json", body)


# -- the workdir of the report: runs/p#1 ---------------------------------------------------------------


def test_hash_workdir_keeps_log_lake_and_every_table_distinct_and_clean_up_deletes_nothing_else(
    tmp_path: Path,
) -> None:
    work = tmp_path / "runs" / "p#1"
    pinpipe("demo", "--workdir", "runs/p#1", "--iterations", "20", "--no-sleep", "--no-stream", cwd=tmp_path)

    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["p#1"]  # nothing went to runs/p
    assert (work / "log" / "log.db").is_file() and (work / "source.db").is_file()
    assert list((work / "lake" / "topics").rglob("*.json"))
    tables = sorted(p.parent.name for p in (work / "tables" / "batch").glob("*/_delta_log"))
    assert len(tables) == len(set(tables)) == TABLES
    outside_tables = {p: p.stat().st_mtime_ns for p in files_under(tmp_path) if "tables" not in p.parts}

    for _ in range(2):  # the second run replaces every table: --retain-hours 0 then deletes the old files
        pinpipe("batch", "run", "--workdir", "runs/p#1", "--retain-hours", "0", "--quiet", cwd=tmp_path)
    assert {
        p: p.stat().st_mtime_ns for p in files_under(tmp_path) if "tables" not in p.parts
    } == outside_tables
    config = load_settings(workdir=work)
    for name in tables:  # the live version's files only, the replaced ones deleted
        live = {Path(uri).name for uri in open_table(batch_table(config, name)).file_uris()}
        assert {p.name for p in (work / "tables" / "batch" / name).glob("*.parquet")} == live, name


# -- ?, %20, %2F ----------------------------------------------------------------------------------------


def test_question_mark_workdir_reads_only_its_own_lake(tmp_path: Path) -> None:
    """DuckDB reads a path as a glob: ``p?1`` would also match the sibling ``pX1``."""
    mine = load_settings(workdir=tmp_path / "runs" / "p?1")
    sibling = load_settings(workdir=tmp_path / "runs" / "pX1")
    write_users(mine, 3)
    write_users(sibling, 5)
    assert len(files_under(tmp_path / "runs" / "p?1" / "lake")) == 1
    result = run_batch(mine, BatchOptions())
    assert result.records_read["user"] == 3 and result.cleaned_rows["user"] == 3
    assert (tmp_path / "runs" / "p?1" / "tables" / "batch" / "user" / "_delta_log").is_dir()
    assert not (tmp_path / "runs" / "pX1" / "tables").exists()


@pytest.mark.parametrize("name", ["p%201", "p%2F1", "p%1"])
def test_percent_workdir_keeps_log_lake_and_source_inside_it(tmp_path: Path, name: str) -> None:
    work = tmp_path / "runs" / name
    config = load_settings(workdir=work)
    log = open_settings_log(config)
    try:
        log.create_topic("t", partitions=1)
        writer = log.writer()
        assert writer.append("t", [OutgoingRecord(b"v")]) == [(0, 0)]
        writer.close()
        assert log.end_offsets("t") == {0: 1}
    finally:
        log.close()
    open_store(config.lake_url).put("topics/t/o.json", b"{}\n")
    open_source(config.source_url).dispose()
    assert (work / "log" / "log.db").is_file()
    assert (work / "lake" / "topics" / "t" / "o.json").is_file()
    assert (work / "source.db").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [name]


@pytest.mark.parametrize("name", ["p%201", "p%2F1"])
def test_delta_tables_under_a_percent_escape_are_refused_before_any_write(tmp_path: Path, name: str) -> None:
    """delta-rs decodes a %XX of a local table path once more when it reads the table back (``p%2F1``
    becomes ``p/1``, another directory): such a tables location is a clear error, nothing is written."""
    config = load_settings(workdir=tmp_path / "runs" / name)
    write_users(config, 2)
    with pytest.raises(ConfigError, match=r"delta-rs cannot keep a table at .*%2"):
        run_batch(config, BatchOptions())
    assert not (tmp_path / "runs" / name / "tables").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [name]


# -- file://tmp/x ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file://tmp/x", "file://tmp/", "embedded://tmp/x"])
def test_a_local_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="names host 'tmp'"):
        local_path(url)
    with pytest.raises(ConfigError, match="names host 'tmp'"):
        open_store(url) if url.startswith("file") else open_log(url)
    with pytest.raises(ConfigError, match="names host 'tmp'"):
        delta_uri(url)


def test_a_tables_url_with_a_host_fails_the_batch_before_it_runs(tmp_path: Path) -> None:
    config = load_settings(workdir=tmp_path / "w", **{"engine.tables_url": "file://tmp/x"})
    write_users(config, 1)
    with pytest.raises(ConfigError, match="names host 'tmp'"):
        run_batch(config, BatchOptions())


# -- path -> URL -> path --------------------------------------------------------------------------------

NAMES = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"), min_size=1, max_size=12
).filter(lambda n: n not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(st.lists(NAMES, min_size=1, max_size=4), NAMES)
def test_path_to_url_to_path_round_trips(names: list[str], child: str) -> None:
    path = Path("/srv", *names)
    for url in (file_url(path), embedded_url(path), sqlite_url(path)):
        assert local_path(url) == path, url
        assert url.isascii() and not re.search(r"[#? ]|%(?![0-9A-F]{2})", url.split("://", 1)[1]), url
    assert local_path(join(file_url(path), child, "pin")) == path / child / "pin"
    assert FileStore(file_url(path)).root == path
    derived = Settings(workdir=path, source={}, log={}, lake={}, engine={})  # type: ignore[arg-type]
    assert FileStore(derived.lake_url).root == path / "lake"
    assert local_path(batch_table(derived, "pin")) == path / "tables" / "batch" / "pin"
    assert parse_url(derived.log_url)[0] == path / "log"
    assert make_url(derived.source_url).database == str(path / "source.db")


# -- the clean-up deletes only files of the table it was asked to clean ---------------------------------


def delta_with_replaced_file(url: str) -> Path:
    for value in (1, 2):
        replace_table(url, pa.table({"x": [value]}))
    directory = local_path(url)
    assert directory is not None and len(list(directory.glob("*.parquet"))) == 2
    return directory


def test_clean_up_refuses_a_table_outside_the_tables_root(tmp_path: Path) -> None:
    root = file_url(tmp_path / "tables")
    outside = delta_with_replaced_file(file_url(tmp_path / "lake" / "t"))
    before = files_under(tmp_path)
    for url in (file_url(outside), root):  # a table elsewhere, the root itself
        with pytest.raises(ConfigError, match="not below the tables root"):
            remove_replaced_files(url, 0, root)
    with pytest.raises(ConfigError, match="not below the tables root"):
        remove_replaced_files(f"{root}/../lake/t", 0, root)
    assert files_under(tmp_path) == before


def test_clean_up_refuses_a_directory_that_is_not_a_delta_table(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    (root / "batch" / "pin").mkdir(parents=True)
    kept = root / "batch" / "pin" / "part-00000-x.parquet"
    kept.write_bytes(b"not referenced by any table")
    with pytest.raises(ConfigError, match="not a Delta table"):
        remove_replaced_files(file_url(root / "batch" / "pin"), 0, file_url(root))
    assert kept.is_file()


def test_clean_up_refuses_a_link_leading_out_of_the_tables_root(tmp_path: Path) -> None:
    outside = delta_with_replaced_file(file_url(tmp_path / "elsewhere"))
    root = tmp_path / "tables"
    (root / "batch").mkdir(parents=True)
    (root / "batch" / "pin").symlink_to(outside)
    with pytest.raises(ConfigError, match="resolves outside the tables root"):
        remove_replaced_files(file_url(root / "batch" / "pin"), 0, file_url(root))
    assert len(list(outside.glob("*.parquet"))) == 2


def test_clean_up_of_a_table_below_the_root_deletes_only_its_replaced_file(tmp_path: Path) -> None:
    root = file_url(tmp_path / "tables")
    directory = delta_with_replaced_file(join(root, "batch", "pin"))
    neighbour = delta_with_replaced_file(join(root, "batch", "geo"))
    assert remove_replaced_files(join(root, "batch", "pin"), 0, root) == 1
    assert len(list(directory.glob("*.parquet"))) == 1
    assert len(list(neighbour.glob("*.parquet"))) == 2


# -- the must-show: a workdir named a#b?c%20d é -----------------------------------------------------------


def test_demo_runs_end_to_end_in_a_workdir_with_hash_question_mark_space_and_non_ascii(
    tmp_path: Path,
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    name = "a#b?c d é"
    pinpipe("demo", "--workdir", name, "--iterations", "30", "--no-sleep", cwd=parent)
    work = parent / name
    assert sorted(p.name for p in parent.iterdir()) == [name]  # every file is inside the workdir
    assert (work / "log" / "log.db").is_file() and (work / "source.db").is_file()
    assert list((work / "lake" / "topics").rglob("*.json"))
    batch = sorted(p.parent.name for p in (work / "tables" / "batch").glob("*/_delta_log"))
    assert len(batch) == TABLES
    stream = {p.parent.name for p in (work / "tables" / "stream").glob("*/_delta_log")}
    assert {f"0a1b2c3d4e5f_{k}_table" for k in KINDS} <= stream

    dashboard = TestClient(create_dashboard_app(load_settings(workdir=work)))
    assert all(o["available"] for o in dashboard.get("/api/batch").json()["outputs"])
    assert dashboard.get("/api/metrics").json()["available"] is True
    status = dashboard.get("/api/status").json()
    assert status["available"] is True and status["partitions"]
    assert sorted(p.name for p in parent.iterdir()) == [name]


def test_demo_in_the_must_show_workdir_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """``a#b?c%20d é``: the log, lake and source database would work (above), but delta-rs cannot keep a
    table under the ``%20``: the demo stops at once with that reason and leaves nothing behind."""
    parent = tmp_path / "parent"
    parent.mkdir()
    done = pinpipe(
        "demo", "--workdir", "a#b?c%20d é", "--iterations", "5", "--no-sleep", cwd=parent, check=False
    )
    assert done.returncode != 0
    assert "delta-rs cannot keep a table at" in done.stderr and "'%20'" in done.stderr
    assert list(parent.iterdir()) == []
