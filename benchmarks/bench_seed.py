"""Seeding synthetic rows: rows/s and peak memory, against writing the same rows to CSV in the same run.

Each measurement runs in its own child process so peak RSS is that work's alone:
- seed: ``seed_database`` into a fresh SQLite file (generate + insert, one transaction per chunk);
- baseline: the same generated rows written to three CSV files with the ``csv`` module;
- seed at a tenth of the rows, to show memory stays flat as rows grow.

    .venv/bin/python benchmarks/bench_seed.py            # 50,000 rows
    .venv/bin/python benchmarks/bench_seed.py --rows 1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pinpipe.locations import sqlite_url


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def work_seed(rows: int, directory: Path, chunk_rows: int) -> dict[str, float]:
    from pinpipe.source.database import open_source
    from pinpipe.source.synthetic import seed_database

    engine = open_source(sqlite_url(directory / "seed.db"))
    began, cpu = time.perf_counter(), time.process_time()
    seed_database(engine, rows, seed=1, chunk_rows=chunk_rows, progress=False)
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    engine.dispose()
    return {"seconds": took, "rows_s": rows / took, "cpu_rows_s": rows / cpu, "peak_rss_mb": _peak_rss_mb()}


def work_csv(rows: int, directory: Path, chunk_rows: int) -> dict[str, float]:
    from pinpipe.schema import FIELDS, KINDS
    from pinpipe.source.synthetic import SyntheticRows

    began, cpu = time.perf_counter(), time.process_time()
    handles = {kind: (directory / f"{kind}.csv").open("w", newline="", encoding="utf-8") for kind in KINDS}
    writers = {kind: csv.DictWriter(handles[kind], fieldnames=list(FIELDS[kind])) for kind in KINDS}
    for writer in writers.values():
        writer.writeheader()
    for row in SyntheticRows(1).rows(0, rows):
        for kind in KINDS:
            writers[kind].writerow(row[kind])
    for handle in handles.values():
        handle.close()
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"seconds": took, "rows_s": rows / took, "cpu_rows_s": rows / cpu, "peak_rss_mb": _peak_rss_mb()}


WORK = {"seed": work_seed, "csv": work_csv}


def _child(work: str, rows: int, chunk_rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench_seed_") as directory:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", work, "--rows", str(rows), "--chunk-rows", str(chunk_rows),
             "--dir", directory],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _line(label: str, result: dict[str, float]) -> str:
    return (
        f"{label}: {result['rows_s']:,.0f} rows/s ({result['seconds']:.1f}s; "
        f"{result['cpu_rows_s']:,.0f} rows per CPU-second), peak RSS {result['peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows per table (the target size: 1000000)")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="10,000 rows")
    parser.add_argument("--worker", choices=sorted(WORK), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORK[args.worker](args.rows, args.dir, args.chunk_rows)))
        return
    rows = 10_000 if args.quick else args.rows
    small = max(rows // 10, min(rows, args.chunk_rows))
    seed = _child("seed", rows, args.chunk_rows)
    baseline = _child("csv", rows, args.chunk_rows)
    seed_small = _child("seed", small, args.chunk_rows)
    print(_line(f"seed {rows:,} rows into SQLite", seed))
    print(_line("baseline, same rows to CSV (csv module)", baseline))
    print(
        f"ratio seed/CSV: {seed['rows_s'] / baseline['rows_s']:.2f}x rows/s, "
        f"{seed['cpu_rows_s'] / baseline['cpu_rows_s']:.2f}x per CPU-second"
    )
    growth = seed["peak_rss_mb"] / seed_small["peak_rss_mb"]
    print(f"memory flatness: peak RSS {seed_small['peak_rss_mb']:.0f} MB at {small:,} rows vs "
          f"{seed['peak_rss_mb']:.0f} MB at {rows:,} rows "
          f"(ratio {growth:.2f}x for {rows / small:.0f}x rows)")  # fmt: skip


if __name__ == "__main__":
    main()
