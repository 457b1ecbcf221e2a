"""Batch job benchmark: DuckDB engine vs a straightforward pandas implementation of the same definitions.

    .venv/bin/python benchmarks/bench_batch.py                 # 200,000 posts (quick)
    .venv/bin/python benchmarks/bench_batch.py --rows 1000000  # the target sizes: 1,000,000 and 5,000,000
    .venv/bin/python benchmarks/bench_batch.py --rows 5000000 --base /tmp/b5m   # keep/reuse the lake

Writes a synthetic lake of raw JSON lines directly (no API), then runs each implementation in its own
subprocess, sampling the child's RSS every 20 ms: the DuckDB side is ``pinpipe batch run`` itself (read and
quarantine the lake, clean, ten outputs, cleaned tables and outputs written as Delta, outputs printed); the
pandas side does the same cleaning and outputs and writes the same Delta tables. Prints wall seconds, CPU
seconds (the machine is shared: CPU time is the steadier figure), peak RSS, the speed ratio and peak memory
against the raw JSON size. The pandas child is stopped if its RSS passes ``--pandas-max-rss`` (it needs
roughly 4x the raw JSON); the ratio is then a lower bound.

Targets: at 1,000,000 and 5,000,000 posts, DuckDB at least 5x faster than pandas (the median of
``--repeat 5`` at 1M) with a peak below the raw JSON size. Wall times on a shared machine move by +-20%
from hour to hour: compare the two sides within one run, and read the CPU seconds too (DuckDB uses every
core, pandas one). With ``--incremental`` it also times a
run over a 1M-post history plus 10,000 new posts (one new object) against ``--full-refresh`` over the
same lake, both on the incremental code: target, the incremental run at most 10% of the full run's wall,
with its peak RSS. With ``--repeat N`` the tables are put back as the history run left them before each
incremental run, each followed by a full run. The verdict takes the median incremental run against the
fastest full run: a burst of other work slows the long full run more than the short incremental one, so a
ratio against a slowed full run would look better than it is; and a "met" is withheld when even that run
was starved of CPU (``BOTH_CORES``). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _child import ChildRun


PREFIX = "0a1b2c3d4e5f"
CATEGORIES = ["art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
              "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles"]  # fmt: skip
COUNTRIES = [f"Country {i} (Rep. of, Ünïcode)" for i in range(240)]


def generate(lake: Path, rows: int, per_file: int = 50_000, seed: int = 1, first: int = 0) -> int:
    """Raw JSON-lines objects for ``rows`` posts (pin, geo, user per post), inds from ``first``; returns
    total bytes."""
    rng = random.Random(seed)
    total = 0
    files = {k: lake / "topics" / f"{PREFIX}.{k}" / "partition=0" for k in ("pin", "geo", "user")}
    for d in files.values():
        d.mkdir(parents=True, exist_ok=True)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for start in range(first, first + rows, per_file):
        out: dict[str, list[str]] = {"pin": [], "geo": [], "user": []}
        for ind in range(start, min(first + rows, start + per_file)):
            cat = rng.choice(CATEGORIES)
            f = rng.random()
            followers = ("User Info Error" if f < 0.05 else f"{rng.randint(1, 999)}k" if f < 0.6
                         else f"{rng.randint(1, 15)}M" if f < 0.65 else str(rng.randint(0, 997)))  # fmt: skip
            poster = (
                "User Info Error" if followers == "User Info Error" else f"Poster {rng.randint(0, 20000)} "
            )
            out["pin"].append(dumps({
                "index": ind, "unique_id": str(uuid.UUID(int=rng.getrandbits(128))),  # as in the real data
                "title": "No Title Data Available" if f < 0.03 else f"A fine title about {cat} № {ind}",
                "description": "No description available Story format" if f > 0.97
                else f"Description of post {ind}: easy ideas for {cat}, step by step… ",
                "poster_name": poster, "follower_count": followers,
                "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e" if f < 0.04 else f"{cat},ideas,diy,home,love",
                "is_image_or_video": "image" if f < 0.8 else "video",
                "image_src": f"https://i.pinimg.com/originals/{ind:08x}.jpg", "downloaded": 1,
                "save_location": f"Local save in /data/{cat}", "category": cat,
            }))  # fmt: skip
            ts = f"{rng.randint(2017, 2022)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 12:34:56"
            out["geo"].append(
                dumps(
                    {
                        "ind": ind,
                        "timestamp": ts,
                        "latitude": rng.uniform(-90, 90),
                        "longitude": rng.uniform(-180, 180),
                        "country": rng.choice(COUNTRIES),
                    }
                )
            )
            joined = f"{rng.randint(2015, 2017)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 01:02:03"
            out["user"].append(
                dumps(
                    {
                        "ind": ind,
                        "first_name": "Ann",
                        "last_name": f"Lee{ind % 977}",
                        "age": rng.randint(16, 60),
                        "date_joined": joined,
                    }
                )
            )
        for kind, lines in out.items():
            data = ("\n".join(lines) + "\n").encode()
            (files[kind] / f"{PREFIX}.{kind}+0+{start:010d}.json").write_bytes(data)
            total += len(data)
    return total


def measure(args: list[str], max_rss: int | None = None) -> ChildRun:
    """Run this file as a child (its output goes to this one's stderr), sampling its RSS."""
    from _child import run_child  # here, not at the top: tests load this file by path for generate()

    return run_child([sys.executable, __file__, *args], max_rss=max_rss)


def run_duckdb(workdir: Path, phases: bool, full_refresh: bool = False) -> None:
    """Exactly what ``pinpipe batch run --workdir W`` does (the CLI in this process, leaving as it does)."""
    if phases:
        logging.basicConfig(format="  %(message)s")
        logging.getLogger("pinpipe.engines.duckdb").setLevel(logging.DEBUG)
    from pinpipe.cli import main, run_then_exit

    args = ["batch", "run", "--workdir", str(workdir), "--engine", "duckdb", "--quiet"]
    run_then_exit(lambda: main([*args, *(["--full-refresh"] if full_refresh else [])]))


BOTH_CORES = 1.25
"""CPU seconds per second of wall a full run (at least 2 CPU s of DuckDB work on a 2-core host) gets when
nothing else runs: about 1.8. Below this much, other work took its cores, and a ratio against it
flatters the incremental run, which is too short and too serial to lose as much."""


def incremental(base: Path, rows: int, new: int, phases: bool, repeat: int = 1) -> None:
    """A run over the history (tables from scratch), ``new`` posts more in one new object, then ``repeat``
    times: the tables put back as the history run left them, an incremental run, and ``--full-refresh``
    over the same lake: wall, CPU and peak of each; judged from the median incremental run against the
    fastest full run, so a burst of load on one run does not decide, and a slowed full run cannot pass it."""
    child = ["--child", "duckdb", "--workdir", str(base), *(["--phases"] if phases else [])]
    history = base / "tables-history"
    for stale in (base / "tables", base / "tmp", history):
        shutil.rmtree(stale, ignore_errors=True)
    for extra in (base / "lake" / "topics").glob(f"*/partition=0/*+0+{rows:010d}.json"):
        extra.unlink()  # a previous benchmark's new posts
    h = measure(child)
    print(
        f"history run ({rows:,} posts): {h.seconds:7.2f} s wall {h.cpu:7.2f} s CPU"
        f"  peak {h.peak / 1e6:5.0f} MB"
    )
    keep_tables(base / "tables", history)
    added = generate(base / "lake", new, per_file=new, seed=2, first=rows)
    pairs: list[tuple[ChildRun, ChildRun]] = []
    for run in range(1, repeat + 1):
        if run > 1:
            shutil.rmtree(base / "tables")
            keep_tables(history, base / "tables")
        load = os.getloadavg()[0]
        i = measure(child)
        print(
            f"incremental (+{new:,} posts, {added / 1e6:.1f} MB): {i.seconds:7.2f} s wall {i.cpu:7.2f} s CPU"
            f"  peak RSS {i.peak / 1e6:5.0f} MB"
        )
        f = measure([*child, "--full-refresh"])
        print(
            f"--full-refresh ({rows + new:,} posts): {f.seconds:7.2f} s wall {f.cpu:7.2f} s CPU"
            f"  peak RSS {f.peak / 1e6:5.0f} MB"
        )
        pairs.append((i, f))
        print(
            f"incremental / full: {i.seconds / f.seconds:.1%} of the wall ({i.cpu / f.cpu:.1%} of the CPU);"
            f" load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
    fastest = min((f for _, f in pairs), key=lambda run: run.seconds)
    share = statistics.median(i.seconds for i, _ in pairs) / fastest.seconds
    if repeat > 1:
        walls = [i.seconds / f.seconds for i, f in pairs]
        shown = ", ".join(f"{w:.1%}" for w in walls)
        print(f"median over {repeat} pairs: {statistics.median(walls):.1%} of the wall ({shown}),"
              f" {statistics.median(i.cpu / f.cpu for i, f in pairs):.1%} of the CPU")  # fmt: skip
    verdict = "met" if share <= 0.10 else "MISSED"
    if share <= 0.10 and fastest.cpu >= 2 and fastest.cpu < BOTH_CORES * fastest.seconds:
        verdict = "not judged (even the fastest full run was starved of CPU by other work)"
    print(
        f"target incremental <= 10% of the full run's wall: {verdict}"
        f" ({share:.1%}: the median incremental run against the fastest full run)"
    )
    shutil.rmtree(history)


def keep_tables(source: Path, target: Path) -> None:
    """A copy of the Delta tables at ``source``: data files hard-linked (never changed in place), the
    logs copied (a commit may rewrite ``_last_checkpoint``)."""

    def copy(src: str, dst: str) -> None:
        if "_delta_log" in Path(src).parts:
            shutil.copy2(src, dst)
        else:
            os.link(src, dst)

    shutil.copytree(source, target, copy_function=copy)


def table_rows(workdir: Path) -> dict[str, int]:
    """Rows of each Delta table the run wrote (cleaned kinds and outputs), read after the timing."""
    from deltalake import DeltaTable

    from pinpipe.transform.queries import OUTPUTS

    names = ["pin", "geo", "user", *OUTPUTS]
    return {n: DeltaTable(str(workdir / "tables" / "batch" / n)).to_pyarrow_table().num_rows for n in names}


def run_pandas(workdir: Path) -> None:
    """The same definitions, written the straightforward pandas way (the baseline)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from deltalake import write_deltalake

    from pinpipe.transform.clean import CLEAN_COLUMNS

    lake = workdir.parent / "lake" / "topics"

    def read(kind: str) -> pd.DataFrame:
        files = sorted((lake / f"{PREFIX}.{kind}").glob("partition=*/*.json"))
        return pd.concat([pd.read_json(f, lines=True, dtype=False) for f in files], ignore_index=True)

    pin, geo, user = read("pin"), read("geo"), read("user")
    pin = pin.rename(columns={"index": "ind"}).replace("", None)
    for col, bad in [
        ("title", "No Title Data Available"),
        ("poster_name", "User Info Error"),
        ("tag_list", "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"),
        ("image_src", "Image src error."),
    ]:
        pin.loc[pin[col] == bad, col] = None
    pin.loc[pin["description"].str.startswith("No description available", na=False), "description"] = None
    fc = pin["follower_count"].str.strip()
    mult = np.where(fc.str.endswith("k", na=False), 1000, np.where(fc.str.endswith("M", na=False), 1e6, 1))
    num = pd.to_numeric(fc.where(mult == 1, fc.str[:-1]), errors="coerce")
    pin["follower_count"] = (num * mult).round().astype("Int64")
    pin["save_location"] = pin["save_location"].str.replace("Local save in ", "", regex=False)
    pin = pin[list(CLEAN_COLUMNS["pin"])]
    pin = pin.drop_duplicates("unique_id")
    geo["country"] = geo["country"].replace("", None)
    geo["timestamp"] = pd.to_datetime(geo["timestamp"], errors="coerce")
    geo = geo.drop_duplicates(["ind", "country", "latitude", "longitude", "timestamp"])
    geo["coordinates"] = [[a, b] for a, b in zip(geo["latitude"], geo["longitude"], strict=True)]
    geo = geo[["ind", "country", "coordinates", "timestamp"]]
    user["user_name"] = user["first_name"] + " " + user["last_name"]
    user["date_joined"] = pd.to_datetime(user["date_joined"], errors="coerce")
    user = user[["ind", "user_name", "age", "date_joined"]].drop_duplicates()
    tables = workdir / "tables" / "batch"
    for name, frame in (("pin", pin), ("geo", geo), ("user", user)):
        write_deltalake(
            str(tables / name), pa.Table.from_pandas(frame, preserve_index=False), mode="overwrite"
        )

    def top1(df: pd.DataFrame, group: list[str], value: str, name: str) -> pd.DataFrame:
        df = df.sort_values([*group, value, name], ascending=[True] * len(group) + [False, True])
        return df.drop_duplicates(group) if group else df.head(1)

    def lower_median(df: pd.DataFrame, group: list[str]) -> pd.DataFrame:
        df = df.dropna(subset=["follower_count"]).sort_values([*group, "follower_count"])
        n = df.groupby(group)["follower_count"].transform("size")
        rank = df.groupby(group).cumcount() + 1
        picked = df[rank == (n + 1) // 2]
        return picked[[*group, "follower_count"]].rename(columns={"follower_count": "median_follower_count"})

    pg = pin.merge(geo, on="ind")
    pg["post_year"] = pg["timestamp"].dt.year
    pu = pin.merge(user, on="ind")
    pu["age_group"] = pd.cut(pu["age"], [17, 24, 35, 50, np.inf], labels=["18-24", "25-35", "36-50", "50+"])
    pu["age_group"] = pu["age_group"].astype(object)
    pu["post_year"] = pu["date_joined"].dt.year
    pu_years = pu[pu["post_year"].between(2015, 2020)]
    counts = pg.dropna(subset=["country", "category"]).groupby(["country", "category"]).size()
    by_year = pg[pg["post_year"].between(2018, 2022)].dropna(subset=["category"])
    per_year = by_year.groupby(["post_year", "category"]).size().rename("category_count").reset_index()
    users = pg.dropna(subset=["country", "poster_name", "follower_count"])
    users = users.groupby(["country", "poster_name"])["follower_count"].max().reset_index()
    top_users = top1(users, ["country"], "follower_count", "poster_name")
    age_counts = pu.dropna(subset=["age_group", "category"]).groupby(["age_group", "category"]).size()
    joined = user[user["date_joined"].dt.year.between(2015, 2020)]
    outputs = {
        "popular_category_by_country": top1(counts.rename("category_count").reset_index(), ["country"],
                                            "category_count", "category"),
        "posts_per_category_by_year": per_year,
        "popular_category_by_year": top1(per_year, ["post_year"], "category_count", "category"),
        "top_user_by_country": top_users,
        "top_country_by_followers": top1(top_users[["country", "follower_count"]], [], "follower_count",
                                         "country"),
        "popular_category_by_age_group": top1(age_counts.rename("category_count").reset_index(),
                                              ["age_group"], "category_count", "category"),
        "median_followers_by_age_group": lower_median(pu.dropna(subset=["age_group"]), ["age_group"]),
        "users_joined_by_year": joined.groupby(joined["date_joined"].dt.year).size()
        .rename("number_users_joined").rename_axis("post_year").reset_index(),
        "median_followers_by_join_year": lower_median(pu_years, ["post_year"]),
        "median_followers_by_join_year_and_age_group": lower_median(pu_years.dropna(subset=["age_group"]),
                                                                    ["age_group", "post_year"]),
    }  # fmt: skip
    for name, frame in outputs.items():
        write_deltalake(
            str(tables / name), pa.Table.from_pandas(frame, preserve_index=False), mode="overwrite"
        )


def lake_bytes(lake: Path) -> int:
    return sum(p.stat().st_size for p in lake.rglob("*.json"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic posts [200000]")
    parser.add_argument("--quick", action="store_true", help="50,000 posts")
    parser.add_argument("--skip-pandas", action="store_true", help="only the DuckDB engine")
    parser.add_argument("--phases", action="store_true", help="log the DuckDB engine's phases")
    parser.add_argument("--base", type=Path, help="keep the lake here and reuse it on the next run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate the two sides (with --incremental: incremental and full runs) N times; report"
        " each run and the median",
    )
    parser.add_argument(
        "--pandas-max-rss", type=float, default=12.0, help="stop pandas above this many GB of RSS [12]"
    )
    parser.add_argument(
        "--incremental",
        type=int,
        nargs="?",
        const=10_000,
        default=None,
        metavar="NEW",
        help="history run, NEW posts more [10000], incremental run, then --full-refresh",
    )
    parser.add_argument("--full-refresh", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "duckdb":
        return run_duckdb(args.workdir, args.phases, args.full_refresh)
    if args.child == "pandas":
        return run_pandas(args.workdir)
    rows = 50_000 if args.quick else args.rows
    base = args.base or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    marker = base / "lake" / "ROWS"
    try:
        t0 = time.perf_counter()
        if marker.exists() and marker.read_text() == str(rows):
            raw, how = lake_bytes(base / "lake"), "reused"
        else:
            shutil.rmtree(base / "lake", ignore_errors=True)
            raw = generate(base / "lake", rows)
            marker.write_text(str(rows))
            how = f"generated in {time.perf_counter() - t0:.1f} s"
        print(
            f"lake: {rows:,} posts, {raw / 1e6:,.0f} MB raw JSON, {how};"
            f" load average {os.getloadavg()[0]:.1f}"
        )
        if args.incremental is not None:
            return incremental(base, rows, args.incremental, args.phases, args.repeat)
        child = ["--child", "duckdb", "--workdir", str(base), *(["--phases"] if args.phases else [])]
        ratios: list[float] = []
        d_peak = 0
        for run in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"run {run} of {args.repeat}:")
            for stale in (base / "tables", base / "tmp", base / "pandas"):
                shutil.rmtree(stale, ignore_errors=True)
            d = measure(child)
            d_peak = max(d_peak, d.peak)
            print(
                f"duckdb: {d.seconds:7.2f} s wall {d.cpu:7.2f} s CPU  peak RSS {d.peak / 1e6:7.0f} MB"
                f" ({d.peak / raw:.2f} x raw JSON)"
            )
            if args.skip_pandas:
                continue
            limit = int(args.pandas_max_rss * 1e9)
            p = measure(["--child", "pandas", "--workdir", str(base / "pandas")], max_rss=limit)
            stopped = f"  STOPPED above {args.pandas_max_rss:g} GB RSS" if p.stopped else ""
            print(
                f"pandas: {p.seconds:7.2f} s wall {p.cpu:7.2f} s CPU  peak RSS {p.peak / 1e6:7.0f} MB"
                f" ({p.peak / raw:.2f} x raw JSON){stopped}"
            )
            bound = "at least " if p.stopped else ""
            ratios.append(p.seconds / d.seconds)
            print(
                f"ratio: duckdb is {bound}{ratios[-1]:.1f}x faster than pandas (wall),"
                f" {bound}{p.cpu / d.cpu:.1f}x less CPU; load average {os.getloadavg()[0]:.1f}"
            )
            if not p.stopped:
                same = table_rows(base) == table_rows(base / "pandas")
                print(f"same row counts in all 13 tables: {same}")
        if len(ratios) > 1:
            shown = ", ".join(f"{r:.1f}x" for r in ratios)
            print(f"median ratio over {len(ratios)} runs: {statistics.median(ratios):.1f}x ({shown})")
        print(f"memory target (peak < raw JSON): {'met' if d_peak < raw else 'MISSED'}")
    finally:
        if args.base is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    from pinpipe.cli import run_then_exit  # deltalake's threads can abort a normal interpreter exit

    run_then_exit(main)
