"""The emulator's sender over several API replicas: records spread round-robin, a retry goes to the next."""

from __future__ import annotations

import random
from collections import Counter

import httpx

from pinpipe.source.sender import HttpApiSender

RECORD = {"ind": 7, "timestamp": "2020-01-01 00:00:00", "latitude": 1.5, "longitude": 2.0, "country": "Chad"}
OK = {"offsets": [{"partition": 0, "offset": 0, "error_code": None, "error": None}]}


def sender(handler: object, slept: list[float]) -> HttpApiSender:
    return HttpApiSender(
        "http://a.test,http://b.test/",
        "0a1b2c3d4e5f",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        sleep=slept.append,
        rng=random.Random(0),
    )


def test_records_are_spread_over_the_replicas() -> None:
    hosts: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        hosts[request.url.host] += 1
        return httpx.Response(200, json=OK)

    slept: list[float] = []
    out = sender(handler, slept)
    results = [out.send("batch", "pin", RECORD, f"k-{i}") for i in range(6)]
    assert all(r.error is None for r in results) and hosts == {"a.test": 3, "b.test": 3} and slept == []


def test_a_replica_down_is_skipped_at_once_with_the_same_idempotency_key() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["Idempotency-Key"]))
        if request.url.host == "a.test":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=OK)

    slept: list[float] = []
    out = sender(handler, slept)
    results = [out.send("stream", "geo", RECORD, f"k-{i}") for i in range(4)]
    assert all(r.error is None for r in results)
    assert [r.retries for r in results] == [0, 1, 0, 1] or [r.retries for r in results] == [1, 0, 1, 0]
    assert seen.count(("a.test", "k-0")) + seen.count(("a.test", "k-1")) == 1
    assert {key for host, key in seen if host == "b.test"} == {"k-0", "k-1", "k-2", "k-3"}
    assert slept == []  # failing over to a live replica costs no backoff


def test_all_replicas_down_backs_off_after_each_round() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    slept: list[float] = []
    result = sender(handler, slept).send("batch", "user", RECORD, "k")
    assert result.error is not None and "gave up after 8 retries" in result.error
    assert len(slept) == 4  # 9 attempts over 2 replicas: a backoff after every second one
