"""Direct append throughput of the embedded log, against a plain file with one fsync per batch.

Both sides write the same record bytes in the same batches; the baseline appends them to one file and
fsyncs it once per batch (the least a durable acknowledgement can cost), the log appends each batch in
one SQLite transaction (WAL, synchronous=FULL). It also times reading everything back with a reader.

    .venv/bin/python benchmarks/bench_log.py            # 100 batches of 500 (50,000 records)
    .venv/bin/python benchmarks/bench_log.py --quick    # 20 batches
    .venv/bin/python benchmarks/bench_log.py --batches 400 --idempotency
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from pinpipe.locations import embedded_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog

CATEGORIES = ["art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance"]


def make_values(count: int, seed: int = 1) -> list[bytes]:
    """Pin-like records (about 600 bytes of compact JSON each, like the real pinterest_data rows)."""
    rng = random.Random(seed)
    values = []
    for i in range(count):
        category = rng.choice(CATEGORIES)
        record = {
            "index": i,
            "unique_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "title": " ".join(rng.choice(["Easy", "DIY", "Ideas", "Home", "Best", "Art"]) for _ in range(8)),
            "description": "x" * rng.randint(100, 300),
            "poster_name": f"Poster {rng.randint(1, 9999)}",
            "follower_count": f"{rng.randint(1, 999)}k",
            "tag_list": ",".join(rng.choice(["Art", "Home Decor", "Craft", "Gift"]) for _ in range(5)),
            "is_image_or_video": "image",
            "image_src": f"https://i.pinimg.com/originals/{rng.getrandbits(64):016x}.jpg",
            "downloaded": 1,
            "save_location": f"Local save in /data/{category}",
            "category": category,
        }
        values.append(json.dumps(record, separators=(",", ":")).encode())
    return values


def bench_file(directory: Path, batches: list[list[bytes]]) -> float:
    started = time.perf_counter()
    with (directory / "baseline.jsonl").open("ab") as fh:
        for batch in batches:
            fh.write(b"".join(v + b"\n" for v in batch))
            fh.flush()
            os.fsync(fh.fileno())
    return time.perf_counter() - started


def bench_log(
    directory: Path, batches: list[list[bytes]], idempotency: bool, keyed: bool
) -> tuple[float, float, float]:
    log = EmbeddedLog(embedded_url(directory / "log"), partitions=3)
    log.create_topic("bench", 3)
    writer = log.writer()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for b, batch in enumerate(batches):
        writer.append(
            "bench",
            [
                OutgoingRecord(
                    v,
                    key=str(i).encode() if keyed else None,
                    idempotency_key=f"run-{b}#{i}" if idempotency else None,
                )
                for i, v in enumerate(batch)
            ],
        )
    append_s = time.perf_counter() - started
    append_cpu_s = time.process_time() - cpu_started
    reader = log.reader("bench", ["bench"])
    total = sum(len(batch) for batch in batches)
    started = time.perf_counter()
    read = 0
    while read < total:
        read += len(reader.poll(1000, 1.0))
    read_s = time.perf_counter() - started
    log.close()
    return append_s, append_cpu_s, read_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="20 batches")
    parser.add_argument("--idempotency", action="store_true", help="an idempotency key on every record")
    parser.add_argument("--keyed", action="store_true", help="a key on every record (key-hash partitioning)")
    args = parser.parse_args()
    batches_n = 20 if args.quick else args.batches
    values = make_values(batches_n * args.batch_size)
    batches = [values[i : i + args.batch_size] for i in range(0, len(values), args.batch_size)]
    total, size = len(values), sum(map(len, values))
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        file_s = bench_file(Path(tmp), batches)
        append_s, append_cpu_s, read_s = bench_log(Path(tmp), batches, args.idempotency, args.keyed)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{total:,} records of {size / total:.0f} bytes in {len(batches)} batches of {args.batch_size}")
    print(f"baseline  file + fsync per batch : {total / file_s:12,.0f} records/s")
    print(f"embedded  log append (1 txn/batch): {total / append_s:12,.0f} records/s")
    print(f"embedded  append per CPU second   : {total / append_cpu_s:12,.0f} records/s (load-independent)")
    print(f"embedded  log read (poll 1000)    : {total / read_s:12,.0f} records/s")
    print(f"ratio append / baseline           : {file_s / append_s:12.2f}")


if __name__ == "__main__":
    main()
