"""Single-record produce from many concurrent clients into Kafka, against a direct producer sending the same
records one by one.

The load of ``bench_single_record.py`` (wrk, ``benchmarks/wrk_single_record.lua``: one geo record per POST,
a fresh ``Idempotency-Key`` each, ``--connections`` keep-alive connections) against
``pinpipe api serve --log kafka://...``, each request answered once its record is acknowledged by all
in-sync replicas. The baselines, measured in the same run on the same broker(s), are one confluent-kafka
producer in this process with the API writer's settings (idempotent, ``acks=all``; ``linger.ms`` 5, also
librdkafka's default) and one ``produce()`` per record of the same geo values:

- waiting senders (the target's baseline): ``--connections`` threads, each sending one record and waiting
  for its delivery report before sending the next: what as many single-record clients get from a plain
  producer without HTTP, and the API's load shape (each of its clients waits for its answer). Measured
  with ``linger.ms`` 5 and 0 (the API does not wait for the linger once a group is queued); the faster
  is the baseline;
- one flush: every record produced without waiting, then one ``flush()``: the producer's ceiling.

The waiting senders and the API are measured ``--rounds`` times, alternated (the senders first in the
first round, the API first in the second, and so on) on one broker and one API process: on a 2-core
machine 64 Python threads sharing a producer move by up to 60% from one run to the next, far more than the
API does. Each round's ratio is printed; the verdict is on the ratio of the medians.

``--brokers 1,3`` measures on one broker and on a three-broker cluster (topics of 3 partitions, 3
replicas, min ISR 2), each started by ``infra/kafka.sh``; ``--bootstrap`` uses a running one instead.

Target: the API's median reaches at least 40% of the waiting senders' median. Needs ``wrk``
(``bash infra/wrk.sh install``). Results: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_kafka_single_record.py                 # 15 s per side, 1 and 3 brokers
    .venv/bin/python benchmarks/bench_kafka_single_record.py --quick --brokers 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _common import geo, percentile, scratch_dir, start_api, stop_process
from bench_kafka import direct
from bench_single_record import server_stack, wrk

from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka.writer import PRODUCER
from pinpipe.schema import topic_name
from tests.services import InfraService


@dataclass(frozen=True)
class Run:
    records: int
    seconds: float
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def producer(bootstrap: str, linger_ms: int = 5) -> Any:
    """A producer with the API writer's settings, ``linger.ms`` apart."""
    from confluent_kafka import Producer

    return Producer({**PRODUCER, "bootstrap.servers": bootstrap, "linger.ms": linger_ms})


def one_flush(bootstrap: str, topic: str, count: int) -> Run:
    """``count`` geo records, one ``produce()`` each without waiting, then one ``flush()``."""
    values = [orjson.dumps(geo(i)) for i in range(count)]
    return Run(count, direct(bootstrap, topic, values, count, per_batch=False))


def waiting_senders(bootstrap: str, topic: str, senders: int, seconds: float, linger_ms: int) -> Run:
    """``senders`` threads sharing one producer for ``seconds``, each producing one geo record and
    waiting for its delivery report before the next; one more thread serves the reports."""
    sender = producer(bootstrap, linger_ms)
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(senders)]
    errors: list[Any] = []

    def serve() -> None:  # until the last sender has had its last report
        while any(thread.is_alive() for thread in senders_):
            sender.poll(0.05)

    def send(s: int) -> None:
        done = threading.Event()

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err)
            done.set()

        n = 0
        while not stop.is_set():
            value = orjson.dumps(geo(s * 100_000_000 + n))
            done.clear()
            began = time.perf_counter()
            sender.produce(topic, value=value, on_delivery=report)
            if not done.wait(60):
                errors.append("no delivery report in 60 s")
                return
            latencies[s].append(time.perf_counter() - began)
            n += 1

    senders_ = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    threads = [*senders_, threading.Thread(target=serve)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    sender.flush()
    if errors:
        raise SystemExit(f"direct producer failed: {errors[0]}")
    every = [x * 1000 for each in latencies for x in each]
    return Run(len(every), elapsed, percentile(every, 0.5), percentile(every, 0.99))


def measure(bootstrap: str, brokers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The three sides on one broker or cluster, the senders and the API alternated ``args.rounds`` times
    (the order of sides swapped every round, so neither always runs on the warmer broker); the API's
    records are counted in the topic."""
    prefix = uuid.uuid4().hex[:12]
    log = KafkaLog(f"kafka://{bootstrap}", partitions=3)
    direct_topic, api_topic = f"bench-{prefix}", topic_name(prefix, "geo")
    log.create_topic(direct_topic, 3)
    conns, seconds = args.connections, args.seconds
    tag = f"bench-{prefix}"
    rounds: list[dict[str, Any]] = []
    acked = 0
    api = None
    try:
        workdir = tmp / f"api-{prefix}"
        workdir.mkdir()
        api, url = start_api(["--log", f"kafka://{bootstrap}"], prefix, workdir)
        one_flush(bootstrap, direct_topic, 2_000)  # warm-up: connections, producer ids
        waiting_senders(bootstrap, direct_topic, conns, 1, 5)
        acked += wrk(f"{url}/topics/{api_topic}", conns, 2, f"{tag}-warm")["requests"]
        flushed = one_flush(bootstrap, direct_topic, args.records)
        api_url = f"{url}/topics/{api_topic}"
        for n in range(args.rounds):
            if n % 2:
                api_run = through_api(api_url, conns, seconds, f"{tag}-{n}")
            waited = {ms: waiting_senders(bootstrap, direct_topic, conns, seconds, ms) for ms in (5, 0)}
            if not n % 2:
                api_run = through_api(api_url, conns, seconds, f"{tag}-{n}")
            acked += api_run.records
            rounds.append({"wait": waited, "api": api_run})
    finally:
        stop_process(api)
    stored = sum(log.end_offsets(api_topic).values())
    log.close()
    if not acked <= stored <= acked + (args.rounds + 1) * conns:  # wrk stops with at most `conns` unanswered
        raise SystemExit(f"topic {api_topic} holds {stored} records, {acked} were acknowledged")
    return {"brokers": brokers, "bootstrap": bootstrap, "flush": flushed, "rounds": rounds}


def through_api(url: str, conns: int, seconds: float, tag: str) -> Run:
    """One timed wrk side against the API."""
    run = wrk(url, conns, seconds, tag)
    return Run(run["requests"], run["seconds"], run["p50_ms"], run["p99_ms"])


def faster(waited: dict[int, Run]) -> Run:
    """The faster of a round's waiting senders (``linger.ms`` 5 or 0): the target's baseline."""
    return max(waited.values(), key=lambda run: run.rate)


def report(result: dict[str, Any], conns: int) -> None:
    """Each round's sides and ratio, then the verdict on the ratio of the medians over the rounds."""
    flushed, rounds = result["flush"], result["rounds"]
    print(f"-- {result['brokers']} broker(s) at {result['bootstrap']}")
    for n, sides in enumerate(rounds, 1):
        rows = [
            *((f"direct, {conns} senders waiting, linger.ms={ms}", run) for ms, run in sides["wait"].items()),
            (f"pinpipe api serve, {conns} wrk clients", sides["api"]),
        ]
        for name, run in rows:
            tail = "" if run.p99_ms != run.p99_ms else f", p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms"
            print(f"round {n}: {name:<44} {run.rate:>9,.0f} records/s{tail}")
        ratio = sides["api"].rate / faster(sides["wait"]).rate
        print(f"round {n}: API / waiting senders (the faster): {ratio:.2f}")
    print(f"direct, produce each then one flush {flushed.rate:>17,.0f} records/s")
    api = statistics.median(sides["api"].rate for sides in rounds)
    waited = statistics.median(faster(sides["wait"]).rate for sides in rounds)
    ratio = api / waited
    verdict = "met" if ratio >= 0.40 else "MISSED"
    print(f"medians of {len(rounds)} rounds: API {api:,.0f}, the faster senders {waited:,.0f} records/s")
    print(f"API / waiting senders, medians: {ratio:.2f} (target >= 0.40: {verdict})")
    print(f"API / one flush: {api / flushed.rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per timed side")
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients and senders")
    parser.add_argument("--records", type=int, default=50_000, help="records of the one-flush baseline")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the senders and the API, alternated")
    parser.add_argument("--brokers", default="1,3", help="broker counts to start: 1, 3 or 1,3")
    parser.add_argument("--bootstrap", help="an existing broker or cluster instead of starting them")
    parser.add_argument("--quick", action="store_true", help="4 s per side, 10,000 records, one round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.records, args.rounds = 4.0, 10_000, 1
    tmp = scratch_dir("bench-kafka-single-")
    load_before = os.getloadavg()
    results = []
    counts = [0] if args.bootstrap else [int(b) for b in args.brokers.split(",")]
    for brokers in counts:
        infra = None
        if not args.bootstrap:
            start_args = ("--brokers", str(brokers)) if brokers > 1 else ()
            infra = InfraService("kafka", tmp / f"infra-{brokers}", start_args=start_args)
        try:
            bootstrap = args.bootstrap or infra.start()  # type: ignore[union-attr]
            results.append(measure(bootstrap, brokers or len(bootstrap.split(",")), args, tmp))
        finally:
            if infra is not None:
                infra.stop()
    load_after = os.getloadavg()
    print(f"server: uvicorn, {server_stack()}; producers: idempotent, acks=all")
    print(
        f"{args.connections} connections, one geo record per request, a fresh Idempotency-Key each, "
        f"{args.seconds:g} s per timed side, {args.rounds} round(s); one flush: {args.records:,} records"
    )
    for result in results:
        report(result, args.connections)
    print(
        f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}, {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
