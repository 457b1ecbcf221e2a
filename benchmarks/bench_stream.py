"""Stream path benchmark: API -> embedded log -> stream processor -> Delta (table and metrics).

Sends geo events through the Kinesis routes of the ingestion API (served by uvicorn on a free port) at
fixed rates, runs the stream processor in-process, and measures for each event the latency from the
API's acknowledgement until its row is visible in the Delta geo table and until the metrics count it
(``late_events`` geo events). Prints events/s sustained, latency p50/p99, resident memory start vs end,
and the ratio of each rate's p99 to the 100 events/s baseline measured in the same run.

    .venv/bin/python benchmarks/bench_stream.py            # short: 100 and 1000 events/s, 10 s each
    .venv/bin/python benchmarks/bench_stream.py --max       # also look for the highest sustainable rate
    .venv/bin/python benchmarks/bench_stream.py --minutes 10 --rates 1000   # soak
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinpipe import tables
from pinpipe.config import load_settings
from pinpipe.ingest.app import create_app
from pinpipe.schema import stream_name
from pinpipe.streaming import delta
from pinpipe.streaming.processor import run_stream

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def geo(ind: int) -> dict[str, Any]:
    return {
        "ind": ind,
        "timestamp": "2022-06-01 12:00:00",
        "latitude": 1.0,
        "longitude": 2.0,
        "country": "France",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_rate(base: str, settings: Any, rate: int, seconds: float, first_ind: int) -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds``; return latencies to table and metrics visibility."""
    acked: dict[int, float] = {}
    stream = stream_name(settings.prefix, "geo")
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    ind = first_ind
    start = time.monotonic()
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
        n = 0
        while time.monotonic() - start < seconds:
            due = start + n * tick
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            batch = [{"Data": geo(ind + i), "PartitionKey": str(ind + i)} for i in range(per_tick)]
            reply = client.put(f"/streams/{stream}/records", json={"StreamName": stream, "Records": batch})
            reply.raise_for_status()
            now = time.time()
            for i in range(per_tick):
                acked[ind + i] = now
            ind += per_tick
            n += 1
    sent_s = time.monotonic() - start
    table_seen, metric_seen = watch(settings, acked, first_ind)
    lat_t = [table_seen[i] - acked[i] for i in acked if i in table_seen]
    lat_m = [metric_seen[i] - acked[i] for i in acked if i in metric_seen]
    return {
        "rate": rate,
        "sent": len(acked),
        "sent_per_s": len(acked) / sent_s,
        "visible": len(lat_t),
        "table_p50": percentile(lat_t, 0.5),
        "table_p99": percentile(lat_t, 0.99),
        "metrics_p50": percentile(lat_m, 0.5),
        "metrics_p99": percentile(lat_m, 0.99),
        "next_ind": ind,
    }


SEEN: dict[str, dict[int, float]] = {"table": {}, "metric": {}}


def watcher(settings: Any, stop: threading.Event) -> None:
    """Record when each ind becomes visible in the geo table and when the metrics count reaches it."""
    url = tables.stream_table(settings, "geo")
    version = -1
    order: list[int] = []
    while not stop.is_set():
        table = delta.open_table(url)
        if table is not None and table.version() != version:
            now = time.time()
            version = table.version()
            for ind in table.to_pyarrow_table(columns=["ind"]).column("ind").to_pylist():
                if ind not in SEEN["table"]:
                    SEEN["table"][ind] = now
                    order.append(ind)
        late = delta.open_table(tables.metrics_table(settings, "late_events"))
        if late is not None:
            now = time.time()
            rows = late.to_pyarrow_table().to_pylist()
            counted = next((r["events"] for r in rows if r["input"] == "geo"), 0)
            for ind in order[:counted]:
                SEEN["metric"].setdefault(ind, now)
        time.sleep(0.05)


def watch(settings: Any, acked: dict[int, float], first: int, timeout: float = 30.0) -> tuple[dict, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(i in SEEN["metric"] for i in acked):
        time.sleep(0.1)
    return SEEN["table"], SEEN["metric"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000", help="comma-separated events/s [100,1000]")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate [10]")
    parser.add_argument("--minutes", type=float, default=None, help="soak: run each rate this long")
    parser.add_argument("--max", action="store_true", help="double the rate until p99 > 2 s or rate not kept")
    args = parser.parse_args()
    seconds = args.minutes * 60 if args.minutes else args.seconds
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    settings = load_settings(workdir=workdir, **{"api.api_keys": [KEY], "stream.max_wait_s": 0.2})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    stop = threading.Event()
    processor = threading.Thread(
        target=run_stream, args=(settings,), kwargs={"until_idle": False, "stop": stop.is_set}
    )
    processor.start()
    threading.Thread(target=watcher, args=(settings, stop), daemon=True).start()
    proc = psutil.Process(os.getpid())
    base = f"http://127.0.0.1:{port}"
    rates = [int(r) for r in args.rates.split(",")]
    results = []
    ind = 0
    time.sleep(1.0)
    rss_start = proc.memory_info().rss
    try:
        for rate in rates:
            results.append(run_rate(base, settings, rate, seconds, ind))
            ind = results[-1]["next_ind"]
        if args.max:
            rate = max(rates)
            while True:
                rate *= 2
                r = run_rate(base, settings, rate, seconds, ind)
                ind = r["next_ind"]
                results.append(r)
                if r["metrics_p99"] > 2.0 or r["sent_per_s"] < 0.9 * rate or r["visible"] < r["sent"]:
                    break
    finally:
        rss_end = proc.memory_info().rss
        stop.set()
        processor.join(timeout=30)
        server.should_exit = True
    baseline = results[0]["metrics_p99"]
    print(f"{'rate':>6} {'sent/s':>8} {'visible':>8} {'table p50':>10} {'table p99':>10} "
          f"{'metrics p50':>12} {'metrics p99':>12} {'p99 ratio':>10}")  # fmt: skip
    for r in results:
        print(
            f"{r['rate']:>6} {r['sent_per_s']:>8.0f} {r['visible']:>8} {r['table_p50']:>10.3f} "
            f"{r['table_p99']:>10.3f} {r['metrics_p50']:>12.3f} {r['metrics_p99']:>12.3f} "
            f"{r['metrics_p99'] / baseline:>10.2f}"
        )
    print(f"resident memory: start {rss_start / 2**20:.0f} MiB, end {rss_end / 2**20:.0f} MiB "
          f"(ratio {rss_end / rss_start:.2f}); target p99 < 2 s at 1000 events/s")  # fmt: skip


if __name__ == "__main__":
    main()
