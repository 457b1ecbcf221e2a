"""kill -9 of ``pinpipe api serve`` while 64 clients each post one record per request (the original's load
shape, where concurrent requests share group commits): every acknowledged record is in the log exactly
once, at the position its answer gave; the requests that were in flight, retried with the same
Idempotency-Key after a restart, are stored once too (either already there, or now). On the embedded log
and on Kafka, where the requests arriving together share their idempotency claims and produce round trips."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.schema import topic_name
from tests.processes import ApiServer, clean_env, free_port

pytestmark = pytest.mark.slow

CLIENTS = 64
KILL_AFTER = 600
"""Acknowledged requests before the kill."""
HEADERS = {"Content-Type": "application/vnd.kafka.json.v2+json"}

Request = tuple[str, bytes]
"""(Idempotency-Key, body)"""


def request_of(client: int, n: int) -> Request:
    ind = client * 1_000_000 + n
    value = {
        "ind": ind,
        "timestamp": "2022-06-01 12:00:00",
        "latitude": 1.0,
        "longitude": 2.0,
        "country": "x",
    }
    return f"kill-{ind}", orjson.dumps({"records": [{"value": value}]})


async def post(http: httpx.AsyncClient, topic: str, request: Request) -> httpx.Response:
    key, body = request
    return await http.post(f"/topics/{topic}", content=body, headers={**HEADERS, "Idempotency-Key": key})


def placed(response: httpx.Response) -> tuple[int, int]:
    assert response.status_code == 200, response.text
    (offset,) = response.json()["offsets"]
    assert offset["error_code"] is None, offset
    return offset["partition"], offset["offset"]


async def load_until_killed(
    server: ApiServer, topic: str, acked: dict[str, tuple[int, int]], in_flight: list[Request]
) -> None:
    """Run the clients; kill the server after KILL_AFTER acknowledgements; each client stops at its first
    failed request and leaves it in ``in_flight``."""

    async def client(http: httpx.AsyncClient, c: int) -> None:
        n = 0
        while True:
            request = request_of(c, n)
            try:
                acked[request[0]] = placed(await post(http, topic, request))
            except httpx.HTTPError:
                in_flight.append(request)
                return
            n += 1

    async def killer() -> None:
        deadline = time.monotonic() + 120
        while len(acked) < KILL_AFTER:
            assert time.monotonic() < deadline, f"only {len(acked)} acknowledged in 120 s"
            await asyncio.sleep(0.01)
        server.kill9()

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
        await asyncio.gather(killer(), *(client(http, c) for c in range(CLIENTS)))


async def retry(url: str, topic: str, requests: list[Request]) -> list[tuple[int, int]]:
    """Each request again with its Idempotency-Key, again after a 503 as its Retry-After asks: on Kafka a
    key whose claim the killed process had won waits for that claim's lease (about 25 s)."""

    async def again(http: httpx.AsyncClient, request: Request) -> tuple[int, int]:
        deadline = time.monotonic() + 90
        while (response := await post(http, topic, request)).status_code == 503:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        return placed(response)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await asyncio.gather(*(again(http, r) for r in requests))


def stored(url: str, topic: str) -> dict[str, list[tuple[int, int]]]:
    """The Idempotency-Key each stored value was sent with, and every position the value has in the log."""
    log = open_log(url)
    try:
        total = sum(log.end_offsets(topic).values())
        reader = log.reader(f"kill-check-{uuid.uuid4().hex[:8]}", [topic])
        found: dict[str, list[tuple[int, int]]] = {}
        deadline = time.monotonic() + 60
        while sum(map(len, found.values())) < total and time.monotonic() < deadline:
            for r in reader.poll(10_000, 0.5):
                key = f"kill-{orjson.loads(r.value)['ind']}"
                found.setdefault(key, []).append((r.partition, r.offset))
        return found
    finally:
        log.close()


@pytest.mark.parametrize("backend", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_kill_9_during_64_client_single_record_run(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    workdir = tmp_path / "work"
    env = clean_env(tmp_path)
    prefix = uuid.uuid4().hex[:12]
    env["PINPIPE_PREFIX"] = prefix
    url = embedded_url(workdir / "log")
    if backend == "kafka":
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
        env["PINPIPE_LOG__URL"] = url
    topic = topic_name(prefix, "geo")
    server = ApiServer(workdir, free_port(), env)
    server.start()
    acked: dict[str, tuple[int, int]] = {}
    in_flight: list[Request] = []
    try:
        asyncio.run(load_until_killed(server, topic, acked, in_flight))
        assert len(in_flight) == CLIENTS  # each client stopped at its first unanswered request
        server.start()
        retried = asyncio.run(retry(server.url, topic, in_flight))
    finally:
        server.stop()

    log = stored(url, topic)
    twice = {key: where for key, where in log.items() if len(where) > 1}
    assert not twice, f"stored more than once: {list(twice.items())[:3]}"
    misplaced = [key for key, where in acked.items() if log.get(key) != [where]]
    assert not misplaced, f"{len(misplaced)} acknowledged records not at their position: {misplaced[:3]}"
    for (key, _), where in zip(in_flight, retried, strict=True):
        assert log.get(key) == [where]
    assert len(log) == len(acked) + len(in_flight)
