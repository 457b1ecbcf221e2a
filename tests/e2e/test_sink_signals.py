"""A long-running ``pinpipe sink run``: the idle flush writes caught-up files on the real clock with the
content an ``--until-idle`` run gives them, and SIGTERM stops it cleanly with everything written committed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from pinpipe.lake.sink import GROUP
from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import DEFAULT_PREFIX, topic_names
from tests.e2e.test_sink_kill import sink_env, snapshot

FLAGS = ["--flush-size", "6", "--rotate-interval", "0.4", "--idle-flush", "0.3", "-q"]


def fill(workdir: Path, rounds: int, per_round: int = 5) -> None:
    log = open_log(embedded_url(workdir / "log"), partitions=2)
    writer = log.writer()
    for r in range(rounds):
        for kind, topic in topic_names(DEFAULT_PREFIX).items():
            log.create_topic(topic, 2)
            values = [orjson.dumps({"r": r, "i": i, "k": kind}) for i in range(per_round)]
            writer.append(topic, [OutgoingRecord(v, partition=i % 2) for i, v in enumerate(values)])
        time.sleep(0.25)
    log.close()


def lines(lake: dict[str, bytes]) -> int:
    return sum(data.count(b"\n") for data in lake.values())


def test_idle_flush_and_sigterm(tmp_path: Path) -> None:
    live, clean = tmp_path / "live", tmp_path / "clean"
    fill(live, rounds=4)  # 60 records, record times spread over ~1 s
    shutil.copytree(live / "log", clean / "log")
    env = sink_env(tmp_path)
    base = [sys.executable, "-m", "pinpipe", "sink", "run"]
    proc = subprocess.Popen(
        [*base, "--workdir", str(live), *FLAGS], cwd=tmp_path, env=env, stdout=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while lines(snapshot(live / "lake")) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        # without --until-idle and without new records, only the idle flush can have written the last files
        assert lines(snapshot(live / "lake")) == 60
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b"stopped" in out

    done = subprocess.run(
        [*base, "--workdir", str(clean), "--until-idle", *FLAGS], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert snapshot(live / "lake") == snapshot(clean / "lake")
    log = open_log(embedded_url(live / "log"))
    for topic in topic_names(DEFAULT_PREFIX).values():
        assert log.committed(GROUP, topic) == log.end_offsets(topic)
    log.close()


def test_sigterm_leaves_partial_files_to_the_next_run(tmp_path: Path) -> None:
    work = tmp_path / "w"
    fill(work, rounds=1, per_round=14)  # 7 records per partition: one full file of 6, one left over
    env = sink_env(tmp_path)
    cmd = [sys.executable, "-m", "pinpipe", "sink", "run", "--workdir", str(work), "--flush-size", "6", "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE)
    log = open_log(embedded_url(work / "log"))
    topics = list(topic_names(DEFAULT_PREFIX).values())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(log.committed(GROUP, t) != {0: 6, 1: 6} for t in topics):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"stopped" in out
    assert lines(snapshot(work / "lake")) == 36  # the six full files; the partial ones are left to replay
    assert all(log.committed(GROUP, t) == {0: 6, 1: 6} for t in topics)
    log.close()
    done = subprocess.run([*cmd, "--until-idle"], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 0
    lake = snapshot(work / "lake")
    assert lines(lake) == 42 and len(lake) == 12
