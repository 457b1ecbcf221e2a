"""``pinpipe batch run --engine spark`` against a plain PySpark job of the same definitions, in the same run,
with DuckDB for reference.

On one synthetic lake: ``pinpipe batch run --engine duckdb --export`` once, then ``--repeat`` alternating
runs of the plain DataFrame job (``spark_plain.py``: ``spark.read.json``, DataFrame cleaning,
``dropDuplicates``, window functions, ten CSVs) and of ``pinpipe batch run --engine spark --export`` (exact
typing and quarantine, 14 Delta tables, ten CSVs). Each run is a child process whose whole tree (the JVM
included) is sampled for peak RSS; both Spark sides start the same session (``spark_session.session_conf``,
the same driver memory). Prints wall times (start-up included), the median ratio ours / plain, and checks
that the three runs' ten CSVs hold the same rows.

    .venv/bin/python benchmarks/bench_spark.py --rows 100000            # three runs of each, ~5 minutes
    .venv/bin/python benchmarks/bench_spark.py --rows 1000000 --repeat 3
    .venv/bin/python benchmarks/bench_spark.py --rows 100000 --repeat 1 --event-log /tmp/events
    .venv/bin/python benchmarks/bench_spark.py --rows 1000000 --base /tmp/spark-1m   # the lake kept, reused

``--event-log DIR`` turns on Spark's event log for the Spark runs and prints where each one's time went
(``spark_stages.py``: jobs grouped by step, wall and task seconds, time with no job running).

Target: ours / plain <= 1.2 (median wall) at 100,000 and 1,000,000 posts. Needs the jars (``bash
infra/spark.sh install``). Run it under ``flock /tmp/pinpipe-heavy.lock`` on a shared machine.
Results: benchmarks/RESULTS.md; the stage breakdown: docs/spark.md "Performance".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import ChildRun, run_child
from bench_batch import PREFIX, generate, lake_bytes

from pinpipe.config import Settings, load_settings
from pinpipe.locations import file_url
from pinpipe.transform.queries import OUTPUTS


def settings_for(workdir: Path, tables: Path, driver_memory: str, event_log: Path | None) -> Settings:
    conf = {"spark.driver.memory": driver_memory}
    if event_log is not None:
        from spark_stages import EVENT_LOG

        conf |= {**EVENT_LOG, "spark.eventLog.dir": file_url(event_log)}
    return load_settings(
        workdir=workdir,
        **{"engine.tables_url": file_url(tables), "engine.spark_conf": conf},
    )


def child(side: str, workdir: Path, out: Path, driver_memory: str, event_log: Path | None) -> None:
    """One run: ``plain``, ``spark`` or ``duckdb``; prints a JSON line (start-up and job seconds)."""
    from pinpipe.cli import main, run_then_exit

    os.environ["PINPIPE_CONFIG"] = str(workdir / "no-such.toml")
    settings = settings_for(workdir, out / "tables", driver_memory, event_log)
    os.environ["PINPIPE_ENGINE__TABLES_URL"] = settings.tables_url
    report: dict[str, float] = {}

    def run() -> None:
        started = time.perf_counter()
        if side != "duckdb":
            from pinpipe.engines.spark_session import spark_session

            spark = spark_session(settings)  # the CLI below finds it active: the same session settings
            report["startup_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if side == "plain":
            import spark_plain

            spark_plain.run(spark, workdir / "lake", PREFIX, out / "csv")
        else:
            args = ["batch", "run", "--engine", side, "--workdir", str(workdir), "--quiet"]
            main([*args, "--export", str(out / "csv")])
        report["job_s"] = time.perf_counter() - started
        print(json.dumps(report), flush=True)

    run_then_exit(run)


def measure(
    side: str, base: Path, run: int, args: argparse.Namespace
) -> tuple[ChildRun, dict[str, float], Path]:
    out = base / f"{side}-{run}"
    events = None
    if args.event_log is not None and side != "duckdb":
        events = args.event_log / f"{side}-{run}"
        events.mkdir(parents=True, exist_ok=True)
    extra = ["--event-log", str(events)] if events else []
    argv = [sys.executable, __file__, "--child", side, "--workdir", str(base), "--out", str(out)]
    result = run_child([*argv, "--driver-memory", args.driver_memory, *extra], capture=True, interval_s=0.05)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if events is not None:
        from spark_stages import only_log
        from spark_stages import report as stages

        print(f"  stages of {side} run {run}:\n" + stages(only_log(events)))
    return result, report, out / "csv"


def csv_rows(folder: Path) -> dict[str, list[list[str]]]:
    rows = {}
    for name in OUTPUTS:
        with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
            rows[name] = list(csv.reader(handle))
    return rows


def differences(ours: Path, other: Path) -> list[str]:
    """Outputs whose CSV rows differ (header, values and order; quoting may differ)."""
    a, b = csv_rows(ours), csv_rows(other)
    return [name for name in OUTPUTS if a[name] != b[name]]


def line(side: str, run: ChildRun, report: dict[str, float]) -> str:
    """Wall, start-up, job and the peak RSS of the process tree (the child's CPU time is left out: the
    JVM it starts is not its waited-for child, so it would not count)."""
    start = f"start-up {report['startup_s']:.1f} s, " if "startup_s" in report else ""
    return (
        f"{side:<6} {run.seconds:7.1f} s wall  ({start}job {report['job_s']:.1f} s)"
        f"  peak RSS {run.peak / 1e6:6.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic posts [100000]")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each Spark side [3]")
    parser.add_argument("--driver-memory", default="2g", help="Spark driver memory, both sides [2g]")
    parser.add_argument(
        "--event-log", type=Path, help="keep Spark event logs here; print the stage breakdown"
    )
    parser.add_argument("--base", type=Path, help="keep the lake here and reuse it on the next run")
    parser.add_argument("--child", choices=["duckdb", "spark", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir, args.out, args.driver_memory, args.event_log)
    base = args.base or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    marker = base / "lake" / "ROWS"
    try:
        t0 = time.perf_counter()
        if marker.exists() and marker.read_text() == str(args.rows):
            raw, how = lake_bytes(base / "lake"), "reused"
        else:
            shutil.rmtree(base / "lake", ignore_errors=True)
            raw = generate(base / "lake", args.rows)
            marker.write_text(str(args.rows))
            how = f"generated in {time.perf_counter() - t0:.1f} s"
        print(f"lake: {args.rows:,} posts, {raw / 1e6:,.1f} MB raw JSON, {how}")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        duck_run, duck, duck_csv = measure("duckdb", base, 0, args)
        print(line("duckdb", duck_run, duck))
        walls: dict[str, list[float]] = {"plain": [], "spark": []}
        exports: list[Path] = []
        for run in range(args.repeat):
            for side in ("plain", "spark") if run % 2 == 0 else ("spark", "plain"):
                result, report, export = measure(side, base, run, args)
                walls[side].append(result.seconds)
                exports.append(export)
                print(line(side, result, report))
                shutil.rmtree(export.parent / "tables", ignore_errors=True)
        plain, ours = statistics.median(walls["plain"]), statistics.median(walls["spark"])
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print(
            f"median wall: spark {ours:.1f} s, plain {plain:.1f} s -> ours/plain {ours / plain:.2f}"
            f" (target <= 1.2: {'met' if ours / plain <= 1.2 else 'MISSED'});"
            f" ours/duckdb {ours / duck_run.seconds:.1f}x"
        )
        unequal = sorted({n for e in exports for n in differences(duck_csv, e)})
        print(
            f"ten CSVs of every run equal DuckDB's: {not unequal}"
            + (f" (differ: {unequal})" if unequal else "")
        )
        if unequal:
            raise SystemExit(1)
    finally:
        if args.base is None:
            shutil.rmtree(base, ignore_errors=True)
        else:  # the lake stays for the next run; the runs' outputs go
            for stale in base.iterdir():
                if stale.name != "lake":
                    shutil.rmtree(stale, ignore_errors=True)


if __name__ == "__main__":
    main()
