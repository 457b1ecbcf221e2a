"""KafkaGroupReader's handling of a partition revoked and assigned again inside one poll, on a scripted
stand-in for librdkafka's consumer (what the group protocol does is covered by the integration tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import confluent_kafka as ck
import pytest

from pinpipe.log.base import TopicPartition
from pinpipe.log.kafka.group import KafkaGroupReader

TOPIC = "t.pin"


class Message:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return b"v%d" % self._offset

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000)


class ScriptedConsumer:
    """Each poll/consume call runs the next step: a list of messages to return, or a callable (a
    rebalance callback librdkafka would run inside that call) followed by its messages."""

    committed_offset = 83

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.steps: list[Any] = []
        self.callbacks: dict[str, Any] = {}

    def subscribe(self, topics: Sequence[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def _next(self) -> list[Message]:
        if not self.steps:
            return []
        step = self.steps.pop(0)
        if callable(step):
            step(self)
            return self._next()
        return list(step)

    def poll(self, timeout: float) -> Message | None:
        batch = self._next()
        if len(batch) > 1:
            self.steps.insert(0, batch[1:])
        return batch[0] if batch else None

    def consume(self, num: int, timeout: float) -> list[Message]:
        return self._next()

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return [ck.TopicPartition(tp.topic, tp.partition, self.committed_offset) for tp in partitions]

    def incremental_assign(self, partitions: list[Any]) -> None:
        pass

    def incremental_unassign(self, partitions: list[Any]) -> None:
        pass

    def close(self) -> None:
        pass


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        self.events.append(("assigned", dict(offsets)))

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        self.events.append(("revoked", list(partitions)))


def test_records_after_a_revoke_and_reassign_in_one_poll_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records fetched before a revoke belong to the old assignment and are dropped; those fetched after
    the partition came back (from the committed offset) are the new owner's first records and must be
    returned, or the sink would start its next object past them and the lake would miss them."""
    monkeypatch.setattr(ck, "Consumer", ScriptedConsumer)
    listener = Listener()
    reader = KafkaGroupReader({"bootstrap.servers": "unused:1"}, "g", [TOPIC], 1.0, listener)
    consumer: Any = reader._consumer
    tp = ck.TopicPartition(TOPIC, 0)

    def lose_and_regain(c: ScriptedConsumer) -> None:
        c.callbacks["on_lost"](c, [tp])
        c.callbacks["on_assign"](c, [ck.TopicPartition(TOPIC, 0)])

    consumer.steps = [
        lambda c: c.callbacks["on_assign"](c, [ck.TopicPartition(TOPIC, 0)]),
        [Message(o) for o in range(92, 96)],  # fetched under the old assignment
        lose_and_regain,
        [Message(o) for o in range(83, 87)],  # the new assignment, from the committed offset
    ]
    records = reader.poll(100, 0.5)
    assert [r.offset for r in records] == [83, 84, 85, 86]
    assert [kind for kind, _ in listener.events] == ["assigned", "revoked", "assigned"]
