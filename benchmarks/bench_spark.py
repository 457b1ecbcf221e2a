"""The batch job on DuckDB against Spark local[*] on the same synthetic lake, in the same run.

Each engine runs in its own child process; the parent samples the RSS of the child's whole process tree
(Spark's JVM included) every 50 ms. Spark's time is split into start-up (SparkSession with the Delta and
Kafka jars) and work (lake -> cleaned -> ten outputs -> Delta tables). Both write Delta tables and the
output row counts are compared.

    .venv/bin/python benchmarks/bench_spark.py                 # 20,000 posts (a minute or two)
    .venv/bin/python benchmarks/bench_spark.py --rows 1000000
    .venv/bin/python benchmarks/bench_spark.py --rows 5000000 --driver-memory 4g

Needs the jars: ``bash infra/spark.sh install``. Run 1M+ under ``flock /tmp/pinpipe-heavy.lock``.

Results: benchmarks/RESULTS.md; where Spark's time goes: docs/spark.md "Performance".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import run_child
from bench_batch import generate

from pinpipe.locations import file_url


def measure(args: list[str]) -> tuple[float, int, dict[str, object]]:
    """Run this file as a child; (seconds, peak RSS of its process tree, the JSON it printed last)."""
    run = run_child([sys.executable, __file__, *args], capture=True, interval_s=0.05)
    return run.seconds, run.peak, json.loads(run.stdout.strip().splitlines()[-1])


def child(engine: str, workdir: Path, driver_memory: str) -> None:
    from pinpipe.config import load_settings
    from pinpipe.engines import get_engine
    from pinpipe.transform.queries import BatchOptions

    settings = load_settings(workdir=workdir, **{"engine.tables_url": file_url(workdir / engine)})
    report: dict[str, object] = {}
    if engine == "spark":
        from pinpipe.engines.spark import SparkEngine

        started = time.perf_counter()
        spark_engine = SparkEngine(settings, {"spark.driver.memory": driver_memory})
        spark_engine.spark  # noqa: B018 - start the session now, to time it apart
        report["startup_s"] = time.perf_counter() - started
        result = spark_engine.run_batch(BatchOptions())
    else:
        result = get_engine(engine, settings).run_batch(BatchOptions())
    report["work_s"] = result.seconds
    report["rows"] = {n: t.num_rows for n, t in result.outputs.items()}
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic posts [20000]")
    parser.add_argument("--quick", action="store_true", help="5,000 posts")
    parser.add_argument("--driver-memory", default="2g", help="Spark driver memory [2g]")
    parser.add_argument("--child", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir, args.driver_memory)
    rows = 5_000 if args.quick else args.rows
    base = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        t0 = time.perf_counter()
        raw = generate(base / "lake", rows)
        print(
            f"lake: {rows:,} posts, {raw / 1e6:,.1f} MB raw JSON,"
            f" generated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        d_s, d_rss, d_out = measure(["--child", "duckdb", "--workdir", str(base)])
        print(f"duckdb: {d_s:7.2f} s  peak RSS {d_rss / 1e6:7.0f} MB  (job {d_out['work_s']:.2f} s)")
        s_s, s_rss, s_out = measure(
            ["--child", "spark", "--workdir", str(base), "--driver-memory", args.driver_memory]
        )
        print(
            f"spark:  {s_s:7.2f} s  peak RSS {s_rss / 1e6:7.0f} MB  (start-up {s_out['startup_s']:.2f} s,"
            f" job {s_out['work_s']:.2f} s; process tree, JVM included)"
        )
        job_ratio = float(s_out["work_s"]) / float(d_out["work_s"])  # type: ignore[arg-type]
        print(
            f"ratio: spark/duckdb wall {s_s / d_s:.1f}x, job only {job_ratio:.1f}x,"
            f" memory {s_rss / d_rss:.1f}x; same output row counts: {s_out['rows'] == d_out['rows']}"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
