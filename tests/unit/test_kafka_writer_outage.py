"""A commit group on Kafka pays the cluster's unavailability once: while the brokers are out of reach the
requests behind a group must get their 503 within about one timeout, not one timeout per call or topic."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

from pinpipe.errors import LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka.writer import KafkaLogWriter

TIMEOUT_S = 0.3


class _Index:
    def claim(self, topic: str, keys: Sequence[str]) -> dict[str, Any]:
        return {}

    def claim_many(self, topic: str, calls: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        return [{} for _ in calls]

    def release(self, topic: str, claimed: Any, placed: Any, wrote: bool = True) -> None:
        pass

    def release_many(self, topic: str, calls: Any) -> None:
        pass


class _Claims:
    """Claims whose topic cannot be reached: each attempt waits out the timeout, as librdkafka does."""

    def __init__(self) -> None:
        self.attempts = 0

    def acquire_many(self, topic: str, keys: Sequence[str]) -> list[Any]:
        self.attempts += 1
        time.sleep(TIMEOUT_S)
        raise LogUnavailableError("Kafka: the claims topic is out of reach")

    def acquire(self, topic: str, key: str, stored: Any) -> Any:
        return self.acquire_many(topic, [key])[0]


class _UnreachableLog:
    timeout_s = TIMEOUT_S

    def __init__(self) -> None:
        self.common = {"bootstrap.servers": "127.0.0.1:9"}  # nothing is produced: the claims fail first
        self.index = _Index()
        self.claims = _Claims()

    def partition_count(self, topic: str) -> int:
        return 3


def test_a_group_fails_every_call_after_one_timeout_when_the_cluster_is_out_of_reach() -> None:
    log = _UnreachableLog()
    writer = KafkaLogWriter(cast(Any, log))
    calls = [
        (f"{prefix}.{kind}", [OutgoingRecord(b"{}", idempotency_key=f"k-{prefix}-{kind}", fingerprint="f")])
        for prefix in ("batch", "stream")
        for kind in ("pin", "geo", "user")
    ]
    calls.append(("batch.probe", [OutgoingRecord(b"{}")]))  # no key to claim: would wait for its delivery
    started = time.monotonic()
    results = writer.append_many(calls)
    took = time.monotonic() - started
    assert [type(r) for r in results] == [LogUnavailableError] * len(calls)
    assert log.claims.attempts == 1, "each topic waited out its own timeout"
    assert took < 3 * TIMEOUT_S
    writer.close()
