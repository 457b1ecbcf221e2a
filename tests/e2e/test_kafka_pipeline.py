"""The pipeline on a real Kafka broker: ``pinpipe demo --log kafka://<bootstrap> --load-dir <aicore>
--seed 100 --iterations 2524 --no-sleep --export E`` writes the same ten outputs, byte for byte, as the same
demo on the embedded log; a broker outage during an emulator run and a ``kill -9`` of the lake sink lose and
duplicate nothing."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pinpipe.delta import read_table
from pinpipe.lake.sink import GROUP, LakeSink, SinkOptions
from pinpipe.lake.store import FileStore
from pinpipe.locations import file_url
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka.idempotency import HEADER
from pinpipe.schema import KINDS, topic_name, topic_names
from pinpipe.tables import stream_table
from tests.conftest import AicoreDemo
from tests.e2e.pipeline_cli import (
    ApiProcess,
    PinpipeProcess,
    canonical,
    clean_env,
    expected_rows,
    free_port,
    lake_values,
    load_aicore,
    location_flags,
    pinpipe,
    settings_for,
    start_demo,
)
from tests.services import InfraService

ITERATIONS = 2524
"""The original's replay length (seed100_replay_first2524.jsonl): every draw finds a row in all tables."""
OUTPUTS = 10

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_on_kafka_writes_the_embedded_outputs(
    tmp_path: Path, aicore: Path, kafka_bootstrap: str, aicore_demo: AicoreDemo
) -> None:
    env = clean_env(tmp_path)
    prefix = uuid.uuid4().hex[:12]  # fresh topics on the session broker
    kafka_log = ("--log", f"kafka://{kafka_bootstrap}", "--prefix", prefix)
    kafka = tmp_path / "kafka"
    started = time.monotonic()
    demo = start_demo(kafka, aicore, env, ITERATIONS, *kafka_log)
    try:
        demo.wait(timeout=900)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    kafka_out = (kafka / "demo.out").read_text()
    assert demo.returncode == 0, kafka_out[-5000:]
    print(f"\ndemo {ITERATIONS} iterations on Kafka: {time.monotonic() - started:.1f}s")
    print("kafka " + next(line.strip() for line in kafka_out.splitlines() if "stages:" in line))

    for out in (kafka_out, aicore_demo.output):  # the embedded reference: the session's aicore_demo
        assert f"{ITERATIONS} iterations; sent {ITERATIONS}" in out, out[-3000:]
        assert f"exported {OUTPUTS} CSV files" in out, out[-3000:]
    assert f"kafka://{kafka_bootstrap}" in kafka_out
    names = sorted(p.name for p in aicore_demo.export.glob("*.csv"))
    assert len(names) == OUTPUTS
    assert sorted(p.name for p in (kafka / "E").glob("*.csv")) == names
    for name in names:
        left, right = (kafka / "E" / name).read_bytes(), (aicore_demo.export / name).read_bytes()
        assert left.count(b"\n") > 1, f"{name} is empty"
        assert left == right, f"{name} differs between the Kafka and the embedded demo"


# --- broker outage during a 5,000-iteration emulator run ------------------------------------------------

OUTAGE_ITERATIONS = 5000


def topic_records(bootstrap: str, topic: str) -> list[tuple[bytes, str | None]]:
    """(value, idempotency key header) of every record of a Kafka topic, read from the start."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-verify-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining, out = set(partitions), []
        while remaining:
            msg: Any = consumer.poll(10)
            assert msg is not None, f"reading {topic} timed out"
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                remaining.discard(msg.partition())
                continue
            headers = dict(msg.headers() or ())
            ikey = headers.get(HEADER)
            out.append((msg.value(), ikey.decode() if ikey is not None else None))
        return out
    finally:
        consumer.close()


def produce_probe(api_url: str, topic: str) -> httpx.Response:
    body = {"records": [{"value": {"probe": True}}]}
    return httpx.post(
        f"{api_url}/topics/{topic}",
        json=body,
        headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
        timeout=60,
    )


def wait_for_records(log: KafkaLog, topic: str, at_least: int, emulator: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 600
    while sum(log.end_offsets(topic).values()) < at_least:
        assert emulator.poll() is None, "the emulator ended before the outage"
        assert time.monotonic() < deadline, f"{topic} did not reach {at_least} records"
        time.sleep(0.5)


def test_broker_outage_during_emulation(
    tmp_path: Path, aicore: Path, kafka_bootstrap: str, infra_state_dir: Path
) -> None:
    env = clean_env(tmp_path)
    prefix = uuid.uuid4().hex[:12]
    log_url = f"kafka://{kafka_bootstrap}"
    flags = location_flags(tmp_path / "work", log=log_url, prefix=prefix)
    load_aicore(flags, aicore, env)
    expected = expected_rows(flags, OUTAGE_ITERATIONS, env)
    run_id = "outage" + uuid.uuid4().hex[:6]
    broker = InfraService("kafka", infra_state_dir)
    probe_topic = f"{prefix}.probe"  # not a pipeline topic: the probes never mix with the emulated rows
    admin = KafkaLog(log_url)
    admin.create_topic(probe_topic, 1)

    started = time.monotonic()
    emulator_out = tmp_path / "emulate.out"
    streaming = PinpipeProcess(["stream", "run", *flags, "--quiet"], env, tmp_path / "stream.log")
    with (
        ApiProcess(flags, env, tmp_path / "api.log") as api,
        streaming,  # runs through the outage
        emulator_out.open("w+") as out_file,
    ):
        assert produce_probe(api.url, probe_topic).status_code == 200
        emulator = subprocess.Popen(
            [
                sys.executable, "-m", "pinpipe", "emulate", *flags, "--api", api.url, "--mode", "both",
                "--iterations", str(OUTAGE_ITERATIONS), "--no-sleep", "--no-progress",
                "--run-id", run_id, "--max-retries", "30",
            ],
            env=env, stdout=out_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_records(admin, topic_name(prefix, "user"), OUTAGE_ITERATIONS // 4, emulator)
            admin.close()
            down_at = time.monotonic()
            broker.stop()
            try:
                stopped_s = time.monotonic() - down_at
                asked = time.monotonic()
                refused = produce_probe(api.url, probe_topic)
                refused_s = time.monotonic() - asked
                assert refused.status_code == 503, refused.text
                assert refused.json()["error_code"] == 50003
                assert float(refused.headers["Retry-After"]) > 0
                time.sleep(5)  # the emulator keeps retrying against the 503s
                assert emulator.poll() is None, emulator_out.read_text()
            finally:
                assert broker.start() == kafka_bootstrap  # same state dir: same address, same data
            outage_s = time.monotonic() - down_at
            emulator.wait(timeout=1200)
            assert streaming.stop() == 0, streaming.output()[-3000:]  # still running, stops cleanly
        finally:
            if emulator.poll() is None:
                emulator.kill()
                emulator.wait()
    emulated_s = time.monotonic() - started
    out = emulator_out.read_text()
    assert emulator.returncode == 0, out
    assert "errors: 0" in out and "retries: 0" not in out, out
    print(
        f"\noutage: broker stop {stopped_s:.1f}s, 503 after {refused_s:.1f}s, down {outage_s:.1f}s; "
        f"emulate {OUTAGE_ITERATIONS} (both) {emulated_s:.1f}s: {out.strip()}"
    )

    started = time.monotonic()
    pinpipe("sink", "run", *flags, "--until-idle", "-q", env=env)
    sunk_s = time.monotonic() - started
    streamed = pinpipe("stream", "run", *flags, "--until-idle", "--quiet", env=env)
    print(f"sink {sunk_s:.1f}s; {streamed.stdout.strip()} ({time.monotonic() - started - sunk_s:.1f}s)")

    settings = settings_for(tmp_path / "work", prefix)
    for kind in KINDS:
        steps = [i for i, row in enumerate(expected) if row[kind] is not None]
        want = Counter(canonical(expected[i][kind]) for i in steps)
        topic = topic_name(prefix, kind)
        # the topic: one record per iteration (idempotency keys), nothing lost, nothing twice
        in_topic = topic_records(kafka_bootstrap, topic)
        # event ids are ["<API key name>","<Idempotency-Key>"] for one-record requests
        ikeys = Counter(json.loads(ikey)[1] for _, ikey in in_topic if ikey is not None)
        assert sum(ikeys.values()) == len(in_topic), f"{topic}: records without an idempotency key"
        twice = {k: n for k, n in ikeys.items() if n > 1}
        assert not twice, f"{topic}: {len(twice)} idempotency keys stored twice, e.g. {list(twice)[:5]}"
        assert set(ikeys) == {f"{run_id}-{i}-{kind}" for i in steps}
        # the lake and the stream table: every iteration exactly once
        in_lake = Counter(canonical(v) for v in lake_values(settings.workdir / "lake", topic))
        assert in_lake == want, f"{topic}: lake {sum(in_lake.values())} records, {len(steps)} expected"
        table = read_table(stream_table(settings, kind))
        assert table.num_rows == len(steps)
        key = "index" if kind == "pin" else "ind"
        assert Counter(table.column("ind").to_pylist()) == Counter(expected[i][kind][key] for i in steps)
    assert len(topic_records(kafka_bootstrap, probe_topic)) == 1  # the refused probe was not written


# --- kill -9 of the lake sink on Kafka ---------------------------------------------------------------------

SINK_RECORDS = 4000
"""Per topic."""
MIN_SINK_KILLS = 5
SINK_FLUSH = 7


def fill_topics(log: KafkaLog, prefix: str, aicore: Path) -> None:
    """Real pin rows (recycled to the count, tagged per kind) into the three batch topics, key-hashed."""
    rows = [orjson.loads(line) for line in (aicore / "pinterest_data.jsonl").read_bytes().splitlines()]
    writer = log.writer()
    rng = random.Random(5)
    for kind, topic in topic_names(prefix).items():
        log.create_topic(topic, 3)
        for start in range(0, SINK_RECORDS, 500):
            batch = [
                OutgoingRecord(
                    orjson.dumps(dict(rows[i % len(rows)], kind=kind, n=i)),
                    key=str(rng.randint(0, 11_000)).encode(),
                )
                for i in range(start, min(start + 500, SINK_RECORDS))
            ]
            writer.append(topic, batch)


def lake_snapshot(lake: Path) -> dict[str, bytes]:
    store = FileStore(file_url(lake))
    return {key: store.get(key) for key in store.list()}


def lake_objects(lake: Path) -> int:
    return sum(1 for _ in lake.glob("topics/*/partition=*/*.json"))


def test_sink_kill_9_on_kafka(tmp_path: Path, aicore: Path, kafka_bootstrap: str) -> None:
    env = clean_env(tmp_path)
    prefix = uuid.uuid4().hex[:12]
    log_url = f"kafka://{kafka_bootstrap}"
    with KafkaLog(log_url) as log:
        fill_topics(log, prefix, aicore)
    workdir = tmp_path / "killed"
    lake = workdir / "lake"
    command = [
        sys.executable, "-m", "pinpipe", "sink", "run", *location_flags(workdir, log_url, prefix),
        "--until-idle", "--flush-size", str(SINK_FLUSH), "-q",
    ]  # fmt: skip

    rng = random.Random(7)
    kills = mid_work = 0
    finished = False
    # Kill points are set by progress, not time (a fast hour once let 4 runs finish all the work): each
    # run is killed after a random number of new objects, up to a fifteenth of the whole lake.
    step = max(1, 3 * SINK_RECORDS // SINK_FLUSH // (3 * MIN_SINK_KILLS))
    started = time.monotonic()
    while not finished and mid_work < MIN_SINK_KILLS + 1 and time.monotonic() - started < 240:
        before = lake_objects(lake)
        target = before + rng.randint(1, step)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        early = rng.random() < 0.2  # now and then during start-up or recovery
        wait_s = rng.uniform(0.5, 3.0) if early else None
        began = time.monotonic()
        while proc.poll() is None:
            if wait_s is not None and (time.monotonic() - began >= wait_s or lake_objects(lake) > before):
                break  # an early kill lands before the run's first new object
            if wait_s is None and lake_objects(lake) >= target:
                time.sleep(rng.uniform(0.0, 0.05))  # anywhere in the write / commit cycle
                break
            time.sleep(0.01)
        if proc.poll() is None:
            grew = lake_objects(lake) > before
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            mid_work += grew
        else:
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            finished = True
        if proc.stderr is not None:
            proc.stderr.close()
    partial = len(lake_snapshot(lake))
    assert mid_work >= MIN_SINK_KILLS, f"only {mid_work} kills landed mid-work ({kills} in all)"
    pinpipe(*command[3:], env=env)  # restart to the end
    killed_s = time.monotonic() - started

    # the reference: one uninterrupted run over the same topics, as another group, into another lake
    clean = tmp_path / "clean" / "lake"
    started = time.monotonic()
    with (
        KafkaLog(log_url) as log,
        LakeSink(
            log,
            FileStore(file_url(clean)),
            list(topic_names(prefix).values()),
            SinkOptions(flush_size=SINK_FLUSH),
            group=f"e2e-reference-{prefix}",
        ) as sink,
    ):
        sink.run(until_idle=True)
    print(
        f"\nsink on Kafka: {kills} kills ({mid_work} mid-work, {partial} objects before the last run), "
        f"killed runs {killed_s:.1f}s, reference run {time.monotonic() - started:.1f}s"
    )

    killed, reference = lake_snapshot(lake), lake_snapshot(clean)
    assert len(reference) >= 3 * SINK_RECORDS // SINK_FLUSH
    assert sorted(killed) == sorted(reference)
    assert killed == reference
    with KafkaLog(log_url) as log:
        for topic in topic_names(prefix).values():
            values = [value for value, _ in topic_records(kafka_bootstrap, topic)]
            assert len(values) == SINK_RECORDS
            assert Counter(lake_values(lake, topic)) == Counter(values)  # exactly once
            assert log.committed(GROUP, topic) == log.end_offsets(topic)


# --- librdkafka settings from configuration reach every stage ---------------------------------------------


def test_log_kafka_settings_reach_every_command(tmp_path: Path, kafka_bootstrap: str) -> None:
    """``PINPIPE_LOG__KAFKA`` (how SASL/SSL for MSK is passed, docs/kafka.md) reaches the producer, consumer
    and admin clients of the API, the sink, the stream processor and status: an unknown librdkafka property
    makes each of them fail, naming it."""
    env = {**clean_env(tmp_path), "PINPIPE_LOG__KAFKA": json.dumps({"pinpipe.no.such.property": "1"})}
    flags = location_flags(tmp_path / "work", f"kafka://{kafka_bootstrap}", uuid.uuid4().hex[:12])
    port = str(free_port())
    for command in (
        ["api", "serve", *flags, "--port", port],
        ["sink", "run", *flags, "--until-idle", "-q"],
        ["stream", "run", *flags, "--until-idle", "--quiet"],
        ["status", *flags, "--json"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pinpipe", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0, f"pinpipe {command[0]} ignored log.kafka:\n{done.stdout}"
        assert "pinpipe.no.such.property" in done.stdout + done.stderr, done.stderr[-2000:]
