"""The broker goes down in the middle of an emulator run and comes back (issue 5, reliability).

A private broker (infra/kafka.sh on its own state dir), the API and the emulator as users run them (CLI
processes) on the real data. While the broker is down the API answers 503 with error code 50003 and
Retry-After; the emulator retries with the same Idempotency-Keys; afterwards each topic holds every
emitted record exactly once (checked by the idempotency key each record carries in its Kafka header),
and the lake sink writes exactly those records.

Iterations: PINPIPE_OUTAGE_ITERATIONS (default 1,000; the issue's 5,000 works the same, only slower).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka_idempotency import HEADER
from pinpipe.schema import KINDS, topic_name
from tests.services import InfraService, service_missing

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ITERATIONS = int(os.environ.get("PINPIPE_OUTAGE_ITERATIONS", "1000"))
PREFIX = "0a1b2c3d4e5f"
PINPIPE = str(Path(sys.executable).with_name("pinpipe"))


def cli(*args: str, workdir: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [PINPIPE, *args, "--workdir", str(workdir)], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"pinpipe {' '.join(args)}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return done.stdout


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def headers_by_topic(bootstrap: str) -> dict[str, list[str]]:
    """Every record's idempotency key, per topic, read straight from Kafka."""
    from confluent_kafka import Consumer, TopicPartition

    out: dict[str, list[str]] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}"})
    try:
        for kind in KINDS:
            topic = topic_name(PREFIX, kind)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions
            }
            consumer.assign([TopicPartition(topic, p, 0) for p in ends])
            keys: list[str] = []
            deadline = time.monotonic() + 60
            while len(keys) < sum(ends.values()) and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error():
                    continue
                keys.append(dict(msg.headers() or [])[HEADER].decode())
            consumer.unassign()
            out[kind] = keys
    finally:
        consumer.close()
    return out


def test_broker_outage_during_an_emulator_run_loses_and_duplicates_nothing(
    aicore: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    broker = InfraService("kafka", tmp_path / "infra")
    try:
        bootstrap = broker.start()
    except Exception as exc:  # the service fixtures' rule: fail (or skip only when explicitly allowed)
        service_missing(str(exc))
    api = emulator = None
    try:
        cli(
            "source", "load", "--no-progress",
            "--pin", str(aicore / "pinterest_data.jsonl"),
            "--geo", str(aicore / "geolocation_data.csv"),
            "--user", str(aicore / "user_data.csv"),
            workdir=workdir,
        )  # fmt: skip
        dry = cli(
            "emulate",
            "--dry-run",
            "--no-sleep",
            "--iterations",
            str(ITERATIONS),
            "--no-progress",
            workdir=workdir,
        )
        lines = [json.loads(line) for line in dry.splitlines() if line.startswith("{")]
        expected = {kind: sum(1 for line in lines if line.get(kind) is not None) for kind in KINDS}
        assert len(lines) == ITERATIONS and all(expected.values())

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api_log = open(tmp_path / "api.log", "wb")  # noqa: SIM115
        api = subprocess.Popen(
            [
                PINPIPE,
                "api",
                "serve",
                "--log",
                f"kafka://{bootstrap}",
                "--workdir",
                str(workdir),
                "--port",
                str(port),
            ],
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            assert api.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "API not ready"
            time.sleep(0.2)

        emulator = subprocess.Popen(
            [PINPIPE, "emulate", "--iterations", str(ITERATIONS), "--no-sleep", "--no-progress", "--api", url,
             "--run-id", "outage", "--max-retries", "60", "--workdir", str(workdir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        log = KafkaLog(f"kafka://{bootstrap}", timeout_s=5)
        pin_topic = topic_name(PREFIX, "pin")
        while sum(log.end_offsets(pin_topic).values()) < expected["pin"] // 5:
            assert emulator.poll() is None, emulator.stdout.read() if emulator.stdout else ""
            time.sleep(0.2)
        log.close()

        broker.stop()  # the outage
        body = {"records": [{"value": lines[0]["pin"]}]}
        started = time.monotonic()
        refused = httpx.post(
            f"{url}/topics/{pin_topic}",
            json=body,
            headers={"Content-Type": "application/vnd.kafka.json.v2+json", "Idempotency-Key": "outage-probe"},
            timeout=60,
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["error_code"] == 50003
        assert "Retry-After" in refused.headers
        assert time.monotonic() - started < 30
        assert emulator.poll() is None  # still retrying
        assert broker.start() == bootstrap

        out, _ = emulator.communicate(timeout=900)
        assert emulator.returncode == 0, out[-3000:]

        keys = headers_by_topic(bootstrap)
        for kind in KINDS:
            counts = Counter(keys[kind])
            assert not [k for k, n in counts.items() if n > 1], f"{kind}: duplicated records"
            emitted = [k for k in counts if k.startswith("outage-")]
            assert len(emitted) == expected[kind], f"{kind}: {len(emitted)} records, {expected[kind]} emitted"

        cli("sink", "run", "--log", f"kafka://{bootstrap}", "--until-idle", workdir=workdir, timeout=600)
        for kind in KINDS:
            lines_in_lake = sum(
                len(path.read_bytes().splitlines())
                for path in (workdir / "lake" / "topics" / topic_name(PREFIX, kind)).rglob("*.json")
            )
            assert lines_in_lake == len(keys[kind]), f"{kind}: lake has {lines_in_lake} records"
    finally:
        for proc in (emulator, api):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        broker.stop()
