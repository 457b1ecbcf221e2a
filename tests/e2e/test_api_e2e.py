"""The ingestion path as a user runs it: ``pinpipe api serve`` on the embedded log, ``pinpipe source load``
of the real data, ``pinpipe emulate``, ``pinpipe status --json``; and the server killed with ``kill -9``
mid-run, restarted on the same port, with every acknowledged record in the log exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.schema import DEFAULT_PREFIX, KINDS, stream_names, topic_names
from tests.processes import ApiServer, clean_env, free_port

pytestmark = pytest.mark.slow


def pinpipe(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"pinpipe {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def loaded(tmp_path: Path, aicore: Path) -> tuple[Path, dict[str, str]]:
    workdir = tmp_path / "work"
    env = clean_env(tmp_path)
    pinpipe(
        "source", "load", "--workdir", str(workdir), "--no-progress",
        "--pin", str(aicore / "pinterest_data.jsonl"),
        "--geo", str(aicore / "geolocation_data.csv"),
        "--user", str(aicore / "user_data.csv"),
        env=env,
    )  # fmt: skip
    return workdir, env


def test_emulate_500_both_ways_then_status(loaded: tuple[Path, dict[str, str]]) -> None:
    workdir, env = loaded
    server = ApiServer(workdir, free_port(), env)
    server.start()
    try:
        pinpipe(
            "emulate", "--workdir", str(workdir), "--seed", "100", "--iterations", "500", "--no-sleep",
            "--mode", "both", "--api", server.url, "--no-progress",
            env=env,
        )  # fmt: skip
        status = orjson.loads(pinpipe("status", "--workdir", str(workdir), "--json", env=env).stdout)
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    names = [*topic_names(DEFAULT_PREFIX).values(), *stream_names(DEFAULT_PREFIX).values()]
    for name in names:
        assert status["topics"][name]["records"] == 500, name
        assert f'pinpipe_api_records_total{{topic="{name}",status="ok"}} 500' in metrics


def expected_values(workdir: Path, env: dict[str, str], iterations: int) -> dict[str, Counter[bytes]]:
    """What the emulator sends, from its dry run: per topic, each record value as the log stores it."""
    lines = pinpipe(
        "emulate", "--workdir", str(workdir), "--seed", "100", "--iterations", str(iterations),
        "--no-sleep", "--dry-run", "--no-progress",
        env=env,
    ).stdout.splitlines()  # fmt: skip
    topics = topic_names(DEFAULT_PREFIX)
    expected: dict[str, Counter[bytes]] = {topics[k]: Counter() for k in KINDS}
    for line in lines:
        row = orjson.loads(line)
        for kind in KINDS:
            if row[kind] is not None:
                expected[topics[kind]][orjson.dumps(row[kind])] += 1
    assert sum(expected[topics["geo"]].values()) == iterations
    return expected


def stored_values(workdir: Path) -> dict[str, Counter[bytes]]:
    log = open_log(embedded_url(workdir / "log"))
    try:
        out = {}
        for topic in topic_names(DEFAULT_PREFIX).values():
            reader = log.reader("e2e-check", [topic])
            values: Counter[bytes] = Counter()
            while batch := reader.poll(10_000, 0.1):
                values.update(r.value for r in batch)
            reader.close()
            out[topic] = values
        return out
    finally:
        log.close()


def records_in_log(workdir: Path) -> int:
    log = open_log(embedded_url(workdir / "log"))
    try:
        topics = log.topics()
        return sum(
            sum(log.end_offsets(t).values()) for t in topic_names(DEFAULT_PREFIX).values() if t in topics
        )
    finally:
        log.close()


def test_kill_9_the_server_mid_run_every_acknowledged_record_once(
    loaded: tuple[Path, dict[str, str]],
) -> None:
    workdir, env = loaded
    iterations = 5_000
    expected = expected_values(workdir, env, iterations)
    goal = sum(sum(c.values()) for c in expected.values())
    server = ApiServer(workdir, free_port(), env)
    server.start()
    emulator = subprocess.Popen(
        [
            sys.executable, "-m", "pinpipe", "emulate", "--workdir", str(workdir), "--seed", "100",
            "--iterations", str(iterations), "--no-sleep", "--mode", "batch", "--api", server.url,
            "--run-id", "e2e-kill", "--max-retries", "30", "--no-progress",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    kills = 0
    try:
        for fraction in (0.25, 0.6):
            deadline = time.monotonic() + 120
            while records_in_log(workdir) < goal * fraction:
                assert emulator.poll() is None, "the emulator finished before the kill"
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.05)
            server.kill9()
            kills += 1
            time.sleep(0.5)  # requests fail meanwhile: the emulator backs off and retries
            server.start()
        output, _ = emulator.communicate(timeout=240)
    finally:
        if emulator.poll() is None:
            emulator.kill()
        server.stop()
    assert emulator.returncode == 0, output
    assert kills == 2
    stored = stored_values(workdir)
    for topic, values in expected.items():
        duplicates = {v: n for v, n in stored[topic].items() if n > values[v]}
        assert not duplicates, f"{topic}: {len(duplicates)} records stored more often than sent"
        assert stored[topic] == values, (
            f"{topic}: {sum(stored[topic].values())} stored, {sum(values.values())} sent"
        )
