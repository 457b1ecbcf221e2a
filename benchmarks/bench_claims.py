"""What the idempotency claim costs a single-record keyed append to Kafka, against the path without it.

One KafkaLog writer in this process appends one record at a time, each with a new idempotency key (what
the API does for a one-record request), to a 3-partition topic, three ways interleaved round by round:

- **unkeyed**: no idempotency key (the floor: one acks=all produce);
- **index only**: a key checked against the in-process index, no claim (the path before claims: what one
  API process per topic set needs, and what lets two processes store one key twice);
- **claimed**: the key claimed in ``__pinpipe-claims.<topic>`` first (:mod:`pinpipe.log.kafka.claims`):
  one more acks=all produce and reading the claim back, then the write.

Printed: p50, p90, p99 and mean latency per way, and claimed / index-only (the claim's cost). The benchmark
starts and stops its own broker (infra/kafka.sh) unless ``--bootstrap`` is given. Results:
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_claims.py                  # 2,000 appends per way
    .venv/bin/python benchmarks/bench_claims.py --appends 10000 --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable

import orjson
from _common import percentile, scratch_dir, source_values

from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka.claims import KafkaClaims, Ticket
from tests.services import InfraService

ROUND = 50


class Unclaimed(KafkaClaims):
    """The writer's path without the claim: every key is left to the in-process index."""

    def acquire(self, topic: str, key: str, stored: Callable[[], bool]) -> Ticket | None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=2000, help="single-record appends per way")
    parser.add_argument("--bootstrap", help="an existing broker (default: start one with infra/kafka.sh)")
    args = parser.parse_args()

    tmp = scratch_dir("bench-claims-")
    broker = None if args.bootstrap else InfraService("kafka", tmp / "infra")
    bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:12]
    values = [orjson.dumps(v) for v in source_values(ROUND)]
    logs = {way: KafkaLog(f"kafka://{bootstrap}") for way in ("unkeyed", "index only", "claimed")}
    logs["index only"].claims = Unclaimed(logs["index only"])
    times: dict[str, list[float]] = {way: [] for way in logs}
    try:
        topic = f"bench-claims-{run}"
        logs["claimed"].create_topic(topic, 3)
        writers = {way: log.writer() for way, log in logs.items()}

        def append(way: str, i: int) -> float:
            key = None if way == "unkeyed" else f'["bench","{way}-{i}"]'
            record = OutgoingRecord(values[i % ROUND], None, None, key, "f")
            started = time.perf_counter()
            writers[way].append(topic, [record])
            return time.perf_counter() - started

        for way in writers:  # warm-up: connections, producer ids, the first index and claims reads
            for i in range(20):
                append(way, -1 - i)
        for start in range(0, args.appends, ROUND):
            for way in writers:
                times[way] += [append(way, i) for i in range(start, min(start + ROUND, args.appends))]
    finally:
        for log in logs.values():
            log.close()
        if broker is not None:
            broker.stop()

    load = os.getloadavg()[0]
    print(f"{args.appends} single-record appends per way, broker {bootstrap}, rounds of {ROUND} interleaved")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores (the machine is shared)")
    means = {}
    for way, samples in times.items():
        ms = [s * 1000 for s in samples]
        means[way] = sum(ms) / len(ms)
        p50, p90, p99 = (percentile(ms, q) for q in (0.5, 0.9, 0.99))
        print(f"{way:<11} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  p99 {p99:6.2f} ms  mean {means[way]:6.2f} ms")
    p50s = {way: percentile(times[way], 0.5) for way in times}
    print(
        f"claimed / index only: p50 {p50s['claimed'] / p50s['index only']:.2f}x, "
        f"mean {means['claimed'] / means['index only']:.2f}x "
        f"(+{means['claimed'] - means['index only']:.2f} ms per new key)"
    )


if __name__ == "__main__":
    main()
