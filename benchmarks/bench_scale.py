"""Scaling out on a three-broker Kafka cluster: 1, 2 and 4 API replicas, and 1, 2 and 4 lake sink workers,
each against one process measured in the same run.

- API replicas: ``pinpipe api serve`` processes on the cluster, fed REST-proxy v2 requests of ``--batch``
  pin records by ``--clients`` HTTP client threads of this process (each thread talks to one replica,
  threads spread evenly). Timed from the first request to the last acknowledgement; CPU is the replicas'
  own (user + system, from /proc) over that window. The topic must end up with exactly the records sent.
- Sink workers: ``pinpipe sink run`` processes in one group on three topics of 3 partitions, filled first
  (not timed) with ``--sink-records`` records each, an exact number of objects per partition. Timed from
  starting the workers until the group's committed offsets reach the end of every partition; CPU is the
  workers' whole lives, start-up included (one worker's start-up on empty topics is measured too).

Each row gives records per second, CPU milliseconds per 1,000 records and records per CPU-second, with
ratios to the one-process row. On a machine with few cores the wall-clock gain is capped by the cores
(three brokers, the replicas or workers and this process's clients share them): records per CPU-second
shows whether more processes cost more CPU per record; wall-clock records/s shows what a bigger machine
could gain only when cores are free.

    .venv/bin/python benchmarks/bench_scale.py                       # ~1-2 minutes
    .venv/bin/python benchmarks/bench_scale.py --api-records 200000 --sink-records 200000
    .venv/bin/python benchmarks/bench_scale.py --bootstrap H1:P1,H2:P2,H3:P3 --replicas 1,2,4,8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from _common import cpu_seconds, scratch_dir, source_values, start_api, start_pinpipe, stop_process

from pinpipe.lake.sink import GROUP
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import topic_names
from tests.services import InfraService

CONTENT_TYPE = "application/vnd.kafka.json.v2+json"
PARTITIONS = 3


@dataclass(frozen=True)
class Run:
    processes: int
    records: int
    seconds: float
    cpu: float


def post_all(urls: list[str], topic: str, bodies: list[bytes], clients: int) -> int:
    """Send every body once from ``clients`` threads (thread i to replica i mod n); records acknowledged."""
    errors: list[str] = []
    acked = [0] * clients

    def send(i: int) -> None:
        with httpx.Client(base_url=urls[i % len(urls)], timeout=120) as http:
            for body in bodies[i::clients]:
                response = http.post(f"/topics/{topic}", content=body, headers={"Content-Type": CONTENT_TYPE})
                offsets = response.json().get("offsets", []) if response.status_code == 200 else []
                if response.status_code != 200 or any(o.get("error_code") for o in offsets):
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return
                acked[i] += len(offsets)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"the API refused requests: {errors[:2]}")
    return sum(acked)


def bench_replicas(bootstrap: str, tmp: Path, replicas: int, bodies: list[bytes], clients: int) -> Run:
    prefix = uuid.uuid4().hex[:12]
    topic = f"{prefix}.pin"
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for i in range(replicas):
            workdir = tmp / f"api-{prefix}-{i}"
            workdir.mkdir()
            started.append(start_api(["--log", f"kafka://{bootstrap}"], prefix, workdir))
        urls = [url for _, url in started]
        warm = post_all(urls, topic, bodies[: len(urls)], len(urls))  # connections, producers, index
        pids = [proc.pid for proc, _ in started]
        cpu_before = cpu_seconds(pids)
        began = time.perf_counter()
        acked = post_all(urls, topic, bodies, clients)
        seconds = time.perf_counter() - began
        cpu = cpu_seconds(pids) - cpu_before
        with KafkaLog(f"kafka://{bootstrap}") as log:
            stored = sum(log.end_offsets(topic).values())
        if stored != acked + warm:
            raise SystemExit(f"{topic} holds {stored} records, {acked + warm} were acknowledged")
        return Run(replicas, acked, seconds, cpu)
    finally:
        for proc, _ in started:
            stop_process(proc)


def fill(bootstrap: str, topics: list[str], values: list[bytes]) -> None:
    """Every value into every topic, round-robin over the partitions (an exact count per partition)."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20}
    )
    for topic in topics:
        for i, value in enumerate(values):
            while True:
                try:
                    producer.produce(topic, value=value, partition=i % PARTITIONS)
                    break
                except BufferError:
                    producer.poll(0.05)
    if producer.flush(120) != 0:
        raise SystemExit("filling the topics did not finish")


def wait_committed(log: KafkaLog, topics: list[str], alive: Callable[[], bool], timeout: float) -> None:
    ends = {topic: log.end_offsets(topic) for topic in topics}
    deadline = time.monotonic() + timeout
    while any(log.committed(GROUP, topic) != ends[topic] for topic in topics):
        if not alive():
            raise SystemExit("a sink worker exited before the end")
        if time.monotonic() > deadline:
            raise SystemExit(f"the sink workers did not finish in {timeout:.0f} s")
        time.sleep(0.1)


def bench_workers(
    bootstrap: str, tmp: Path, workers: int, values: list[bytes], flush: int, until_idle: bool = False
) -> Run:
    prefix = uuid.uuid4().hex[:12]
    topics = list(topic_names(prefix).values())
    with KafkaLog(f"kafka://{bootstrap}") as log:
        for topic in topics:
            log.create_topic(topic, PARTITIONS)
        fill(bootstrap, topics, values)
        lake = tmp / f"lake-{prefix}"
        args = [
            "sink",
            "run",
            "--log",
            f"kafka://{bootstrap}",
            "--lake",
            f"file://{lake}",
            "--prefix",
            prefix,
        ]
        args += ["-q", "--flush-size", str(flush), *(["--until-idle"] if until_idle else [])]  # fmt: skip
        before = os.times()
        began = time.perf_counter()
        procs = [start_pinpipe(args, tmp, f"sink-{prefix}-{i}") for i in range(workers)]
        try:
            if until_idle:  # each exits once caught up: CPU from the reaped children
                for proc in procs:
                    proc.wait(120)
                seconds = time.perf_counter() - began
                after = os.times()
                cpu = sum(after[2:4]) - sum(before[2:4])  # the children's user + system
            else:
                wait_committed(log, topics, lambda: all(p.poll() is None for p in procs), 600)
                seconds = time.perf_counter() - began
                cpu = cpu_seconds([p.pid for p in procs])
        finally:
            for proc in procs:
                stop_process(proc)
    return Run(workers, len(values) * len(topics), seconds, cpu)


def show(title: str, runs: list[Run]) -> None:
    print(title)
    print(f"  {'procs':>5} {'records':>9} {'wall s':>7} {'records/s':>10} {'x one':>6} "
          f"{'CPU s':>7} {'CPU ms/1k':>9} {'rec/CPU-s':>10} {'x one':>6}")  # fmt: skip
    one = runs[0]
    for run in runs:
        rate, per_cpu = run.records / run.seconds, run.records / run.cpu
        print(
            f"  {run.processes:>5} {run.records:>9,} {run.seconds:>7.2f} {rate:>10,.0f} "
            f"{rate / (one.records / one.seconds):>6.2f} {run.cpu:>7.2f} {1e6 * run.cpu / run.records:>9.1f} "
            f"{per_cpu:>10,.0f} {per_cpu / (one.records / one.cpu):>6.2f}"
        )


def counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--replicas", type=counts, default=[1, 2, 4], help="API replica counts [1,2,4]")
    parser.add_argument("--workers", type=counts, default=[1, 2, 4], help="sink worker counts [1,2,4]")
    parser.add_argument("--api-records", type=int, default=60_000, help="records per API run [60,000]")
    parser.add_argument("--batch", type=int, default=100, help="records per API request [100]")
    parser.add_argument("--clients", type=int, default=8, help="HTTP client threads [8]")
    parser.add_argument(
        "--sink-records", type=int, default=100_000, help="records per topic per sink run [100,000]"
    )
    parser.add_argument("--flush-size", type=int, default=500, help="records per lake object [500]")
    parser.add_argument("--bootstrap", help="an existing cluster (default: start three brokers from infra/)")
    args = parser.parse_args()
    per_object = PARTITIONS * args.flush_size
    sink_records = max(per_object, args.sink_records // per_object * per_object)

    tmp = scratch_dir("bench-scale-")
    cluster = None if args.bootstrap else InfraService("kafka", tmp / "infra", start_args=("--brokers", "3"))
    if cluster is not None:
        (tmp / "infra").mkdir()
    began = time.perf_counter()
    bootstrap = args.bootstrap or cluster.start()  # type: ignore[union-attr]
    cluster_s = time.perf_counter() - began
    try:
        with KafkaLog(f"kafka://{bootstrap}") as log:
            brokers = len(log.brokers())
        pins = source_values(max(args.api_records, sink_records))
        bodies = [
            orjson.dumps({"records": [{"value": v} for v in pins[i : i + args.batch]]})
            for i in range(0, args.api_records, args.batch)
        ]
        api_runs = [bench_replicas(bootstrap, tmp, n, bodies, args.clients) for n in args.replicas]
        values = [orjson.dumps(v) for v in pins[:sink_records]]
        startup = bench_workers(bootstrap, tmp, 1, [], args.flush_size, until_idle=True)
        sink_runs = [bench_workers(bootstrap, tmp, n, values, args.flush_size) for n in args.workers]
    finally:
        if cluster is not None:
            cluster.stop()

    load = os.getloadavg()
    started = f" (started in {cluster_s:.1f} s)" if cluster is not None else ""
    print(f"cluster: {brokers} brokers at {bootstrap}{started}, topics of {PARTITIONS} partitions, "
          "3 replicas, min.insync.replicas 2, acks=all")  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          "(1/5/15 min) at the end; the brokers, the processes measured and the clients share the cores, so "
          "wall-clock gains are capped by them: compare records per CPU-second")  # fmt: skip
    show(
        f"API replicas: {args.api_records:,} pin records in requests of {args.batch}, {args.clients} client "
        "threads; CPU of the replicas while sending",
        api_runs,
    )
    show(
        f"sink workers: 3 topics x {sink_records:,} pin records, flush size {args.flush_size}; CPU of the "
        f"workers' whole lives (one worker's start-up on empty topics: {startup.seconds:.2f} s wall, "
        f"{startup.cpu:.2f} CPU s)",
        sink_runs,
    )


if __name__ == "__main__":
    main()
