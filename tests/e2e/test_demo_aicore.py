"""The must-shows on the real data: `pinpipe demo` replaying the original emulator (seed 100, 2,524
iterations) writes the ten CSVs with exactly the documented names and headers and a lake of 2,524 records per
batch topic under the Kafka Connect naming; `pinpipe batch run` then re-runs on the same lake with the
three switched conventions. A demo over 2,000 iterations, 524 more sent and sunk, then `batch run`: it
reads only the 524 new records of each topic and writes the ten CSVs of the one-pass run."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

from pinpipe.locations import file_url
from tests.conftest import AicoreDemo
from tests.e2e.pipeline_cli import ApiProcess, clean_env, pinpipe

ITERATIONS = 2524
PREFIX = "0a1b2c3d4e5f"

# docs/data-rules.md, written out here rather than imported, so the test checks the code against the doc.
DOC_HEADERS = {
    "popular_category_by_country": ["country", "category", "category_count"],
    "posts_per_category_by_year": ["post_year", "category", "category_count"],
    "popular_category_by_year": ["post_year", "category", "category_count"],
    "top_user_by_country": ["country", "poster_name", "follower_count"],
    "top_country_by_followers": ["country", "follower_count"],
    "popular_category_by_age_group": ["age_group", "category", "category_count"],
    "median_followers_by_age_group": ["age_group", "median_follower_count"],
    "users_joined_by_year": ["post_year", "number_users_joined"],
    "median_followers_by_join_year": ["post_year", "median_follower_count"],
    "median_followers_by_join_year_and_age_group": ["age_group", "post_year", "median_follower_count"],
}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def demo(root: Path, aicore: Path, iterations: int) -> tuple[Path, Path, dict[str, str]]:
    """``pinpipe demo`` over ``iterations``: its workdir, its ten CSVs and the environment it ran in."""
    work, export = root / "W", root / "E"
    env = clean_env(root)
    pinpipe(
        "demo", "--workdir", str(work), "--lake", file_url(work / 'lake'), "--load-dir", str(aicore),
        "--seed", "100", "--iterations", str(iterations), "--no-sleep", "--no-stream",
        "--export", str(export), env=env, timeout=900,
    )  # fmt: skip
    return work, export, env


def test_demo_on_aicore_then_batch_with_switched_conventions(tmp_path: Path, aicore_demo: AicoreDemo) -> None:
    work, export = aicore_demo.workdir, aicore_demo.export
    tables = tmp_path / "tables"  # the demo's tables continued in a copy: the session's demo stays as it is
    shutil.copytree(work / "tables", tables)
    env = {**clean_env(tmp_path), "PINPIPE_ENGINE__TABLES_URL": file_url(tables)}
    export2 = tmp_path / "E2"

    assert sorted(p.name for p in export.iterdir()) == sorted(f"{name}.csv" for name in DOC_HEADERS)
    for name, header in DOC_HEADERS.items():
        rows = read_csv(export / f"{name}.csv")
        assert rows[0] == header, name
        assert len(rows) > 1, f"{name} is empty"

    for kind in ("pin", "geo", "user"):
        topic = f"{PREFIX}.{kind}"
        objects = sorted((work / "lake" / "topics" / topic).rglob("*.json"))
        assert objects, topic
        naming = re.compile(rf"partition=(\d+)/{re.escape(topic)}\+(\d+)\+(\d{{10}})\.json$")
        records = 0
        for path in objects:
            match = naming.search(path.as_posix())
            assert match and match.group(1) == match.group(2), path
            records += len(path.read_bytes().splitlines())
        assert records == ITERATIONS, topic

    pinpipe(
        "batch", "run", "--workdir", str(work), "--keep-duplicates", "--median", "exact", "--keep-ties",
        "--export", str(export2), "--quiet",
        env=env, timeout=600,
    )  # fmt: skip
    for name, header in DOC_HEADERS.items():
        assert read_csv(export2 / f"{name}.csv")[0] == header, name

    # The replay draws some rows more than once: counting raw records gives larger category counts.
    def total(path: Path) -> int:
        return sum(int(row[-1]) for row in read_csv(path)[1:])

    by_year = "posts_per_category_by_year.csv"
    assert total(export2 / by_year) > total(export / by_year)


def test_524_more_iterations_sent_and_sunk_then_batch_reads_only_them(
    tmp_path: Path, aicore: Path, aicore_demo: AicoreDemo
) -> None:
    work, _, env = demo(tmp_path, aicore, 2000)
    flags = ["--workdir", str(work)]
    lake = ["--lake", file_url(work / "lake")]
    with ApiProcess(flags, env, tmp_path / "api.log") as api:
        pinpipe(
            "emulate", *flags, "--api", api.url, "--seed", "100", "--skip", "2000", "--iterations", "524",
            "--no-sleep", "--no-progress", env=env,
        )  # fmt: skip
    pinpipe("sink", "run", *flags, *lake, "--until-idle", env=env)
    export = tmp_path / "E524"
    summary = pinpipe("batch", "run", *flags, *lake, "--export", str(export), "--quiet", env=env).stdout
    for kind in ("pin", "geo", "user"):
        assert re.search(rf"{kind}: 524 records read from \d+ new objects \(\d+ done before\)", summary), (
            summary
        )
    for name in DOC_HEADERS:
        assert (export / f"{name}.csv").read_bytes() == (aicore_demo.export / f"{name}.csv").read_bytes(), (
            name
        )
