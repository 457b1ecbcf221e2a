"""Two ``pinpipe api serve`` processes on one Kafka broker behave as one API for idempotency keys.

Many threads send the same keys at the same moment to both replicas: every key is stored once and every
answer for a key carries the same offsets; the key with another body is refused (42207); a replica
``kill -9``-ed right after winning a key's claim (the test-only fault point of
:mod:`pinpipe.log.kafka.claims`) leaves the key retryable at the other replica, and it is stored once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pinpipe.config import KILL_AFTER_CLAIM
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import topic_name
from tests.e2e.pipeline_cli import ApiProcess, clean_env

pytestmark = pytest.mark.kafka

KAFKA_JSON = {"Content-Type": "application/vnd.kafka.json.v2+json"}
KEYS = 40
SENDS_PER_KEY = 8  # half to each replica, all at once
TIMEOUT_S = 3  # the replicas' Kafka timeout: claim lease 3 + 3 + 1.5 s


def body(key: int, variant: int = 0) -> bytes:
    """Two user records per request (the second carries the derived event id ``["P","K",1]``)."""
    records = [{"value": {"ind": key, "age": variant}}, {"value": {"ind": key, "age": 1000 + variant}}]
    return orjson.dumps({"records": records})


def send(url: str, topic: str, key: str, content: bytes, until: float) -> httpx.Response:
    """POST with the key, retrying 503s (Retry-After) as the emulator does, until ``until``."""
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            headers = {**KAFKA_JSON, "Idempotency-Key": key}
            response = http.post(f"/topics/{topic}", content=content, headers=headers)
            if response.status_code != 503 or time.monotonic() > until:
                return response
            time.sleep(0.2)


@pytest.fixture
def replicas(kafka_bootstrap: str, tmp_path: Path) -> Any:
    prefix = uuid.uuid4().hex[:12]
    log = f"kafka://{kafka_bootstrap}?timeout_s={TIMEOUT_S}"
    env = clean_env(tmp_path)
    flags = ["--log", log, "--prefix", prefix]
    doomed = ApiProcess(
        [*flags, "--workdir", str(tmp_path / "a")], {**env, KILL_AFTER_CLAIM: "doomed"}, tmp_path / "a.log"
    )
    other = ApiProcess([*flags, "--workdir", str(tmp_path / "b")], env, tmp_path / "b.log")
    with doomed, other:
        yield doomed, other, topic_name(prefix, "user")


def stored(bootstrap: str, topic: str) -> Counter[bytes]:
    """Every record value in ``topic``, read until the count reaches the topic's end offsets."""
    with KafkaLog(f"kafka://{bootstrap}") as log:
        total = sum(log.end_offsets(topic).values())
        reader = log.reader(f"test-{uuid.uuid4().hex}", [topic])
        values: Counter[bytes] = Counter()
        deadline = time.monotonic() + 30
        while sum(values.values()) < total and time.monotonic() < deadline:
            values.update(r.value for r in reader.poll(10_000, 0.5))
        return values


def test_replicas_store_each_key_once_under_concurrent_retries(kafka_bootstrap: str, replicas: Any) -> None:
    a, b, topic = replicas
    run = uuid.uuid4().hex[:8]
    answers: dict[int, list[httpx.Response]] = {k: [] for k in range(KEYS)}
    lock = threading.Lock()
    until = time.monotonic() + 60

    def one(key: int, i: int) -> None:
        response = send((a, b)[i % 2].url, topic, f"{run}-{key}", body(key), until)
        with lock:
            answers[key].append(response)

    with ThreadPoolExecutor(SENDS_PER_KEY * 4) as pool:
        for f in [pool.submit(one, k, i) for k in range(KEYS) for i in range(SENDS_PER_KEY)]:
            f.result()

    for key, responses in answers.items():
        assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
        offsets = {orjson.dumps(r.json()["offsets"]) for r in responses}
        assert len(offsets) == 1, f"key {key} answered with different offsets: {offsets}"
    values = stored(kafka_bootstrap, topic)
    expected = Counter(
        orjson.dumps(r["value"]) for k in range(KEYS) for r in orjson.loads(body(k))["records"]
    )
    duplicated = {v: n for v, n in values.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} records stored more than once, e.g. {next(iter(duplicated))!r}"
    assert values == expected

    # the same key with another body, at either replica: refused, nothing stored
    for replica in (a, b):
        refused = send(replica.url, topic, f"{run}-0", body(0, variant=7), until)
        assert refused.status_code == 422 and refused.json()["error_code"] == 42207
    assert stored(kafka_bootstrap, topic) == expected


def test_a_replica_killed_between_claim_and_write_leaves_the_key_to_the_other(
    kafka_bootstrap: str, replicas: Any
) -> None:
    a, b, topic = replicas
    key = f"doomed-{uuid.uuid4().hex[:8]}"
    with pytest.raises(httpx.TransportError):  # replica A wins the claim and dies before writing
        send(a.url, topic, key, body(7), time.monotonic() + 30)
    assert a.process.wait(timeout=10) == -9
    started = time.monotonic()
    response = send(b.url, topic, key, body(7), started + 60)
    assert response.status_code == 200, response.text
    waited = time.monotonic() - started
    assert stored(kafka_bootstrap, topic) == Counter(
        orjson.dumps(r["value"]) for r in orjson.loads(body(7))["records"]
    )
    # a retry is answered from the topic, with the same offsets
    again = send(b.url, topic, key, body(7), time.monotonic() + 30)
    assert again.json()["offsets"] == response.json()["offsets"]
    assert waited < 30, f"the other replica took over after {waited:.1f}s"
