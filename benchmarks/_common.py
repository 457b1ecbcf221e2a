"""Helpers shared by the benchmarks: free ports, percentiles, records, paced sending, the API process,
and watchers that note when records become visible in the lake or in a Delta table.

Imported as ``from _common import ...`` by scripts run as ``.venv/bin/python benchmarks/bench_<name>.py``
(their directory is first on ``sys.path``); it puts the repository on ``sys.path`` itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pinpipe import delta  # noqa: E402
from pinpipe.lake.formats import format_of_key, parse_key  # noqa: E402
from pinpipe.schema import Kind  # noqa: E402

PINPIPE = Path(sys.executable).with_name("pinpipe")


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory, removed when the benchmark exits, however it exits (a Kafka run leaves
    100 MB and more of broker logs); after the benchmark's own ``finally`` has stopped its servers."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def geo(ind: int) -> dict[str, Any]:
    return {
        "ind": ind,
        "timestamp": "2022-06-01 12:00:00",
        "latitude": 1.0,
        "longitude": 2.0,
        "country": "France",
    }


def source_values(count: int, kind: Kind = "pin", seed: int = 100) -> list[dict[str, Any]]:
    """``count`` synthetic records of ``kind`` as the emulator posts them (datetimes as strings)."""
    from pinpipe.source.synthetic import SyntheticRows

    def plain(value: Any) -> Any:
        return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else value

    return [{k: plain(v) for k, v in row[kind].items()} for row in SyntheticRows(seed=seed).rows(0, count)]


def paced(
    rate: int, seconds: float, send: Callable[[int, int], Sequence[Hashable]], tick: float = 0.1
) -> tuple[dict[Hashable, float], float]:
    """Call ``send(first, n)`` every ``tick`` with ``rate * tick`` records numbered from ``first`` on,
    for ``seconds``; ``send`` returns the ids of the records the API acknowledged. Returns each id's
    acknowledgement time (``time.time()`` when the reply arrived) and the seconds the sending took."""
    acked: dict[Hashable, float] = {}
    per_tick = max(1, round(rate * tick))
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        if (wait := start + n * tick - time.monotonic()) > 0:
            time.sleep(wait)
        ids = send(n * per_tick, per_tick)
        now = time.time()
        for i in ids:
            acked[i] = now
        n += 1
    return acked, time.monotonic() - start


def wait_seen(
    seen: dict[Hashable, float], ids: Sequence[Hashable] | dict[Hashable, Any], timeout: float
) -> bool:
    """Wait until every id is in ``seen`` (filled by a watcher thread); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i in seen for i in ids):
            return True
        time.sleep(0.05)
    return all(i in seen for i in ids)


class Watcher:
    """A daemon thread calling ``scan()`` every ``interval`` s; ``seen`` maps an id to when it appeared."""

    def __init__(self, interval: float = 0.02, seen: dict[Hashable, float] | None = None) -> None:
        self.interval = interval
        self.seen: dict[Hashable, float] = {} if seen is None else seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.interval)

    def scan(self) -> None:
        raise NotImplementedError


class DeltaWatcher(Watcher):
    """Ids of the rows of a Delta table (``tag`` + the values of ``columns``, or the value of a single
    column without a tag), seen when a new version shows them. Watchers may share one ``seen``."""

    def __init__(
        self,
        url: str,
        columns: Sequence[str],
        interval: float = 0.05,
        *,
        tag: tuple[Any, ...] = (),
        seen: dict[Hashable, float] | None = None,
    ) -> None:
        super().__init__(interval, seen)
        self.url = url
        self.columns = list(columns)
        self.tag = tag
        self.version = -1

    def scan(self) -> None:
        table = delta.open_table_if_exists(self.url)
        if table is None or table.version() == self.version:
            return
        now = time.time()
        self.version = table.version()
        data = table.to_pyarrow_table(columns=self.columns)
        for key in zip(*(data.column(c).to_pylist() for c in self.columns), strict=True):
            self.seen.setdefault(self.tag + key if self.tag or len(key) > 1 else key[0], now)


class LakeWatcher(Watcher):
    """``(partition, offset)`` of the records of ``topic`` in the lake directory ``root``, seen when the
    object holding them exists (objects are renamed into place, so an existing one is complete)."""

    def __init__(self, root: Path, topic: str, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.topic = topic
        self.folder = root / "topics" / topic
        self.objects: set[str] = set()

    def scan(self) -> None:
        if not self.folder.is_dir():
            return
        for part in os.scandir(self.folder):
            for entry in os.scandir(part.path):
                if entry.name in self.objects:
                    continue
                parsed = parse_key(f"topics/{self.topic}/{part.name}/{entry.name}")
                if parsed is None:  # a temporary file being written
                    continue
                now = time.time()
                self.objects.add(entry.name)
                _, partition, start = parsed
                count = format_of_key(entry.name).count(Path(entry.path).read_bytes())
                for offset in range(start, start + count):
                    self.seen[(partition, offset)] = now


def start_pinpipe(args: list[str], workdir: Path, name: str) -> subprocess.Popen[bytes]:
    """``pinpipe <args>`` in its own process (output to ``workdir/<name>.log``, cwd ``workdir`` so no
    pinpipe.toml of the caller applies)."""
    out = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([str(PINPIPE), *args], stdout=out, stderr=subprocess.STDOUT, cwd=workdir)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """SIGTERM (the pinpipe commands stop gracefully), SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_api(
    log_args: Sequence[str], prefix: str, workdir: Path, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """``pinpipe api serve`` on a free port (``log_args`` e.g. ``["--log", "kafka://..."]``, or none for
    the embedded log of ``workdir``); returns the process and its base URL once ``/readyz`` answers 200."""
    port = free_port()
    args = ["api", "serve", *log_args, "--workdir", str(workdir), "--prefix", prefix]
    proc = start_pinpipe([*args, "--port", str(port), *extra], workdir, "api")
    url = f"http://127.0.0.1:{port}"
    if wait_ok(f"{url}/readyz", proc, 120):
        return proc, url
    if proc.poll() is not None:
        raise SystemExit(f"the API exited: {(workdir / 'api.log').read_text()[-2000:]}")
    stop_process(proc)
    raise SystemExit("the API did not become ready in 120 s")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU seconds the processes ``pids`` have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def wait_ok(url: str, proc: subprocess.Popen[Any], timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True), ``proc`` exits or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
