"""Ingestion through HTTP into the embedded log, against appending the same records in-process.

Measured in one run, on the same machine and disk:

- direct: ``LogWriter.append`` of 500-record batches of pre-encoded records (the ceiling);
- HTTP batched: ``pinpipe api serve`` (uvicorn, a subprocess) receiving 500-record REST proxy v2 requests
  from a few concurrent keep-alive connections: JSON parsing, schema validation, re-encoding, append;
- HTTP single: the same with one record per request;
- latency: p50/p99 of single-record produce requests sent one at a time (low load).

Targets: batched HTTP >= 50% of direct and >= 70,000 records/s. Results: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_ingest.py            # default sizes, about a minute
    .venv/bin/python benchmarks/bench_ingest.py --quick    # a few seconds
    .venv/bin/python benchmarks/bench_ingest.py --records 500000 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

from pinpipe.locations import embedded_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.schema import DEFAULT_PREFIX, topic_name

TOPIC = topic_name(DEFAULT_PREFIX, "pin")
CATEGORIES = ["art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance"]
KAFKA_JSON = {"Content-Type": "application/vnd.kafka.json.v2+json"}


def pin_records(n: int, seed: int = 7) -> list[dict[str, object]]:
    """Pin-shaped records of realistic size (~600 bytes), deterministic."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        category = rng.choice(CATEGORIES)
        out.append(
            {
                "index": i,
                "unique_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "title": f"Idea number {i} for your {category} board ",
                "description": "A longer description of the pin, with a little unicode: été, 日本. " * 2,
                "poster_name": f"Poster {rng.randint(0, 5000)}",
                "follower_count": f"{rng.randint(1, 999)}k",
                "tag_list": "Tag one,Tag two,Tag three,Tag four",
                "is_image_or_video": "image",
                "image_src": f"https://i.pinimg.com/originals/{rng.getrandbits(64):016x}.jpg",
                "downloaded": 1,
                "save_location": f"Local save in /data/{category}",
                "category": category,
            }
        )
    return out


def bench_direct(directory: Path, records: list[dict[str, object]], batch: int) -> float:
    log = EmbeddedLog(embedded_url(directory), partitions=3)
    log.create_topic(TOPIC, 3)
    writer = log.writer()
    encoded = [OutgoingRecord(orjson.dumps(r), key=str(r["index"]).encode()) for r in records]
    start = time.perf_counter()
    for i in range(0, len(encoded), batch):
        writer.append(TOPIC, encoded[i : i + batch])
    elapsed = time.perf_counter() - start
    writer.close()
    log.close()
    return len(encoded) / elapsed


class Server:
    """``pinpipe api serve`` on a free port, in a subprocess."""

    def __init__(self, workdir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PINPIPE_")}
        env["PINPIPE_CONFIG"] = str(workdir / "no-such.toml")
        command = [sys.executable, "-m", "pinpipe", "api", "serve", "--workdir", str(workdir), "--port", "0"]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        seen = []
        while "listening on " not in (line := self.process.stdout.readline()):
            seen.append(line)
            if not line or len(seen) > 50:
                self.process.kill()
                raise SystemExit("server did not start:\n" + "".join(seen))
        self.url = line.split("listening on ", 1)[1].split()[0]
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def bench_http(url: str, bodies: list[bytes], per_body: int, concurrency: int) -> float:
    """Send every body once, over ``concurrency`` keep-alive connections; records per second."""
    errors: list[str] = []
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def worker(mine: list[bytes]) -> None:
        with httpx.Client(base_url=url, headers=KAFKA_JSON, timeout=60) as client:
            for body in mine:
                response = client.post(f"/topics/{TOPIC}", content=body)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"HTTP errors: {errors[:3]}")
    return len(bodies) * per_body / elapsed


def bench_latency(url: str, records: list[dict[str, object]]) -> tuple[float, float]:
    """p50 and p99, in milliseconds, of single-record requests sent one after the other."""
    times = []
    with httpx.Client(base_url=url, headers=KAFKA_JSON, timeout=60) as client:
        for i, record in enumerate(records):
            body = orjson.dumps({"records": [{"value": record}]})
            start = time.perf_counter()
            response = client.post(f"/topics/{TOPIC}", content=body, headers={"Idempotency-Key": f"lat-{i}"})
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--records", type=int, default=100_000, help="records for direct and batched runs")
    parser.add_argument("--singles", type=int, default=3_000, help="single-record requests")
    parser.add_argument("--latency-requests", type=int, default=500, help="requests for the latency run")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent HTTP connections")
    parser.add_argument("--batch", type=int, default=500, help="records per batched request")
    args = parser.parse_args()
    if args.quick:
        args.records, args.singles, args.latency_requests = 20_000, 600, 200

    records = pin_records(args.records)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        direct = bench_direct(root / "direct-log", records, args.batch)
        batch_bodies = [
            orjson.dumps(
                {"records": [{"key": str(r["index"]), "value": r} for r in records[i : i + args.batch]]}
            )
            for i in range(0, len(records), args.batch)
        ]
        single_bodies = [orjson.dumps({"records": [{"value": r}]}) for r in records[: args.singles]]
        server = Server(root / "work")
        try:
            bench_http(server.url, batch_bodies[:2], args.batch, 1)  # warm up
            batched = bench_http(server.url, batch_bodies, args.batch, args.concurrency)
            single = bench_http(server.url, single_bodies, 1, args.concurrency)
            p50, p99 = bench_latency(server.url, records[: args.latency_requests])
        finally:
            server.stop()

    print(
        f"records: {len(records):,} pin records (~{len(orjson.dumps(records[0]))} bytes), batch {args.batch}"
    )
    print(f"direct append (in-process, embedded log): {direct:>10,.0f} records/s")
    print(f"HTTP batched ({args.concurrency} connections):         {batched:>10,.0f} records/s")
    print(f"HTTP single-record ({args.concurrency} connections):   {single:>10,.0f} records/s")
    print(f"ratio batched HTTP / direct: {batched / direct:.2f}  (target >= 0.50)")
    print(f"ratio single HTTP / direct:  {single / direct:.3f}")
    print(f"single-record produce latency at low load: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    met = batched / direct >= 0.50 and batched >= 70_000
    print(f"targets (>= 50% of direct and >= 70,000 records/s): {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
