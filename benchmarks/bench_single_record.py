"""Single-record produce from many concurrent clients into the embedded log, against a bare endpoint.

The original emulator, like real users, posts one record per request from many clients at once. Measured
in one run, with ``wrk`` (``benchmarks/wrk_single_record.lua``: one geo record per POST, a fresh
``Idempotency-Key`` each) over ``--connections`` keep-alive connections:

- bare: ``benchmarks/_bare_api.py``, a plain ASGI endpoint on the same uvicorn set-up that parses the
  same body and answers the same shape without writing (the ceiling of the server stack, the target's
  baseline); then the same endpoint as a FastAPI route (what a framework route costs on top);
- pinpipe: ``pinpipe api serve`` on a fresh embedded log; every answer comes after the record is durable;
- pinpipe at half rate: the same, each connection pausing between requests so the rate is about half of
  the maximum just measured (wrk ``delay()``, calibrated from a short run): the p99 at a sustainable load.

CPU per request: the user and system time of the API process and of its log writer process over the
full-rate run, divided by the requests answered: steadier than requests/s on a shared machine.

Records per fsync: the log stamps every record of one commit with the commit's time, so records divided by
distinct append times is the number of records each commit (one fsync of the write-ahead log) carried.

Targets: pinpipe >= 5,000 requests/s and >= 40% of the bare ASGI endpoint; p99 <= 50 ms at half rate.
Needs ``wrk`` (``bash infra/wrk.sh install``). Results: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_single_record.py            # 15 s per run, about two minutes
    .venv/bin/python benchmarks/bench_single_record.py --quick    # 4 s per side
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _common import cpu_seconds, free_port, start_api, stop_process, wait_ok

from pinpipe.locations import embedded_url
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.schema import DEFAULT_PREFIX, topic_name

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk_single_record.lua"
TOPIC = topic_name(DEFAULT_PREFIX, "geo")


def wrk(url: str, connections: int, seconds: float, tag: str, pause_ms: float = 0.0) -> dict[str, Any]:
    """One wrk run against ``url``; the JSON line the script prints, plus ``rate`` (requests/s)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is missing: bash infra/wrk.sh install (apt-get install wrk)")
    threads = min(2, connections)
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    command += ["-s", str(SCRIPT), url, "--", tag, f"{pause_ms:g}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result["non2xx"] or result["socket_errors"]:
        raise SystemExit(f"errors under load: {result}")
    result["rate"] = result["requests"] / result["seconds"]
    return result


def paced(url: str, connections: int, seconds: float, rate: float, tag: str) -> dict[str, Any]:
    """wrk at about ``rate`` requests/s: each connection pauses ``connections / rate`` minus its mean
    latency before each request (the latency taken from a short calibration run)."""
    pause = connections / rate * 1000
    probe = wrk(url, connections, min(3.0, seconds), f"{tag}-calibrate", pause)
    latency_ms = connections / probe["rate"] * 1000 - pause
    return wrk(url, connections, seconds, tag, max(0.0, pause - latency_ms))


class Bare:
    """A bare endpoint (``asgi`` or ``fastapi``) in a subprocess on a free port."""

    def __init__(self, kind: str) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_bare_api.py"), str(port), kind], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.process.kill()
            raise SystemExit(f"the bare endpoint did not start: {line}")
        self.url = line.split("listening on ", 1)[1].strip()
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        if not wait_ok(f"{self.url}/healthz", self.process, 60):
            self.process.kill()
            raise SystemExit("the bare endpoint did not answer in 60 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def commits_of(log_dir: Path) -> tuple[int, int]:
    """(records, distinct append times) of the geo topic: records and commits."""
    log = EmbeddedLog(embedded_url(log_dir))
    reader = log.reader("bench-count", [TOPIC])
    records, stamps = 0, set[float]()
    try:
        while batch := reader.poll(10_000, 0.2):
            records += len(batch)
            stamps.update(r.timestamp for r in batch)
    finally:
        log.close()
    return records, len(stamps)


def server_stack() -> str:
    """The HTTP parser and event loop uvicorn picks here (``auto``: the C ones when installed)."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} parser, {loop} event loop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per measurement")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 4.0
    conns, seconds = args.connections, args.seconds
    tag = f"bench-{os.getpid()}-{int(time.time())}"
    load_before = os.getloadavg()

    bases = {}
    for kind in ("asgi", "fastapi"):
        bare = Bare(kind)
        try:
            wrk(f"{bare.url}/topics/{TOPIC}", conns, 2, f"{tag}-{kind}-warm")
            bases[kind] = wrk(f"{bare.url}/topics/{TOPIC}", conns, seconds, f"{tag}-{kind}")
        finally:
            bare.stop()
    base = bases["asgi"]

    with tempfile.TemporaryDirectory(prefix="bench-single-") as tmp:
        workdir = Path(tmp)
        api, url = start_api([], DEFAULT_PREFIX, workdir)
        try:
            wrk(f"{url}/topics/{TOPIC}", conns, 2, f"{tag}-warm")
            writer = [child.pid for child in psutil.Process(api.pid).children(recursive=True)]
            cpu_before = cpu_seconds([api.pid]), cpu_seconds(writer)
            full = wrk(f"{url}/topics/{TOPIC}", conns, seconds, f"{tag}-full")
            cpu = cpu_seconds([api.pid]) - cpu_before[0], cpu_seconds(writer) - cpu_before[1]
            half = paced(f"{url}/topics/{TOPIC}", conns, seconds, full["rate"] / 2, f"{tag}-half")
        finally:
            stop_process(api)
        records, commits = commits_of(workdir / "log")

    load_after = os.getloadavg()
    print(f"server (both): uvicorn, {server_stack()}")
    ratio = full["rate"] / base["rate"]
    print(f"{conns} connections, one geo record per request, a fresh Idempotency-Key each, {seconds:g} s")
    runs = (
        ("bare ASGI endpoint (parse, no write)", base),
        ("bare FastAPI route (parse, no write)", bases["fastapi"]),
        ("pinpipe api serve", full),
    )
    for name, run in runs:
        print(f"{name:<40} {run['rate']:>8,.0f} requests/s, p99 {run['p99_ms']:.1f} ms")
    framework = full["rate"] / bases["fastapi"]["rate"]
    print(f"ratio pinpipe / bare ASGI: {ratio:.2f} (pinpipe / bare FastAPI route: {framework:.2f})")
    api_us, writer_us = (x / full["requests"] * 1e6 for x in cpu)
    print(f"pinpipe CPU per request: API process {api_us:.1f} us, its log writer process {writer_us:.1f} us")
    print(
        f"at half rate: {half['rate']:,.0f} requests/s, "
        f"p50 {half['p50_ms']:.1f} ms, p99 {half['p99_ms']:.1f} ms"
    )
    per_commit = records / max(1, commits)
    print(f"records per commit (one fsync): {per_commit:.1f} ({records:,} records, {commits:,} commits)")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    met = full["rate"] >= 5_000 and ratio >= 0.40 and half["p99_ms"] <= 50
    print(
        "targets (>= 5,000 requests/s, >= 0.40 of bare ASGI, p99 <= 50 ms at half): "
        + ("met" if met else "MISSED")
    )


if __name__ == "__main__":
    main()
