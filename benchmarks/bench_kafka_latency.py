"""End-to-end latency on Kafka: API acknowledgement -> lake object, and API acknowledgement -> Delta row.

Every stage runs as its own process, as users run them (``pinpipe api serve``, ``pinpipe sink run``,
``pinpipe stream run``), first on the embedded log (the baseline), then on a Kafka broker, each on a
fresh workdir and prefix. For every rate (records/s, sent every 0.1 s in one request) for ``--seconds``:

- **lake**: pins POSTed to ``/topics/<prefix>.pin`` (REST proxy v2); latency from the reply (which gives
  each record's partition and offset) until the lake object holding that offset exists (the directory
  is scanned every 20 ms). Once with ``--flush-size 1`` and once with ``--flush-size N`` plus a rotate
  interval and idle flush (objects cut by time, written once the partition is idle).
- **delta**: pins and their matching geo events PUT to ``/streams/streaming-<prefix>-pin|geo/records``
  (PutRecords); latency from the reply (shard and sequence number) until the row with that
  ``(_partition, _offset)`` is in the stream Delta table (checked on every new table version). The rate
  counts pins, so twice as many rows are sent (``sent`` and ``sent/s`` count rows).

Printed: p50/p99 per backend, path and rate, and the ratio Kafka / embedded of each; also the raw Kafka
produce -> consume latency (a plain confluent-kafka producer and consumer in this process) as the floor.
The benchmark starts and stops its own broker (infra/kafka.sh) unless ``--bootstrap`` is given.

    .venv/bin/python benchmarks/bench_kafka_latency.py                    # 100 and 500 records/s, 5 s each
    .venv/bin/python benchmarks/bench_kafka_latency.py --seconds 60 --rates 100,500,1000
    .venv/bin/python benchmarks/bench_kafka_latency.py --bootstrap 127.0.0.1:9092 --only kafka
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import (
    DeltaWatcher,
    LakeWatcher,
    geo,
    paced,
    percentile,
    scratch_dir,
    source_values,
    start_api,
    start_pinpipe,
    stop_process,
    wait_seen,
)

from pinpipe import tables
from pinpipe.config import load_settings
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import stream_name, topic_name
from tests.services import InfraService

CONTENT_TYPE = "application/vnd.kafka.json.v2+json"
WARM_UP_TIMEOUT_S = 180.0


@dataclass
class Result:
    backend: str
    path: str
    rate: int
    sent_per_s: float
    sent: int
    visible: int
    p50: float
    p99: float


def measure(
    backend: str, path: str, rates: Sequence[int], seconds: float, send: Any, seen: dict[Hashable, float]
) -> list[Result]:
    """Warm up (the stage starting up), then each rate: send, wait until all visible, latencies."""
    if not wait_seen(seen, send(0, 3), WARM_UP_TIMEOUT_S):
        raise SystemExit(f"{backend} {path}: warm-up records not visible in {WARM_UP_TIMEOUT_S:.0f} s")
    results = []
    for rate in rates:
        acked, took = paced(rate, seconds, send)
        wait_seen(seen, acked, timeout=60)
        lat = [seen[i] - t for i, t in acked.items() if i in seen]
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        results.append(Result(backend, path, rate, len(acked) / took, len(acked), len(lat), p50, p99))
    return results


def run_backend(backend: str, log_args: list[str], root: Path, args: argparse.Namespace) -> list[Result]:
    """The three measurements on one log: lake at flush size 1, lake with rotation, Delta."""
    workdir = root / backend
    workdir.mkdir()
    prefix = uuid.uuid4().hex[:12]
    common = [*log_args, "--workdir", str(workdir), "--prefix", prefix]
    pool = source_values(1000)
    inds = itertools.count(1_000_000)
    api, url = start_api(log_args, prefix, workdir)
    http = httpx.Client(base_url=url, timeout=60)
    stage = None
    results: list[Result] = []
    try:
        topic = topic_name(prefix, "pin")

        def post(first: int, n: int) -> list[Hashable]:
            body = {"records": [{"value": pool[(first + i) % len(pool)]} for i in range(n)]}
            reply = http.post(
                f"/topics/{topic}", content=orjson.dumps(body), headers={"Content-Type": CONTENT_TYPE}
            )
            if reply.status_code != 200:
                raise SystemExit(f"API answered {reply.status_code}: {reply.text[:300]}")
            offsets = reply.json()["offsets"]
            if failed := [o for o in offsets if o.get("error_code")]:
                raise SystemExit(f"API refused records: {failed[:2]}")
            return [(o["partition"], o["offset"]) for o in offsets]

        lake = LakeWatcher(workdir / "lake", topic).start()
        rotated = ["--flush-size", str(args.flush_size), "--rotate-interval", str(args.rotate)]
        sinks = [
            ("lake, flush 1", ["--flush-size", "1"]),
            (
                f"lake, flush {args.flush_size} rotate {args.rotate:g}s",
                [*rotated, "--idle-flush", str(args.idle_flush)],
            ),
        ]
        for path, options in sinks:
            stage = start_pinpipe(["sink", "run", *common, "-q", *options], workdir, "sink")
            results += measure(backend, path, args.rates, args.seconds, post, lake.seen)
            stop_process(stage)
        lake.stop()

        settings = load_settings(workdir=workdir, prefix=prefix)
        seen: dict[Hashable, float] = {}
        watchers = [
            DeltaWatcher(
                tables.stream_table(settings, kind), ["_partition", "_offset"], tag=(kind,), seen=seen
            ).start()
            for kind in ("pin", "geo")
        ]

        def put(kind: str, records: list[dict[str, Any]]) -> list[Hashable]:
            stream = stream_name(prefix, kind)  # type: ignore[arg-type]
            reply = http.put(f"/streams/{stream}/records", json={"StreamName": stream, "Records": records})
            if reply.status_code != 200 or reply.json()["FailedRecordCount"]:
                raise SystemExit(f"API answered {reply.status_code}: {reply.text[:300]}")
            return [
                (kind, int(r["ShardId"].rsplit("-", 1)[1]), int(r["SequenceNumber"]))
                for r in reply.json()["Records"]
            ]

        def put_pairs(first: int, n: int) -> list[Hashable]:
            batch = [next(inds) for _ in range(n)]
            pins = [{"Data": {**pool[i % len(pool)], "ind": i}, "PartitionKey": str(i)} for i in batch]
            geos = [{"Data": geo(i), "PartitionKey": str(i)} for i in batch]
            return put("pin", pins) + put("geo", geos)

        stage = start_pinpipe(
            ["stream", "run", *common, "--max-wait", str(args.max_wait), "--quiet"], workdir, "stream"
        )
        results += measure(backend, "delta (pin+geo rows)", args.rates, args.seconds, put_pairs, seen)
        for watcher in watchers:
            watcher.stop()
    finally:
        stop_process(stage)
        http.close()
        stop_process(api)
    return results


def raw_kafka(bootstrap: str, rates: Sequence[int], seconds: float) -> list[Result]:
    """produce() -> consumer poll latency of a plain idempotent producer (acks=all) and consumer."""
    from confluent_kafka import Consumer, Producer

    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    admin = KafkaLog(f"kafka://{bootstrap}", partitions=3)
    admin.create_topic(topic, 3)
    admin.close()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen: dict[Hashable, float] = {}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            msg = consumer.poll(0.05)
            key = msg.key() if msg is not None and msg.error() is None else None
            if key is not None:
                seen[int(key)] = time.time()

    threading.Thread(target=consume, daemon=True).start()
    sent_at: dict[Hashable, float] = {}
    ids = itertools.count()

    def send(_first: int, n: int) -> Sequence[Hashable]:
        batch = [next(ids) for _ in range(n)]
        for i in batch:
            sent_at[i] = time.time()
            producer.produce(topic, key=str(i).encode(), value=b'{"bench": true}')
        producer.poll(0)
        return batch

    results = []
    try:
        if not wait_seen(seen, send(0, 3), 60):
            raise SystemExit("raw Kafka: warm-up records not consumed in 60 s")
        for rate in rates:
            acked, took = paced(rate, seconds, send)
            producer.flush(30)
            wait_seen(seen, acked, 60)
            lat = [seen[i] - sent_at[i] for i in acked if i in seen]
            p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
            results.append(
                Result(
                    "kafka", "raw produce -> consume", rate, len(acked) / took, len(acked), len(lat), p50, p99
                )
            )
    finally:
        stop.set()
        time.sleep(0.1)
        consumer.close()
    return results


def report(results: list[Result], bootstrap: str | None) -> None:
    load = os.getloadavg()[0]
    print(f"broker {bootstrap}; load average (1 min) {load:.1f} on {os.cpu_count()} cores (shared)")
    print(f"{'backend':<9} {'path':<28} {'rate':>5} {'sent/s':>7} {'sent':>6} {'visible':>7} "
          f"{'p50 s':>7} {'p99 s':>7}")  # fmt: skip
    for r in results:
        print(
            f"{r.backend:<9} {r.path:<28} {r.rate:>5} {r.sent_per_s:>7.0f} {r.sent:>6} {r.visible:>7} "
            f"{r.p50:>7.3f} {r.p99:>7.3f}"
        )
    base = {(r.path, r.rate): r for r in results if r.backend == "embedded"}
    raw = {r.rate: r for r in results if r.path.startswith("raw")}
    print("ratios (Kafka / embedded baseline; Kafka / raw Kafka produce -> consume):")
    for r in results:
        if r.backend != "kafka" or r.path.startswith("raw"):
            continue
        parts = []
        if (b := base.get((r.path, r.rate))) is not None:
            parts.append(f"vs embedded p50 x{r.p50 / b.p50:.2f} p99 x{r.p99 / b.p99:.2f}")
        if (w := raw.get(r.rate)) is not None:
            parts.append(f"vs raw Kafka p50 x{r.p50 / w.p50:.1f} p99 x{r.p99 / w.p99:.1f}")
        print(f"  {r.path:<28} {r.rate:>5}/s  " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500", help="comma-separated records/s [100,500]")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per rate [5]")
    parser.add_argument("--flush-size", type=int, default=500, help="the larger sink flush size [500]")
    parser.add_argument("--rotate", type=float, default=1.0, help="sink rotate interval with it, s [1]")
    parser.add_argument("--idle-flush", type=float, default=0.5, help="sink idle flush with it, s [0.5]")
    parser.add_argument(
        "--max-wait", type=float, default=0.2, help="stream processor micro-batch wait, s [0.2]"
    )
    parser.add_argument("--only", choices=["kafka", "embedded"], help="one backend (no ratio to the other)")
    parser.add_argument("--bootstrap", help="an existing broker (default: start one with infra/kafka.sh)")
    args = parser.parse_args()
    args.rates = [int(r) for r in args.rates.split(",")]
    root = scratch_dir("bench-kafka-latency-")
    broker = None
    bootstrap = args.bootstrap
    results: list[Result] = []
    try:
        if args.only != "embedded":
            if bootstrap is None:
                broker = InfraService("kafka", root / "infra")
                bootstrap = broker.start()
            results += raw_kafka(bootstrap, args.rates, args.seconds)
        if args.only != "kafka":
            results += run_backend("embedded", [], root, args)
        if args.only != "embedded":
            results += run_backend("kafka", ["--log", f"kafka://{bootstrap}"], root, args)
    finally:
        if broker is not None:
            broker.stop()
    report(results, bootstrap)


if __name__ == "__main__":
    main()
