"""Stream path benchmark: API -> embedded log -> stream processor -> Delta (table and metrics).

The API (``pinpipe api serve``) and the processor (``pinpipe stream run``) run as separate processes,
as users run them; this process sends geo events through the API's Kinesis route (PutRecords) at fixed
rates and measures, for each event, the latency from the API's acknowledgement until its row is visible
in the Delta geo table and until the metrics count it (``late_events`` geo events). Both are seen by
watchers reading only the new files of each new table version. Prints events/s sent, latency p50/p99,
the ratio of each rate's metrics p99 to the 100 events/s baseline measured in the same run, and the
processor's resident memory (its own pid, sampled during the whole run: after warm-up, end, and the
curve); the API's is shown apart.

    .venv/bin/python benchmarks/bench_stream.py                     # 100 and 1000 events/s, 15 s each
    .venv/bin/python benchmarks/bench_stream.py --max               # also the highest sustainable rate
    .venv/bin/python benchmarks/bench_stream.py --rates 500 --minutes 10   # soak: memory start vs end
    .venv/bin/python benchmarks/bench_stream.py --rates 1000 --profile /tmp/stream.prof   # cProfile

Targets: sustained >= 25,000 events/s with metrics p99 <= 1 s (``--max``: the highest rate sent within 5%
of what was asked, every event counted, p99 within 1 s); p99 <= 0.25 s at 1,000 events/s; over a
10-minute soak at 10,000 events/s (``--rates 10000 --minutes 10``) the processor's RSS within 10% of
its value after the first minute. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from _common import (
    PINPIPE,
    Watcher,
    geo,
    paced,
    percentile,
    scratch_dir,
    start_api,
    start_pinpipe,
    stop_process,
    wait_seen,
)

from pinpipe import delta, tables
from pinpipe.config import load_settings
from pinpipe.locations import delta_uri, join
from pinpipe.schema import DEFAULT_PREFIX, stream_name

TARGET_P99_S = 1.0
"""Metrics p99 of a sustained rate, s."""
LOW_RATE_P99_S = 0.25
"""Metrics p99 at 1,000 events/s, s."""
SETTLED_S = 60.0
"""RSS is compared with its value this long into the run (start-up and the first tidy-ups behind)."""
RSS_GROWTH = 0.10
MAX_PER_REQUEST = 500
"""The API's default ``api.max_records`` per request."""
SENDERS = 8
"""Requests of one tick sent at once (8 x 500 = 40,000 events/s at the 0.1 s tick)."""


class TableWatcher(Watcher):
    """When each ``ind`` appears in the Delta geo table; reads only the files a new version added, so a
    long run does not re-read the whole table. ``order`` lists the inds in order of appearance."""

    def __init__(self, url: str) -> None:
        super().__init__(0.05)
        self.url = url
        self.table: Any = None
        self.files: set[str] = set()
        self.order: list[int] = []

    def scan(self) -> None:
        if self.table is None:
            self.table = delta.open_table_if_exists(self.url)
            if self.table is None:
                return
            version = -1
        else:
            version = self.table.version()
            self.table.update_incremental()
        if self.table.version() == version:
            return
        now = time.time()
        actions = pa.table(self.table.get_add_actions(flatten=True)).to_pydict()
        new = sorted(
            (t, p)
            for p, t in zip(actions["path"], actions["modification_time"], strict=True)
            if p not in self.files
        )
        for _, path in new:
            self.files.add(path)
            try:
                inds = pq.read_table(delta_uri(join(self.url, *path.split("/"))), columns=["ind"])
            except FileNotFoundError:  # compacted away meanwhile: its rows are in a newer file
                continue
            for ind in inds.column("ind").to_pylist():
                if ind not in self.seen:
                    self.seen[ind] = now
                    self.order.append(ind)


class MetricsWatcher(Watcher):
    """When the ``late_events`` geo count reaches each ind, in the order the table showed them (a
    micro-batch commits its rows before its metrics, so the first ``count`` inds are the counted ones)."""

    def __init__(self, url: str, table: TableWatcher) -> None:
        super().__init__(0.05)
        self.url = url
        self.table = table
        self.counted = 0

    def scan(self) -> None:
        try:
            late = delta.read_table_if_exists(self.url)
        except Exception:  # a snapshot vacuumed under the read: next scan sees the newer one
            return
        if late is None:
            return
        now = time.time()
        rows = late.to_pylist()
        counted = next((r["events"] for r in rows if r["input"] == "geo"), 0)
        order = self.table.order
        while self.counted < min(counted, len(order)):
            self.seen.setdefault(order[self.counted], now)
            self.counted += 1


class RssSampler(threading.Thread):
    """Resident memory of the processor and of the API (each its own pid), every ``interval`` s."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        super().__init__(daemon=True)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.started_at = time.monotonic()
        self._done = threading.Event()

    def sample(self) -> dict[str, int]:
        rss = {}
        for name, proc in self.procs.items():
            try:
                rss[name] = proc.memory_info().rss
                rss[f"{name}_anon"] = _anon(proc.pid)
            except psutil.Error:
                rss[name] = rss[f"{name}_anon"] = 0
        self.samples.append((time.monotonic() - self.started_at, rss))
        return rss

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, int]:
        self._done.set()
        self.join(5)
        return self.sample()


def _anon(pid: int) -> int:
    """Anonymous resident memory (heap, not mapped files such as shared libraries), Linux only."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("RssAnon:")), 0
    )


def run_rate(
    client: httpx.Client,
    senders: ThreadPoolExecutor,
    stream: str,
    rate: int,
    seconds: float,
    first_ind: int,
    table: Watcher,
    metric: Watcher,
) -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds`` (a tick's requests at once on ``senders``); latencies from
    acknowledgement to table and metrics."""

    def post(inds: range) -> None:
        body = orjson.dumps(
            {"StreamName": stream, "Records": [{"Data": geo(i), "PartitionKey": str(i)} for i in inds]}
        )
        reply = client.put(
            f"/streams/{stream}/records", content=body, headers={"content-type": "application/json"}
        )
        reply.raise_for_status()
        if reply.json()["FailedRecordCount"]:
            raise SystemExit(f"API refused records: {reply.text[:300]}")

    def send(first: int, n: int) -> list[Hashable]:
        inds = range(first_ind + first, first_ind + first + n)
        chunks = [inds[c : c + MAX_PER_REQUEST] for c in range(0, n, MAX_PER_REQUEST)]
        list(senders.map(post, chunks))  # at once: one request's round trip must not pace the next
        return list(inds)

    acked, sent_s = paced(rate, seconds, send)
    wait_seen(metric.seen, acked, timeout=max(30.0, seconds))
    lat_t = [table.seen[i] - t for i, t in acked.items() if i in table.seen]
    lat_m = [metric.seen[i] - t for i, t in acked.items() if i in metric.seen]
    return {
        "rate": rate,
        "sent": len(acked),
        "sent_per_s": len(acked) / sent_s,
        "visible": len(lat_m),
        "table_p50": percentile(lat_t, 0.5),
        "table_p99": percentile(lat_t, 0.99),
        "metrics_p50": percentile(lat_m, 0.5),
        "metrics_p99": percentile(lat_m, 0.99),
        "next_ind": first_ind + len(acked),
    }


def sustained(r: dict[str, Any]) -> bool:
    """The rate was kept, every event reached the metrics, and their p99 is within the target."""
    return (
        r["sent_per_s"] >= 0.95 * r["rate"] and r["visible"] == r["sent"] and r["metrics_p99"] <= TARGET_P99_S
    )


def start_processor(workdir: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    options = [
        "--workdir",
        str(workdir),
        "--prefix",
        DEFAULT_PREFIX,
        "--quiet",
    ]
    if args.max_wait is not None:
        options += ["--max-wait", str(args.max_wait)]
    if not args.profile:
        return start_pinpipe(["stream", "run", *options], workdir, "stream")
    out = open(workdir / "stream.log", "wb")  # noqa: SIM115 - lives as long as the process
    command = [sys.executable, "-m", "cProfile", "-o", args.profile, str(PINPIPE), "stream", "run", *options]
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000", help="comma-separated events/s [100,1000]")
    parser.add_argument("--seconds", type=float, default=15.0, help="per rate [15]")
    parser.add_argument("--minutes", type=float, default=None, help="soak: run each rate this long")
    parser.add_argument(
        "--max", action="store_true", help="double the rate, then bisect, up to the highest sustained"
    )
    parser.add_argument(
        "--max-wait", type=float, default=None, help="processor micro-batch trigger, s [stream.max_wait_s]"
    )
    parser.add_argument("--sample", type=float, default=None, help="RSS sample interval, s [1, soak: 30]")
    parser.add_argument(
        "--profile", default=None, help="run the processor under cProfile, stats to this file"
    )
    args = parser.parse_args()
    seconds = args.minutes * 60 if args.minutes else args.seconds
    workdir = scratch_dir("bench-stream-")
    settings = load_settings(workdir=workdir, prefix=DEFAULT_PREFIX)
    stream = stream_name(DEFAULT_PREFIX, "geo")
    api, base = start_api([], DEFAULT_PREFIX, workdir)
    processor = start_processor(workdir, args)
    table = TableWatcher(tables.stream_table(settings, "geo")).start()
    metric = MetricsWatcher(tables.metrics_table(settings, "late_events"), table).start()
    client = httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=SENDERS))
    senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="sender")
    results: list[dict[str, Any]] = []
    sampler = RssSampler(
        {"processor": processor.pid, "api": api.pid}, args.sample or (30 if args.minutes else 1)
    )
    try:
        # warm-up: both processes ready
        ind = run_rate(client, senders, stream, 10, 1.0, 0, table, metric)["next_ind"]
        if processor.poll() is not None:
            raise SystemExit(f"the processor exited: {(workdir / 'stream.log').read_text()[-2000:]}")
        start_rss = sampler.sample()
        sampler.start()
        for rate in (int(r) for r in args.rates.split(",")):
            results.append(run_rate(client, senders, stream, rate, seconds, ind, table, metric))
            ind = results[-1]["next_ind"]
        if args.max:
            good = max((r["rate"] for r in results if sustained(r)), default=0)
            bad = None
            rate = max(r["rate"] for r in results)
            while bad is None or bad - good > max(100, good // 8):
                rate = rate * 2 if bad is None else (good + bad) // 2
                results.append(run_rate(client, senders, stream, rate, seconds, ind, table, metric))
                ind = results[-1]["next_ind"]
                if sustained(results[-1]):
                    good = rate
                else:
                    bad = rate
                time.sleep(2)  # let a backlog drain before the next rate
            print(f"highest sustained rate: {good} events/s (first rate missed: {bad})")
        end_rss = sampler.stop()
    finally:
        senders.shutdown()
        client.close()
        stop_process(processor)
        table.stop()
        metric.stop()
        stop_process(api)
    baseline = results[0]["metrics_p99"]
    print(f"{'rate':>6} {'sent/s':>8} {'visible':>8} {'table p50':>10} {'table p99':>10} "
          f"{'metrics p50':>12} {'metrics p99':>12} {'p99 ratio':>10}")  # fmt: skip
    for r in results:
        print(
            f"{r['rate']:>6} {r['sent_per_s']:>8.0f} {r['visible']:>8} {r['table_p50']:>10.3f} "
            f"{r['table_p99']:>10.3f} {r['metrics_p50']:>12.3f} {r['metrics_p99']:>12.3f} "
            f"{r['metrics_p99'] / baseline:>10.2f}"
        )
    mib = 2**20
    step = max(1, len(sampler.samples) // 10)
    curve = ", ".join(
        f"{t:.0f}s {s['processor'] / mib:.0f}/{s['processor_anon'] / mib:.0f}"
        for t, s in sampler.samples[::step]
    )
    proc_start, proc_end = start_rss["processor"], end_rss["processor"]
    anon_start, anon_end = start_rss["processor_anon"], end_rss["processor_anon"]
    peak = max(s["processor"] for _, s in sampler.samples)
    print(f"processor RSS: after warm-up {proc_start / mib:.0f} MiB, end {proc_end / mib:.0f} MiB "
          f"(ratio {proc_end / proc_start:.2f}), peak {peak / mib:.0f}; anonymous {anon_start / mib:.0f} -> "
          f"{anon_end / mib:.0f} MiB (ratio {anon_end / max(1, anon_start):.2f})")  # fmt: skip
    print(f"processor RSS/anonymous MiB at s: {curve}")
    settled = next((s for t, s in sampler.samples if t >= SETTLED_S), None)
    if settled is not None:
        rest = [s["processor"] for t, s in sampler.samples if t >= SETTLED_S]
        print(f"processor RSS after {SETTLED_S:.0f} s: {settled['processor'] / mib:.0f} MiB, then max "
              f"{max(rest) / mib:.0f} MiB ({max(rest) / settled['processor'] - 1:+.1%}), end "
              f"{proc_end / mib:.0f} MiB ({proc_end / settled['processor'] - 1:+.1%}; target within "
              f"{RSS_GROWTH:.0%})")  # fmt: skip
    print(f"API RSS: {start_rss['api'] / mib:.0f} -> {end_rss['api'] / mib:.0f} MiB; targets: metrics p99 <= "
          f"{TARGET_P99_S:g} s sustained, <= {LOW_RATE_P99_S:g} s at 1000 events/s")  # fmt: skip


if __name__ == "__main__":
    main()
