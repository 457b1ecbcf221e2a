"""kill -9 the lake sink at random points, restart it each time: the lake ends exactly once and
byte-identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pinpipe.lake.formats import parse_key
from pinpipe.lake.sink import GROUP
from pinpipe.lake.store import FileStore
from pinpipe.locations import embedded_url, file_url
from pinpipe.log import open_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import DEFAULT_PREFIX, topic_names
from tests.aicore import read_jsonl

RECORDS_PER_TOPIC = 5_000
MIN_KILLS = 20
SINK_FLAGS = ["--until-idle", "--flush-size", "5", "--rotate-interval", "0.2", "--idle-flush", "0", "-q"]
pytestmark = pytest.mark.slow


def fill_log(workdir: Path, aicore: Path) -> None:
    """Real geo/user rows and pin rows (recycled to the count) into the embedded log, in batches."""
    rows = read_jsonl(aicore / "pinterest_data.jsonl")
    log = open_log(embedded_url(workdir / "log"), partitions=3)
    writer = log.writer()
    rng = random.Random(11)
    for kind, topic in topic_names(DEFAULT_PREFIX).items():
        log.create_topic(topic, 3)
        batch = []
        for i in range(RECORDS_PER_TOPIC):
            row = dict(rows[i % len(rows)], kind=kind, n=i)
            batch.append(OutgoingRecord(orjson.dumps(row), key=str(rng.randint(0, 11_000)).encode()))
            if len(batch) == 700:
                writer.append(topic, batch)
                batch = []
                time.sleep(0.05)  # spread record times so the rotate rule cuts files too
        writer.append(topic, batch)
    log.close()


def sink_command(workdir: Path) -> list[str]:
    return [sys.executable, "-m", "pinpipe", "sink", "run", "--workdir", str(workdir), *SINK_FLAGS]


def sink_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINPIPE_")}
    env["PINPIPE_CONFIG"] = str(tmp / "no-such.toml")
    return env


def count_objects(lake: Path) -> int:
    if not lake.exists():
        return 0
    return sum(
        1 for d in lake.glob("topics/*/partition=*") for f in os.scandir(d) if not f.name.startswith(".tmp-")
    )


def last_change(lake: Path) -> int:
    """Newest mtime of the partition folders: cheap to watch, moves whenever an object lands."""
    return max((d.stat().st_mtime_ns for d in lake.glob("topics/*/partition=*")), default=0)


def snapshot(lake: Path) -> dict[str, bytes]:
    store = FileStore(file_url(lake))
    return {key: store.get(key) for key in store.list()}


def test_sink_survives_random_kill_9(tmp_path: Path, aicore: Path) -> None:
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    fill_log(killed_dir, aicore)
    shutil.copytree(killed_dir / "log", clean_dir / "log")
    env = sink_env(tmp_path)
    rng = random.Random(2024)
    lake = killed_dir / "lake"

    kills = mid_work_kills = 0
    finished = False
    deadline = time.monotonic() + 90
    while not finished and (mid_work_kills < MIN_KILLS + 2) and time.monotonic() < deadline:
        before = last_change(lake)
        proc = subprocess.Popen(sink_command(killed_dir), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
        early = rng.random() < 0.15  # now and then die during start-up or recovery
        started = time.monotonic()
        wait_s = rng.uniform(0.0, 1.0) if early else None
        while proc.poll() is None:
            if wait_s is not None and (time.monotonic() - started >= wait_s or last_change(lake) > before):
                break  # an early kill lands before the life's first new object, never after a long run
            if wait_s is None and last_change(lake) > before:
                time.sleep(rng.uniform(0.0, 0.04))  # soon after progress: each life does a little work
                break
            time.sleep(0.01)
        if proc.poll() is None:
            grew = last_change(lake) > before
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            mid_work_kills += grew
        else:
            assert proc.returncode == 0
            finished = True
    print(
        f"\nsink kill -9: {kills} kills ({mid_work_kills} mid-work), "
        f"{count_objects(lake)} objects before the last run"
    )
    assert mid_work_kills >= MIN_KILLS, f"only {mid_work_kills} kills landed mid-work ({kills} in all)"

    # restart to completion, then an uninterrupted run on a copy of the same log
    for workdir in (killed_dir, clean_dir):
        done = subprocess.run(sink_command(workdir), cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()

    killed, clean = snapshot(lake), snapshot(clean_dir / "lake")
    assert len(clean) > 3 * RECORDS_PER_TOPIC // 5
    assert sorted(killed) == sorted(clean)
    assert killed == clean

    # every record of the log exactly once, in offset order, and the group committed to the end
    log = open_log(embedded_url(killed_dir / "log"))
    try:
        for topic in topic_names(DEFAULT_PREFIX).values():
            ends = log.end_offsets(topic)
            assert sum(ends.values()) == RECORDS_PER_TOPIC
            assert log.committed(GROUP, topic) == ends
            reader = log.reader("verify", [topic])
            expected: dict[int, list[bytes]] = {p: [] for p in ends}
            while batch := reader.poll(5_000, 0.05):
                for record in batch:
                    expected[record.partition].append(record.value + b"\n")
            reader.close()
            for p in ends:
                keys = sorted(k for k in killed if parse_key(k)[:2] == (topic, p))  # type: ignore[index]
                assert b"".join(killed[k] for k in keys) == b"".join(expected[p])
    finally:
        log.close()
