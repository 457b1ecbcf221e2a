"""Stand-ins for what a KafkaLogWriter needs of its KafkaLog (the index, the claims, the partition count)
and for librdkafka's delivered message, shared by the writer's unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pinpipe.log.kafka.claims import Ticket


class Index:
    """Knows no key; keeps what the writer releases: (topic, keys, where they landed, wrote)."""

    def __init__(self) -> None:
        self.released: list[tuple[str, set[str], dict[str, Any], bool]] = []

    def claim(self, topic: str, keys: Sequence[str]) -> dict[str, Any]:
        return {}

    def claim_many(self, topic: str, calls: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        return [{} for _ in calls]

    def release(self, topic: str, claimed: Any, placed: Any, wrote: bool = True) -> None:
        self.released.append((topic, set(claimed), dict(placed), wrote))

    def release_many(self, topic: str, calls: Sequence[tuple[Any, Any, bool]]) -> None:
        for claimed, placed, wrote in calls:
            self.release(topic, claimed, placed, wrote)


class WonClaims:
    """Every claim won at once."""

    def acquire_many(self, topic: str, keys: Sequence[str]) -> list[Any]:
        return [Ticket(key, float("inf")) for key in keys]

    def acquire(self, topic: str, key: str, stored: Any) -> Ticket:
        return Ticket(key, float("inf"))


class OnePartitionLog:
    """A cluster of one-partition topics whose claims are all won."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.common = {"bootstrap.servers": "127.0.0.1:9"}
        self.index = Index()
        self.claims = WonClaims()

    def partition_count(self, topic: str) -> int:
        return 1


class Delivered:
    """librdkafka's message in a successful delivery report: where the record landed."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset
