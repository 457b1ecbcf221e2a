"""kill -9 of ``pinpipe api serve`` while 64 clients each post one record per request (the original's load
shape, where concurrent requests share group commits): every acknowledged record is in the log exactly
once, at the position its answer gave; the requests that were in flight, retried with the same
Idempotency-Key after a restart, are stored once too (either already there, or now)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest

from pinpipe.locations import embedded_url
from pinpipe.log import open_log
from pinpipe.schema import DEFAULT_PREFIX, topic_name
from tests.processes import ApiServer, clean_env, free_port

pytestmark = pytest.mark.slow

CLIENTS = 64
KILL_AFTER = 600
"""Acknowledged requests before the kill."""
TOPIC = topic_name(DEFAULT_PREFIX, "geo")
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


async def post(http: httpx.AsyncClient, request: Request) -> tuple[int, int]:
    key, body = request
    response = await http.post(f"/topics/{TOPIC}", content=body, headers={**HEADERS, "Idempotency-Key": key})
    assert response.status_code == 200, response.text
    (offset,) = response.json()["offsets"]
    assert offset["error_code"] is None, offset
    return offset["partition"], offset["offset"]


async def load_until_killed(
    server: ApiServer, acked: dict[str, tuple[int, int]], in_flight: list[Request]
) -> None:
    """Run the clients; kill the server after KILL_AFTER acknowledgements; each client stops at its first
    failed request and leaves it in ``in_flight``."""

    async def client(http: httpx.AsyncClient, c: int) -> None:
        n = 0
        while True:
            request = request_of(c, n)
            try:
                acked[request[0]] = await post(http, request)
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


async def retry(url: str, requests: list[Request]) -> list[tuple[int, int]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await asyncio.gather(*(post(http, r) for r in requests))


def stored(workdir: Path) -> dict[str, list[tuple[int, int]]]:
    """The Idempotency-Key each stored value was sent with, and every position the value has in the log."""
    log = open_log(embedded_url(workdir / "log"))
    try:
        reader = log.reader("kill-check", [TOPIC])
        found: dict[str, list[tuple[int, int]]] = {}
        while batch := reader.poll(10_000, 0.2):
            for r in batch:
                key = f"kill-{orjson.loads(r.value)['ind']}"
                found.setdefault(key, []).append((r.partition, r.offset))
        return found
    finally:
        log.close()


def test_kill_9_during_64_client_single_record_run(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    server = ApiServer(workdir, free_port(), clean_env(tmp_path))
    server.start()
    acked: dict[str, tuple[int, int]] = {}
    in_flight: list[Request] = []
    try:
        asyncio.run(load_until_killed(server, acked, in_flight))
        assert len(in_flight) == CLIENTS  # each client stopped at its first unanswered request
        server.start()
        retried = asyncio.run(retry(server.url, in_flight))
    finally:
        server.stop()

    log = stored(workdir)
    twice = {key: where for key, where in log.items() if len(where) > 1}
    assert not twice, f"stored more than once: {list(twice.items())[:3]}"
    misplaced = [key for key, where in acked.items() if log.get(key) != [where]]
    assert not misplaced, f"{len(misplaced)} acknowledged records not at their position: {misplaced[:3]}"
    for (key, _), where in zip(in_flight, retried, strict=True):
        assert log.get(key) == [where]
    assert len(log) == len(acked) + len(in_flight)
