"""The stream path as a user runs it on the embedded defaults: ``pinpipe api serve`` +
``pinpipe source seed`` + ``pinpipe emulate --mode stream --iterations 3000 --no-sleep`` +
``pinpipe stream run --until-idle`` leave 3,000 rows, every emulated event once, in each of the three
Delta tables (read with the ``deltalake`` package), and ``pinpipe metrics --json`` prints every metric.

The source is synthetic (every ind has a row in all three tables): on the real data, whose pinterest_data
table has 3,607 of the 11,154 rows, 314 of the first 3,000 draws find no pin row and are skipped for pin
only (tests/e2e/test_kafka_pipeline.py and the emulator tests cover that case).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from pinpipe.delta import read_table
from pinpipe.schema import KINDS
from pinpipe.streaming.read import METRICS
from pinpipe.tables import stream_table
from tests.e2e.pipeline_cli import (
    ApiProcess,
    clean_env,
    expected_rows,
    location_flags,
    pinpipe,
    settings_for,
)

ITERATIONS = 3000
pytestmark = pytest.mark.slow


def test_api_emulate_stream_metrics(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    workdir = tmp_path / "work"
    flags = location_flags(workdir)
    pinpipe("source", "seed", *flags, "--no-progress", env=env)
    expected = expected_rows(flags, ITERATIONS, env)
    assert len(expected) == ITERATIONS

    started = time.monotonic()
    with ApiProcess(flags, env, tmp_path / "api.log") as api:
        sent = pinpipe(
            "emulate", *flags, "--api", api.url, "--mode", "stream",
            "--iterations", str(ITERATIONS), "--no-sleep", "--no-progress",
            env=env,
        )  # fmt: skip
    emulated = time.monotonic() - started
    assert "errors: 0" in sent.stdout, sent.stdout
    streamed = pinpipe("stream", "run", *flags, "--until-idle", "--quiet", env=env)
    print(f"\nemulate {ITERATIONS} (stream mode): {emulated:.1f}s; {streamed.stdout.strip()}")

    settings = settings_for(workdir)
    for kind in KINDS:
        table = read_table(stream_table(settings, kind))
        rows = [row[kind] for row in expected if row[kind] is not None]
        want = Counter(int(row["index" if kind == "pin" else "ind"]) for row in rows)
        got = Counter(table.column("ind").to_pylist())
        assert got == want, f"{kind}: {sum(got.values())} rows, expected {sum(want.values())}"
        assert table.num_rows == ITERATIONS, kind

    metrics = json.loads(pinpipe("metrics", *flags, "--json", env=env).stdout)
    assert sorted(metrics) == sorted(METRICS)
    assert all(metrics[name] for name in METRICS), {name: len(rows) for name, rows in metrics.items()}
    inputs = {row["input"]: row["events"] for row in metrics["late_events"]}
    assert inputs == {"post": ITERATIONS, "geo": ITERATIONS}
    by_country = sum(row["events_total"] for row in metrics["country_activity"])
    assert by_country == ITERATIONS
    lag = metrics["lag"]
    assert {row["stream"] for row in lag} == {f"streaming-{settings.prefix}-{kind}" for kind in KINDS}
    assert all(row["lag"] == 0 for row in lag)
