"""kill -9 the stream processor at least 20 times during a 10,000-event run on the embedded log.

After catch-up every event is exactly once in the Delta tables and the metrics equal those of an
uninterrupted run over the same log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from pinpipe.config import load_settings
from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, stream_name
from pinpipe.streaming.processor import run_stream
from pinpipe.streaming.views import STATE_METRICS
from tests.unit.test_stream_support import (
    encode,
    live_times,
    metric_rows,
    replay_iterations,
    rounded,
    stream_rows,
)

KILLS = 20
EVENTS = 10_000


def committed(workdir: Path) -> int:
    """The sum of the latest commit versions of the Delta tables under ``workdir``: grows with each
    micro-batch the processor commits (the progress line is drawn only on a terminal)."""
    return sum(
        max((int(f.stem) for f in log.glob("*.json") if f.stem.isdigit()), default=-1)
        for log in workdir.glob("**/_delta_log")
    )


def test_kill_minus_nine_twenty_times(tmp_path: Path, aicore: Path) -> None:
    log_url = embedded_url(tmp_path / "log")
    its = live_times(replay_iterations(aicore, EVENTS // 3 + 1))
    log = open_log(log_url, partitions=3)
    try:
        settings = load_settings(workdir=tmp_path / "ref", **{"log.stream_url": log_url})
        writer = log.writer()
        for kind in KINDS:
            log.create_topic(stream_name(settings.prefix, kind), 3)
        for start in range(0, len(its), 250):  # chunks, so pin and geo of one ind arrive close together
            for kind in KINDS:
                chunk = its[start : start + 250]
                writer.append(
                    stream_name(settings.prefix, kind),
                    [OutgoingRecord(encode(it[kind]), key=str(it["step"]).encode()) for it in chunk],
                )
    finally:
        log.close()

    reference = load_settings(
        workdir=tmp_path / "ref", **{"log.stream_url": log_url, "stream.max_wait_s": 0.0}
    )
    run_stream(reference)

    work = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINPIPE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let restarts reuse compiled modules
    env["PINPIPE_CONFIG"] = str(tmp_path / "none.toml")
    command = [
        sys.executable, "-m", "pinpipe", "stream", "run", "--until-idle", "--workdir", str(work),
        "--stream-log", log_url, "--max-records", "100", "--max-wait", "0",
    ]  # fmt: skip
    # small micro-batches: each run lives <= 0.25 s past its first committed batch, and the 10,000 events
    # must outlast 20 such runs however fast the processor is (at 150 records a fast run sometimes finished
    # first)
    rng = random.Random(4)
    kills = 0
    started = time.monotonic()
    while kills < KILLS:
        before = committed(work)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and committed(work) == before:
            time.sleep(0.01)  # until the run's first micro-batch is committed
        if proc.poll() is not None:
            break  # finished before it could be killed: everything is processed
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert kills >= KILLS, f"only {kills} kills before the stream was processed"
    assert time.monotonic() - started < 150

    killed = load_settings(workdir=work, **{"log.stream_url": log_url})
    for kind in KINDS:
        rows = stream_rows(killed, kind)
        keys = [(r["_partition"], r["_offset"]) for r in rows]
        assert len(keys) == len(set(keys)), f"duplicates in the {kind} table"
        assert rows == stream_rows(reference, kind)
    assert sum(len(stream_rows(killed, k)) for k in KINDS) >= EVENTS
    for name in STATE_METRICS:
        assert rounded(metric_rows(killed, name)) == rounded(metric_rows(reference, name)), name
