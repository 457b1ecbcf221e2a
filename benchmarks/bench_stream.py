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
import tempfile
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from _common import DeltaWatcher, Watcher, free_port, geo, paced, percentile, wait_seen

from pinpipe import tables
from pinpipe.config import load_settings
from pinpipe.ingest.app import create_app
from pinpipe.schema import stream_name
from pinpipe.streaming import delta
from pinpipe.streaming.processor import run_stream

KEY = "bench-key"


class MetricsWatcher(Watcher):
    """When the ``late_events`` geo count reaches each ind, in the order the table showed them."""

    def __init__(self, settings: Any, table: DeltaWatcher) -> None:
        super().__init__(0.05)
        self.url = tables.metrics_table(settings, "late_events")
        self.table = table

    def scan(self) -> None:
        late = delta.open_table(self.url)
        if late is None:
            return
        now = time.time()
        rows = late.to_pyarrow_table().to_pylist()
        counted = next((r["events"] for r in rows if r["input"] == "geo"), 0)
        for ind in list(self.table.seen)[:counted]:  # dicts keep insertion (= appearance) order
            self.seen.setdefault(ind, now)


def run_rate(
    base: str, settings: Any, rate: int, seconds: float, first_ind: int, table: Watcher, metric: Watcher
) -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds``; return latencies to table and metrics visibility."""
    stream = stream_name(settings.prefix, "geo")
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:

        def send(first: int, n: int) -> list[Hashable]:
            inds = range(first_ind + first, first_ind + first + n)
            batch = [{"Data": geo(i), "PartitionKey": str(i)} for i in inds]
            reply = client.put(f"/streams/{stream}/records", json={"StreamName": stream, "Records": batch})
            reply.raise_for_status()
            return list(inds)

        acked, sent_s = paced(rate, seconds, send)
    wait_seen(metric.seen, acked, timeout=30)
    lat_t = [table.seen[i] - t for i, t in acked.items() if i in table.seen]
    lat_m = [metric.seen[i] - t for i, t in acked.items() if i in metric.seen]
    return {
        "rate": rate,
        "sent": len(acked),
        "sent_per_s": len(acked) / sent_s,
        "visible": len(lat_t),
        "table_p50": percentile(lat_t, 0.5),
        "table_p99": percentile(lat_t, 0.99),
        "metrics_p50": percentile(lat_m, 0.5),
        "metrics_p99": percentile(lat_m, 0.99),
        "next_ind": first_ind + len(acked),
    }


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
    table = DeltaWatcher(tables.stream_table(settings, "geo"), ["ind"]).start()
    metric = MetricsWatcher(settings, table).start()
    proc = psutil.Process(os.getpid())
    base = f"http://127.0.0.1:{port}"
    rates = [int(r) for r in args.rates.split(",")]
    results = []
    ind = 0
    time.sleep(1.0)
    rss_start = proc.memory_info().rss
    try:
        for rate in rates:
            results.append(run_rate(base, settings, rate, seconds, ind, table, metric))
            ind = results[-1]["next_ind"]
        if args.max:
            rate = max(rates)
            while True:
                rate *= 2
                r = run_rate(base, settings, rate, seconds, ind, table, metric)
                ind = r["next_ind"]
                results.append(r)
                if r["metrics_p99"] > 2.0 or r["sent_per_s"] < 0.9 * rate or r["visible"] < r["sent"]:
                    break
    finally:
        rss_end = proc.memory_info().rss
        stop.set()
        processor.join(timeout=30)
        table.stop()
        metric.stop()
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
