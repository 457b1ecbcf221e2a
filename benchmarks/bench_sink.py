"""Lake sink throughput, from the embedded log to a file lake, against writing the same bytes directly.

The log is filled first (not timed). The sink then reads it as its consumer group and writes the lake
(atomic puts: temp file, fsync, rename, directory fsync; one group commit per poll). The baseline
writes the very same objects (same files, same bytes) into another directory on the same disk with
open/write/fsync/close, the least a durable file write costs. Two more figures explain the gap: a plain
read of the log, and the same objects written with FileStore.put alone (temp file, fsync, rename,
directory fsync: two fsyncs per object, the price of atomic objects).

    .venv/bin/python benchmarks/bench_sink.py               # 60,000 records, flush size 500
    .venv/bin/python benchmarks/bench_sink.py --quick       # 15,000 records
    .venv/bin/python benchmarks/bench_sink.py --records 1000000 --flush-size 1000
    .venv/bin/python benchmarks/bench_sink.py --flush-size 1  # the original lake's layout
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log import make_values

from pinpipe.lake.sink import LakeSink, SinkOptions
from pinpipe.lake.store import FileStore
from pinpipe.locations import embedded_url, file_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.schema import DEFAULT_PREFIX, topic_names

TOPICS = list(topic_names(DEFAULT_PREFIX).values())


def fill(log: EmbeddedLog, records: int) -> None:
    values = make_values(max(1, records // len(TOPICS)))
    writer = log.writer()
    for topic in TOPICS:
        log.create_topic(topic, 3)
        for start in range(0, len(values), 1000):
            writer.append(
                topic,
                [OutgoingRecord(v, key=str(i).encode()) for i, v in enumerate(values[start : start + 1000])],
            )


def bench_read(log: EmbeddedLog) -> tuple[float, int]:
    reader = log.reader("bench-read", TOPICS)
    started = time.perf_counter()
    count = 0
    while batch := reader.poll(2000, 0.0):
        count += len(batch)
    reader.close()
    return time.perf_counter() - started, count


def bench_sink(log: EmbeddedLog, lake: Path, flush_size: int, group: str) -> tuple[float, int]:
    options = SinkOptions(flush_size=flush_size, poll_timeout_s=0.0)
    with LakeSink(log, FileStore(file_url(lake)), TOPICS, options, group=group) as sink:
        started = time.perf_counter()
        summary = sink.run(until_idle=True)
        elapsed = time.perf_counter() - started
    return elapsed, summary.records


def bench_direct(objects: list[tuple[str, bytes]], target: Path) -> float:
    for folder in {key.rsplit("/", 1)[0] for key, _ in objects}:
        (target / folder).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for key, data in objects:
        with open(target / key, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return time.perf_counter() - started


def bench_store_puts(objects: list[tuple[str, bytes]], target: Path) -> float:
    store = FileStore(file_url(target))
    started = time.perf_counter()
    for key, data in objects:
        store.put(key, data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000, help="records in all (split over 3 topics)")
    parser.add_argument("--flush-size", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="15,000 records")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp dir)")
    args = parser.parse_args()
    records = 15_000 if args.quick else args.records

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-sink-") as tmp:
        root = Path(tmp)
        log = EmbeddedLog(embedded_url(root / "log"))
        fill(log, records)
        best: dict[str, float] = {}
        for round_ in range(max(1, args.repeat)):  # interleaved, best of each: the disk is shared
            lake = root / f"lake{round_}"
            read_s, read_n = bench_read(log)
            cpu = time.process_time()
            sink_s, sunk = bench_sink(log, lake, args.flush_size, f"bench-sink-{round_}")
            sink_cpu = time.process_time() - cpu
            assert sunk == read_n, f"the sink wrote {sunk} of {read_n} records"
            times = {"read": read_s, "sink": sink_s, "sink_cpu": sink_cpu}
            objects = [(key, FileStore(file_url(lake)).get(key)) for key in FileStore(file_url(lake)).list()]
            times["direct"] = bench_direct(objects, root / f"direct{round_}")
            times["puts"] = bench_store_puts(objects, root / f"puts{round_}")
            for name, seconds in times.items():
                best[name] = min(best.get(name, seconds), seconds)
        read_s, sink_s, direct_s, puts_s = best["read"], best["sink"], best["direct"], best["puts"]
        log.close()

    size = sum(len(data) for _, data in objects)
    mb = size / 1e6
    print(
        f"records {sunk:,} ({read_n:,} in the log), objects {len(objects):,}, {mb:.1f} MB, "
        f"flush size {args.flush_size}, best of {max(1, args.repeat)}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"log read only : {read_s:7.2f} s  {read_n / read_s:12,.0f} records/s")
    print(f"lake sink     : {sink_s:7.2f} s  {sunk / sink_s:12,.0f} records/s  {mb / sink_s:8.1f} MB/s")
    print(f"direct write  : {direct_s:7.2f} s  {sunk / direct_s:12,.0f} records/s  {mb / direct_s:8.1f} MB/s")
    print(f"atomic puts   : {puts_s:7.2f} s  {sunk / puts_s:12,.0f} records/s  {mb / puts_s:8.1f} MB/s")
    print(f"ratio sink/direct throughput: {direct_s / sink_s:.2f}  (1.00 = as fast as the direct write)")
    print(
        f"sink CPU time : {best['sink_cpu']:7.2f} s  {sunk / best['sink_cpu']:12,.0f} records per CPU second"
    )
    print(f"ratio sink/atomic-puts throughput: {puts_s / sink_s:.2f}  (the sink's own overhead)")


if __name__ == "__main__":
    main()
