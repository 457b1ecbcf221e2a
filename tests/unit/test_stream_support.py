"""Helpers shared by the stream tests: events from the real data on a log, tables read back.

Also checks the helpers themselves, so a broken fixture fails loudly rather than passing vacuously.
"""

from __future__ import annotations

import json
import random
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

import pinpipe.log.memory as memory_module
from pinpipe import delta, tables
from pinpipe.config import Settings
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import KINDS, Kind, stream_name
from tests.aicore import replay


def replay_iterations(aicore: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` emulator iterations (cycling through the 2,524 recorded ones)."""
    rows = replay(aicore)
    return [rows[i % len(rows)] for i in range(n)]


def live_times(iterations: list[dict[str, Any]], seed: int = 7) -> list[dict[str, Any]]:
    """Iterations whose geo timestamps lie within a few hours instead of five years, so windows fill
    and both on-time and late events occur. The timestamp stays a function of ``ind`` (one source row
    per ind, as the emulator reads it): 40 minutes of mostly increasing time per 100 iterations,
    with a pseudo-random part of up to 25 minutes, beyond the 10-minute watermark."""
    rng = random.Random(seed)
    base = datetime(2022, 6, 1, 12, 0, 0)
    first: dict[int, int] = {}
    out = []
    for i, it in enumerate(iterations):
        ind = it["geo"]["ind"]
        step = first.setdefault(ind, i)
        shift = step * 24 - (ind * 7919) % 1500 + rng.randint(0, 0)
        geo = dict(it["geo"], timestamp=(base + timedelta(seconds=shift)).strftime("%Y-%m-%d %H:%M:%S"))
        out.append({**it, "geo": geo})
    return out


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@contextmanager
def arrival_clock(start: float, step: float) -> Iterator[None]:
    """Make MemoryLog stamp appends start, start+step, ... (deterministic arrival times)."""
    now = [start - step]

    def tick() -> float:
        now[0] += step
        return now[0]

    real = memory_module.time
    memory_module.time = types.SimpleNamespace(time=tick, monotonic=real.monotonic)  # type: ignore[assignment]
    try:
        yield
    finally:
        memory_module.time = real


def post(
    log: Any, prefix: str, iterations: list[dict[str, Any]], extra: dict[Kind, list[bytes]] | None = None
) -> int:
    """Append each iteration's pin, geo and user (as the emulator would) and raw extras; count events."""
    writer = log.writer()
    count = 0
    for i, it in enumerate(iterations):
        for kind in KINDS:
            if it.get(kind) is not None:
                writer.append(
                    stream_name(prefix, kind), [OutgoingRecord(encode(it[kind]), key=str(i).encode())]
                )
                count += 1
    for extra_kind, values in (extra or {}).items():
        writer.append(stream_name(prefix, extra_kind), [OutgoingRecord(v) for v in values])
        count += len(values)
    return count


def memory_log_with(
    prefix: str,
    iterations: list[dict[str, Any]],
    start: float = 1_700_000_000.0,
    extra: dict[Kind, list[bytes]] | None = None,
) -> MemoryLog:
    log = MemoryLog(partitions=3)
    with arrival_clock(start, 0.01):
        post(log, prefix, iterations, extra)
    return log


def read(url: str) -> pa.Table:
    data = delta.read_table_if_exists(url)
    assert data is not None, f"no Delta table at {url}"
    return data


def stream_rows(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """A stream table's rows in log order (partition, offset)."""
    data = read(tables.stream_table(settings, kind))  # type: ignore[arg-type]
    return sorted(data.to_pylist(), key=lambda r: (r["_partition"], r["_offset"]))


def metric_rows(settings: Settings, name: str) -> list[dict[str, Any]]:
    return read(tables.metrics_table(settings, name)).to_pylist()


def rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with floats to 9 places: decayed scores summed in another order differ in the last bits."""
    return [{k: (round(v, 9) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def test_live_times_make_late_and_on_time_events(aicore: Path) -> None:
    its = live_times(replay_iterations(aicore, 200))
    stamps = [datetime.fromisoformat(it["geo"]["timestamp"]) for it in its]
    behind = [max(stamps[:i]) - s for i, s in enumerate(stamps) if i]
    assert any(b > timedelta(seconds=600) for b in behind)
    assert sum(b <= timedelta(seconds=600) for b in behind) > 100


def test_arrival_clock_stamps_appends(aicore: Path) -> None:
    log = memory_log_with("p", replay_iterations(aicore, 3), start=100.0)
    reader = log.reader("g", [stream_name("p", "pin")])
    stamps = sorted(r.timestamp for r in reader.poll(10, 0))
    assert stamps == [100.0, 100.03, 100.06] or [round(s, 6) for s in stamps] == [100.0, 100.03, 100.06]
