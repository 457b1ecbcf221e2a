"""The ingest -> log -> lake path as many processes on a three-broker Kafka cluster, under failures.

Two ``pinpipe api serve`` replicas, the emulator over both (``--seed 100 --iterations 2524 --no-sleep
--mode both`` on the real data) and two ``pinpipe sink run`` workers in one group; while the emulator runs,
one broker, one API replica and one sink worker are killed with ``kill -9`` (the replica and the worker
started again). Afterwards the lake holds every topic's records exactly once, the same multiset as the
emulator's dry run and as an embedded single-process ``pinpipe demo`` of the same iterations (the
session's ``aicore_demo``); ``pinpipe batch run`` exports the demo's ten CSVs byte for byte; the stream
tables hold every iteration once.

The kills happen at fixed shares of the records acknowledged so far (the topics' end offsets), each
checked to land while the emulator still runs, not after a sleep that could fall past its end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from pinpipe.errors import LogError
from pinpipe.lake.formats import format_of_key, parse_key
from pinpipe.lake.store import FileStore
from pinpipe.locations import file_url
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import DEFAULT_PREFIX, KINDS, stream_names, topic_name, topic_names
from tests.conftest import AicoreDemo
from tests.e2e.pipeline_cli import (
    ApiProcess,
    PinpipeProcess,
    assert_stream_tables_hold,
    canonical,
    clean_env,
    expected_rows,
    expected_values,
    lake_values,
    load_aicore,
    location_flags,
    pinpipe,
    settings_for,
)
from tests.services import InfraService

ITERATIONS = 2524
RECORDS = 2 * len(KINDS) * ITERATIONS
"""Acknowledged records of the whole run: every iteration's row of each kind to its topic and stream."""
KILL_AT = {"broker": 0.10, "api replica": 0.25, "sink worker": 0.40}
"""Share of RECORDS acknowledged when each kill happens (in this order)."""
FLUSH = 50
ROTATE_S, IDLE_FLUSH_S = 2.0, 1.0
"""Sink workers write an object every 50 records or 2 s of record time, so they write everything
(nothing waits for an --until-idle run) and a killed one dies in the middle of its objects."""

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def acknowledged(log: KafkaLog, prefix: str, last: int) -> int:
    """Records in the six topics now (``last`` while a dead broker's partitions have no leader yet)."""
    try:
        names = [*topic_names(prefix).values(), *stream_names(prefix).values()]
        return sum(sum(log.end_offsets(name).values()) for name in names)
    except LogError:
        return last


class LakeCount:
    """Records in the lake objects of a prefix's topics; each object is read once (objects never change)."""

    def __init__(self, lake: Path, prefix: str) -> None:
        self.store = FileStore(file_url(lake))
        self.topics = set(topic_names(prefix).values())
        self.counted: dict[str, int] = {}

    def __call__(self) -> int:
        for key in self.store.list():
            parsed = parse_key(key)
            if key not in self.counted and parsed is not None and parsed[0] in self.topics:
                self.counted[key] = format_of_key(key).count(self.store.get(key))
        return sum(self.counted.values())


def wait_until(
    done: Callable[[], bool], what: str, timeout: float, running: dict[str, subprocess.Popen[bytes] | None]
) -> None:
    """Wait for ``done()``; fails at ``timeout`` or when one of the ``running`` processes has ended."""
    deadline = time.monotonic() + timeout
    while not done():
        for name, process in running.items():
            assert process is not None and process.poll() is None, f"the {name} ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_cluster_with_kills_matches_one_embedded_process(
    tmp_path: Path, aicore: Path, kafka_cluster: InfraService, aicore_demo: AicoreDemo
) -> None:
    started = time.monotonic()
    env = clean_env(tmp_path)
    prefix = uuid.uuid4().hex[:12]  # fresh topics on the session's cluster
    log_url = f"kafka://{kafka_cluster.endpoint}"
    work = tmp_path / "cluster"
    flags = location_flags(work, log=log_url, prefix=prefix)
    load_aicore(flags, aicore, env)
    expected = expected_rows(flags, ITERATIONS, env)
    assert len(expected) == ITERATIONS

    sink_args = [
        "sink", "run", *flags, "-q", "--flush-size", str(FLUSH),
        "--rotate-interval", str(ROTATE_S), "--idle-flush", str(IDLE_FLUSH_S),
    ]  # fmt: skip
    apis = [ApiProcess(flags, env, tmp_path / f"api-{n}.log") for n in (1, 2)]
    workers = [
        PinpipeProcess([*sink_args, "--group-instance-id", f"sink-{n}"], env, tmp_path / f"sink-{n}.log")
        for n in (1, 2)
    ]
    broker_pid = kafka_cluster.pids()[0]
    broker_back: Future[str] | None = None
    broker_killed = False
    lake = work / "lake"
    restarter = ThreadPoolExecutor(1)
    admin = KafkaLog(log_url)
    emulator_out = tmp_path / "emulate.out"
    with contextlib.ExitStack() as stack:
        for process in (*apis, *workers):
            stack.enter_context(process)
        ready_s = time.monotonic() - started
        run_id = "cluster" + uuid.uuid4().hex[:6]
        with emulator_out.open("wb") as out:
            emulator = subprocess.Popen(
                [
                    sys.executable, "-m", "pinpipe", "emulate", *flags,
                    "--api", ",".join(api.url for api in apis),
                    "--seed", "100", "--iterations", str(ITERATIONS), "--no-sleep", "--mode", "both",
                    "--run-id", run_id, "--max-retries", "30", "--no-progress",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        stack.callback(emulator.kill)  # a no-op once it has ended
        try:
            killed_at: dict[str, float] = {}
            progress = 0

            def reached(share: float) -> bool:
                nonlocal progress
                progress = acknowledged(admin, prefix, progress)
                return progress >= share * RECORDS

            for victim, share in KILL_AT.items():
                wait_until(lambda: reached(share), f"the {victim} kill", 600, {"emulator": emulator})  # noqa: B023
                killed_at[victim] = round(time.monotonic() - started, 1)
                if victim == "broker":
                    os.kill(broker_pid, signal.SIGKILL)
                    broker_killed = True
                elif victim == "api replica":
                    apis[0].kill()
                    apis[0].start()  # same port: the emulator's list of replicas stays valid
                else:
                    workers[0].kill()
                    workers[0].start()  # same group instance id: its partitions come back to it
            emulator.wait(timeout=900)
            emulated_s = time.monotonic() - started
            out_text = emulator_out.read_text()
            assert emulator.returncode == 0, out_text
            assert "errors: 0" in out_text, out_text
            broker_back = restarter.submit(kafka_cluster.start)  # the operator brings it back

            workers_running = {f"sink worker {n}": w.process for n, w in enumerate(workers, 1)}
            everything = len(KINDS) * ITERATIONS
            lake_count = LakeCount(lake, prefix)
            wait_until(lambda: lake_count() >= everything, "the lake", 300, workers_running)
            for worker in workers:
                assert worker.stop() == 0, worker.output()[-3000:]
            sunk_s = time.monotonic() - started
        finally:
            admin.close()
            if broker_killed and broker_back is None:  # the session's later tests need three brokers
                kafka_cluster.start()
            restarter.shutdown(wait=False)

    streamed = pinpipe("stream", "run", *flags, "--until-idle", "--quiet", env=env)
    pinpipe("batch", "run", *flags, "--export", str(tmp_path / "E"), "--quiet", env=env)
    assert broker_back is not None and broker_back.result(timeout=300) == kafka_cluster.endpoint
    print(
        f"\ncluster run: ready {ready_s:.1f}s, kills at {killed_at} s, emulator done {emulated_s:.1f}s, "
        f"lake complete {sunk_s:.1f}s, all done {time.monotonic() - started:.1f}s\n"
        f"emulator: {out_text.strip()}\nstream: {streamed.stdout.strip()}"
    )

    reference = aicore_demo.workdir
    for kind in KINDS:
        want = expected_values(expected, kind)
        in_lake = Counter(canonical(v) for v in lake_values(lake, topic_name(prefix, kind)))
        assert in_lake == want, f"{kind}: lake {sum(in_lake.values())} records, {sum(want.values())} expected"
        embedded_lake = lake_values(reference / "lake", topic_name(DEFAULT_PREFIX, kind))
        assert Counter(canonical(v) for v in embedded_lake) == want, f"{kind}: the embedded lake differs"
    assert_stream_tables_hold(settings_for(work, prefix), expected)
    names = sorted(p.name for p in aicore_demo.export.glob("*.csv"))
    assert len(names) == 10
    assert sorted(p.name for p in (tmp_path / "E").glob("*.csv")) == names
    for name in names:
        ours = (tmp_path / "E" / name).read_bytes()
        assert ours.count(b"\n") > 1, f"{name} is empty"
        assert ours == (aicore_demo.export / name).read_bytes(), f"{name} differs from the embedded run's"
