"""Ingestion throughput through the HTTP API into Kafka, against a direct confluent-kafka producer.

Both sides send the same pin records (synthetic rows, compact JSON) to a 3-partition topic on the same
broker with the same producer guarantees (idempotent, acks=all):

- baseline: one confluent-kafka Producer in this process, ``produce()`` every record, then ``flush()``;
  also the same producer waiting for each 500-record batch before sending the next (what a synchronous
  caller of a plain producer gets);
- API: ``pinpipe api serve --log kafka://...`` in its own process, fed REST-proxy v2 requests of 500
  records by ``--clients`` concurrent HTTP clients; every record must be acknowledged (200, no
  per-record error) and the topic must end up with exactly the records sent.

Target: the API reaches at least 30% of the direct producer. Results: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_kafka.py --quick               # 10,000 records
    .venv/bin/python benchmarks/bench_kafka.py                       # 50,000 records
    .venv/bin/python benchmarks/bench_kafka.py --records 500000 --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from _common import scratch_dir, source_values, start_api, stop_process

from pinpipe.log.kafka import KafkaLog
from tests.services import InfraService

CONTENT_TYPE = "application/vnd.kafka.json.v2+json"


def direct(bootstrap: str, topic: str, values: list[bytes], batch: int, per_batch: bool) -> float:
    """Seconds for a plain idempotent producer to have every record acknowledged."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    errors: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    started = time.perf_counter()
    for i in range(0, len(values), batch):
        for value in values[i : i + batch]:
            while True:
                try:
                    producer.produce(topic, value=value, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.01)
        if per_batch:
            producer.flush()
    producer.flush()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"direct producer failed: {errors[0]}")
    return elapsed


def through_api(url: str, topic: str, bodies: list[bytes], clients: int) -> float:
    """Seconds for ``clients`` concurrent HTTP clients to have every request acknowledged."""

    def send(chunk: list[bytes]) -> int:
        acked = 0
        with httpx.Client(base_url=url, timeout=120) as http:
            for body in chunk:
                response = http.post(f"/topics/{topic}", content=body, headers={"Content-Type": CONTENT_TYPE})
                if response.status_code != 200:
                    raise SystemExit(f"API answered {response.status_code}: {response.text[:300]}")
                offsets = response.json()["offsets"]
                failed = [o for o in offsets if o.get("error_code")]
                if failed:
                    raise SystemExit(f"API refused records: {failed[:2]}")
                acked += len(offsets)
        return acked

    chunks = [bodies[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        acked = sum(pool.map(send, chunks))
    elapsed = time.perf_counter() - started
    assert acked == sum(len(orjson.loads(b)["records"]) for b in bodies)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="records per API request / direct batch")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--bootstrap", help="an existing broker (default: start one with infra/kafka.sh)")
    parser.add_argument("--quick", action="store_true", help="10,000 records")
    args = parser.parse_args()
    count = 10_000 if args.quick else args.records

    tmp = scratch_dir("bench-kafka-")
    broker = None if args.bootstrap else InfraService("kafka", tmp / "infra")
    bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
    api = None
    try:
        values = source_values(count)
        encoded = [orjson.dumps(v) for v in values]
        bodies = [
            orjson.dumps({"records": [{"value": v} for v in values[i : i + args.batch]]})
            for i in range(0, count, args.batch)
        ]
        prefix = uuid.uuid4().hex[:12]
        log = KafkaLog(f"kafka://{bootstrap}", partitions=3)
        direct_topic, direct_sync_topic, api_topic = (
            f"bench-{prefix}",
            f"bench-sync-{prefix}",
            f"{prefix}.pin",
        )
        log.create_topic(direct_topic, 3)
        log.create_topic(direct_sync_topic, 3)
        api, url = start_api(["--log", f"kafka://{bootstrap}"], prefix, tmp)

        # warm-up (connections, producer ids, JIT of the broker), not timed
        direct(bootstrap, direct_topic, encoded[: args.batch], args.batch, per_batch=False)
        through_api(url, api_topic, bodies[:1], 1)

        t_direct = direct(bootstrap, direct_topic, encoded, args.batch, per_batch=False)
        t_sync = direct(bootstrap, direct_sync_topic, encoded, args.batch, per_batch=True)
        t_api = through_api(url, api_topic, bodies, args.clients)
        stored = sum(log.end_offsets(api_topic).values())
        sent = count + min(args.batch, count)
        if stored != sent:
            raise SystemExit(f"topic {api_topic} holds {stored} records, {sent} were acknowledged")
        log.close()
    finally:
        stop_process(api)
        if broker is not None:
            broker.stop()

    size = sum(len(v) for v in encoded) / count
    load = os.getloadavg()[0]
    print(f"records: {count} pin records (~{size:.0f} B each), {args.batch} per batch, broker {bootstrap}")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores (the machine is shared)")
    rows = [
        ("direct producer, one flush", t_direct),
        ("direct producer, flush per batch", t_sync),
        (f"API (REST proxy v2, {args.clients} clients)", t_api),
    ]
    for name, seconds in rows:
        print(f"{name:<42} {seconds:8.2f} s {count / seconds:12,.0f} records/s")
    ratio = t_direct / t_api
    print(f"API / direct producer: {ratio:.0%} (target >= 30%)")
    print(f"API / direct producer with a flush per batch: {t_sync / t_api:.0%}")


if __name__ == "__main__":
    main()
