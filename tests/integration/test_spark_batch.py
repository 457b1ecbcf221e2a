"""Spark and DuckDB give the same batch results: cleaned tables, the ten outputs, quarantine, CSV export.

Lakes: the real aicore data replayed by ``pinpipe demo`` with seed 100 and 2,524 iterations; 100,000
synthetic posts written directly as lake objects; a small lake of awkward records. Delta tables written by
delta-spark are read with delta-rs (``deltalake``) and those written by delta-rs are read with Spark.
One SparkSession for the whole test session (``tests/integration/spark_support.py``), its JVM in
America/Los_Angeles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.delta import read_table
from pinpipe.locations import file_url
from pinpipe.schema import KINDS, topic_name
from pinpipe.tables import batch_table
from pinpipe.transform.queries import OUTPUTS, BatchOptions
from tests.conftest import AicoreDemo
from tests.integration.spark_support import (
    same_batch_on_both_engines,
    same_rows,
    settings_for,
    spark,
    synthetic_lake,
)

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]
ALL_SWITCHES = BatchOptions(keep_duplicates=True, median="exact", keep_ties=True)


@pytest.fixture(scope="module")
def aicore_runs(
    spark: Any, aicore_demo: AicoreDemo, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """``pinpipe batch run --export`` on each engine over the aicore lake (seed 100, 2,524 iterations),
    in-process (the Spark run uses the session's SparkSession), each writing its own tables."""
    root = tmp_path_factory.mktemp("aicore")
    workdir = aicore_demo.workdir
    runs: dict[str, Path] = {"workdir": workdir}
    for engine in ("duckdb", "spark"):
        env = {
            "PINPIPE_CONFIG": str(root / "no-such.toml"),
            "PINPIPE_ENGINE__TABLES_URL": file_url(root / f"tables-{engine}"),
        }
        args = ["batch", "run", "--engine", engine, "--workdir", str(workdir), "--quiet"]
        result = CliRunner().invoke(cli, [*args, "--export", str(root / f"csv-{engine}")], env=env)
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert f"engine={engine}" in result.output
        runs[engine] = root / f"tables-{engine}"
        runs[f"csv-{engine}"] = root / f"csv-{engine}"
    return runs


def test_cli_export_on_the_aicore_lake_gives_the_same_ten_csvs(aicore_runs: dict[str, Path]) -> None:
    for name in OUTPUTS:
        duck = (aicore_runs["csv-duckdb"] / f"{name}.csv").read_bytes()
        spark_csv = (aicore_runs["csv-spark"] / f"{name}.csv").read_bytes()
        assert duck == spark_csv, name
        assert duck.count(b"\n") > 1, name  # a header and real rows
    years = (aicore_runs["csv-spark"] / "posts_per_category_by_year.csv").read_text()
    assert {line.split(",")[0] for line in years.splitlines()[1:]} == {"2018", "2019", "2020", "2021", "2022"}


def test_delta_tables_cross_read_between_delta_spark_and_delta_rs(
    spark: Any, aicore_runs: dict[str, Path]
) -> None:
    """delta-rs reads what delta-spark wrote and Spark reads what delta-rs wrote: the same rows."""
    for name in [*KINDS, *OUTPUTS, "quarantine"]:
        by_rs = read_table(file_url(aicore_runs["duckdb"] / "batch" / name))
        spark_written_read_by_rs = read_table(file_url(aicore_runs["spark"] / "batch" / name))
        rs_written_read_by_spark = (
            spark.read.format("delta").load(str(aicore_runs["duckdb"] / "batch" / name)).toArrow()
        )
        rs_written_read_by_spark = rs_written_read_by_spark.cast(by_rs.schema)
        assert same_rows(spark_written_read_by_rs, by_rs), name
        assert same_rows(rs_written_read_by_spark, by_rs), name
    assert read_table(file_url(aicore_runs["spark"] / "batch" / "pin")).num_rows > 1000


def test_every_switch_on_the_aicore_lake(aicore_runs: dict[str, Path]) -> None:
    """--keep-duplicates, --median exact and --keep-ties together (each changes the SQL it runs)."""
    duck, _ = same_batch_on_both_engines(aicore_runs["workdir"], ALL_SWITCHES)
    assert duck.cleaned_rows["pin"] > 1000


SYNTHETIC_POSTS = int(os.environ.get("PINPIPE_SPARK_PARITY_POSTS", "20000"))
"""Posts of the synthetic parity lake: 20,000 in the suite (time budget); the issue's 100,000 with
PINPIPE_SPARK_PARITY_POSTS=100000."""


def test_synthetic_posts(spark: Any, tmp_path: Path) -> None:
    synthetic_lake(tmp_path, SYNTHETIC_POSTS, per_file=5_000)
    duck, _ = same_batch_on_both_engines(tmp_path, BatchOptions())
    assert duck.cleaned_rows == {"pin": SYNTHETIC_POSTS, "geo": SYNTHETIC_POSTS, "user": SYNTHETIC_POSTS}


def _lines(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def test_awkward_lake_same_quarantine_and_naive_years(spark: Any, tmp_path: Path) -> None:
    """Bad JSON, wrong JSON types, out-of-range ints, duplicate keys, invalid UTF-8, blank and CRLF lines,
    ISO datetimes, duplicates, Parquet: the same records quarantined, kept and counted; 2018-12-31 20:43:42
    stays in 2018 although Spark's JVM runs in Los Angeles."""
    import pyarrow.parquet as pq

    prefix = settings_for(tmp_path).prefix
    pin = {"index": 1, "unique_id": "u1", "title": "t", "poster_name": "Ann", "follower_count": "1.5k",
           "category": "art", "save_location": "Local save in /data/art", "downloaded": 1}  # fmt: skip
    geo = {"ind": 1, "timestamp": "2018-12-31 20:43:42", "latitude": 1.5, "longitude": -2, "country": "Peru"}
    user = {"ind": 1, "first_name": "A", "last_name": "B", "age": 30, "date_joined": "2015-12-31 23:59:59"}
    objects: dict[str, list[bytes]] = {
        "pin": [
            _lines(pin, {**pin, "index": 2, "unique_id": "u2", "follower_count": "2M"})
            + _lines({**pin, "title": "x"}),
            _lines({**pin, "index": 3, "unique_id": "u3", "downloaded": 2**70}, {**pin, "index": "4"})
            + b'{"index": 5, "index": 6}\n\n'
            + _lines({**pin, "index": 7, "unique_id": "u7", "category": ""}),
            _lines({**pin, "index": 8, "unique_id": "u8"}) + b'{"index": 9, "title": "\xff"}\n',
        ],
        "geo": [
            _lines(geo, {**geo, "ind": 2, "timestamp": "2019-01-01 00:00:01"}, geo),
            b"\r\n".join(json.dumps({**geo, "ind": i}).encode() for i in (7, 8)) + b"\r\n"
            + _lines({**geo, "ind": 3, "timestamp": "2020-06-01T10:00:00"})
            + _lines({**geo, "ind": 4, "latitude": "?"})
            + b"[1, 2]\nnot json\n",
        ],
        "user": [_lines(user, {**user, "ind": 2, "age": 19}, {**user, "ind": 3, "date_joined": "yesterday"})],
    }  # fmt: skip
    for kind, datas in objects.items():
        topic = topic_name(prefix, kind)  # type: ignore[arg-type]
        folder = tmp_path / "lake" / "topics" / topic / "partition=0"
        folder.mkdir(parents=True)
        for i, data in enumerate(datas):
            (folder / f"{topic}+0+{i * 100:010d}.json").write_bytes(data)
    parquet = pa.Table.from_pylist([{**user, "ind": 9, "date_joined": "2017-05-05 05:05:05"}])
    pq.write_table(parquet, tmp_path / "lake" / "topics" / topic_name(prefix, "user") / "partition=0"
                   / f"{topic_name(prefix, 'user')}+0+{500:010d}.parquet")  # fmt: skip
    duck, ours = same_batch_on_both_engines(tmp_path, BatchOptions())
    assert len(duck.quarantined) == 7
    assert duck.cleaned_rows == {"pin": 5, "geo": 5, "user": 3}  # u1 once; geo 1 once; ind 9 from Parquet
    years = ours.outputs["posts_per_category_by_year"].to_pylist()
    assert {r["post_year"] for r in years} == {2018, 2019}
    joined = ours.outputs["users_joined_by_year"].to_pylist()
    assert [r["post_year"] for r in joined] == [2015, 2017]


def test_an_object_read_in_pieces_keeps_the_first_pin_of_each_unique_id(spark: Any, tmp_path: Path) -> None:
    """An object Spark reads in several pieces (of 1 KB here, each its own task) keeps, per unique_id, the
    pin of its earliest line, as DuckDB does: u1's first record is on line 1, a differing one on the last
    line, in another piece."""
    prefix = settings_for(tmp_path).prefix
    pin = {"index": 1, "unique_id": "u1", "title": "first", "poster_name": "Ann", "follower_count": "1k",
           "category": "art", "save_location": "Local save in /data/art", "downloaded": 1}  # fmt: skip
    fillers = [{**pin, "index": i, "unique_id": f"u{i}", "title": f"filler {i}"} for i in range(2, 40)]
    geo = {"ind": 1, "timestamp": "2018-12-31 20:43:42", "latitude": 1.5, "longitude": -2, "country": "Peru"}
    user = {"ind": 1, "first_name": "A", "last_name": "B", "age": 30, "date_joined": "2015-12-31 23:59:59"}
    records = {"pin": [pin, *fillers, {**pin, "index": 40, "title": "last"}], "geo": [geo], "user": [user]}
    for kind, values in records.items():
        topic = topic_name(prefix, kind)  # type: ignore[arg-type]
        folder = tmp_path / "lake" / "topics" / topic / "partition=0"
        folder.mkdir(parents=True)
        (folder / f"{topic}+0+{0:010d}.json").write_bytes(_lines(*values))
    setting = "spark.sql.files.maxPartitionBytes"
    before = spark.conf.get(setting)
    spark.conf.set(setting, "1024")
    try:
        pieces = spark.read.text(str(tmp_path / "lake" / "topics" / topic_name(prefix, "pin"))).rdd
        assert pieces.getNumPartitions() > 5
        same_batch_on_both_engines(tmp_path, BatchOptions())
    finally:
        spark.conf.set(setting, before)
    kept = read_table(batch_table(settings_for(tmp_path, "tables-spark"), "pin")).to_pylist()
    assert {r["unique_id"]: r["title"] for r in kept}["u1"] == "first"
