"""KafkaGroupReader's handling of a partition revoked and assigned again inside one poll, and of a consumer
librdkafka gave up (fenced), on a scripted stand-in for librdkafka's consumer (what the group protocol
does is covered by the integration tests)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import confluent_kafka as ck
import pytest

from pinpipe.errors import GroupMovedOnError, LogError
from pinpipe.log.base import TopicPartition
from pinpipe.log.kafka import group
from pinpipe.log.kafka.group import REJOIN_LIMIT, REJOIN_WINDOW_S, KafkaGroupReader

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


FENCED = "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id"


class FatalMessage(Message):
    """What librdkafka's poll returns once the consumer is fenced: an ``_FATAL`` event (``fatal()`` False)."""

    def __init__(self) -> None:
        super().__init__(-1)

    def error(self) -> Any:
        return ck.KafkaError(ck.KafkaError._FATAL, FENCED)


class ScriptedConsumer:
    """Each poll/consume call runs the next step: a list of messages to return, or a callable (a
    rebalance callback librdkafka would run inside that call) followed by its messages. Every consumer
    made is kept in ``made``; ``commit_error`` makes commits and seeks fail (as on a fenced consumer)."""

    committed_offset = 83
    made: ClassVar[list[ScriptedConsumer]] = []

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.steps: list[Any] = []
        self.callbacks: dict[str, Any] = {}
        self.commit_error: Any = None
        self.closed = False
        self.commits: list[list[Any]] = []
        ScriptedConsumer.made.append(self)

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

    def seek(self, partition: Any) -> None:
        if self.commit_error is not None:
            raise ck.KafkaException(self.commit_error)

    def commit(self, offsets: list[Any], asynchronous: bool) -> list[Any]:
        if self.commit_error is not None:
            raise ck.KafkaException(self.commit_error)
        self.commits.append(offsets)
        return offsets

    def close(self) -> None:
        self.closed = True


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        self.events.append(("assigned", dict(offsets)))

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        self.events.append(("lost" if lost else "revoked", list(partitions)))


@pytest.fixture
def consumers(monkeypatch: pytest.MonkeyPatch) -> list[ScriptedConsumer]:
    """The scripted consumers the readers make, in order."""
    monkeypatch.setattr(ck, "Consumer", ScriptedConsumer)
    monkeypatch.setattr(ScriptedConsumer, "made", [])
    return ScriptedConsumer.made


def assign_p0(c: ScriptedConsumer) -> None:
    c.callbacks["on_assign"](c, [ck.TopicPartition(TOPIC, 0)])


def test_records_after_a_revoke_and_reassign_in_one_poll_are_kept(consumers: list[ScriptedConsumer]) -> None:
    """Records fetched before a revoke belong to the old assignment and are dropped; those fetched after
    the partition came back (from the committed offset) are the new owner's first records and must be
    returned, or the sink would start its next object past them and the lake would miss them."""
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
    assert [kind for kind, _ in listener.events] == ["assigned", "lost", "assigned"]


def test_a_fenced_consumer_is_replaced_by_a_new_member_under_the_same_name(
    consumers: list[ScriptedConsumer], caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka gives a fenced static member up for good (every later poll and commit fails): the reader
    tells the listener its partitions are lost (records not yet returned included), closes that consumer
    and subscribes a new one with the same configuration, which starts from the committed offsets."""
    listener = Listener()
    reader = KafkaGroupReader({"bootstrap.servers": "unused:1"}, "g", [TOPIC], 1.0, listener, "sink-0")
    first = consumers[0]
    first.steps = [assign_p0, [Message(83), Message(84)], [], [FatalMessage()]]
    assert [r.offset for r in reader.poll(100, 0.5)] == [83, 84]
    with caplog.at_level(logging.WARNING, "pinpipe.log.kafka.group"):
        assert reader.poll(100, 0.5) == []
    assert "joining the group again with a new consumer" in caplog.text and "'sink-0'" in caplog.text
    assert first.closed and len(consumers) == 2
    second = consumers[1]
    assert second.config == first.config and second.config["group.instance.id"] == "sink-0"
    assert set(second.callbacks) == {"on_assign", "on_revoke", "on_lost"}
    assert listener.events[1:] == [("lost", [(TOPIC, 0)])]
    assert reader.owned() == set()
    second.steps = [assign_p0, [Message(83)]]
    assert [r.offset for r in reader.poll(100, 0.5)] == [83]
    assert listener.events[-1] == ("assigned", {(TOPIC, 0): 83})
    reader.commit({(TOPIC, 0): 84})
    assert [[(tp.partition, tp.offset) for tp in c] for c in second.commits] == [[(0, 84)]]


@pytest.mark.parametrize(
    "error",
    [
        ck.KafkaError(ck.KafkaError._FATAL, "Commit failed: Local: Fatal error"),
        ck.KafkaError(ck.KafkaError.FENCED_INSTANCE_ID, "Commit failed: Broker: Static consumer fenced"),
    ],
    ids=["fatal", "fenced"],
)
def test_a_commit_on_a_fenced_consumer_is_a_group_moved_on_and_the_next_poll_joins_again(
    consumers: list[ScriptedConsumer], error: Any
) -> None:
    """The commit fails as when the group moved on (the sink keeps running, the next owner starts from
    the last commit); the re-join waits for the next poll, outside any rebalance callback. librdkafka
    reports the fence as its fatal error, or a commit meets the broker's FENCED_INSTANCE_ID first."""
    listener = Listener()
    reader = KafkaGroupReader({"bootstrap.servers": "unused:1"}, "g", [TOPIC], 1.0, listener, "sink-0")
    consumers[0].steps = [assign_p0, [Message(83)]]
    reader.poll(100, 0.5)
    consumers[0].commit_error = error
    with pytest.raises(GroupMovedOnError, match="Commit failed"):
        reader.commit({(TOPIC, 0): 84})
    assert len(consumers) == 1 and not consumers[0].closed
    with pytest.raises(GroupMovedOnError):  # still the dead consumer: nothing is sent
        reader.commit({(TOPIC, 0): 84})
    assert reader.poll(100, 0.5) == []
    assert consumers[0].closed and len(consumers) == 2
    assert listener.events[-1] == ("lost", [(TOPIC, 0)])


def test_a_seek_on_a_fenced_consumer_waits_for_the_next_poll_to_join_again(
    consumers: list[ScriptedConsumer],
) -> None:
    """The sink seeks past an object it found in the lake while handling a poll's records: a consumer
    that went fatal meanwhile must not stop it there; the next poll joins again."""
    listener = Listener()
    reader = KafkaGroupReader({"bootstrap.servers": "unused:1"}, "g", [TOPIC], 1.0, listener, "sink-0")
    consumers[0].steps = [assign_p0, [Message(83)]]
    reader.poll(100, 0.5)
    consumers[0].commit_error = ck.KafkaError(ck.KafkaError._FATAL, "Local: Fatal error")
    reader.seek(TOPIC, 0, 90)
    assert reader.poll(100, 0.5) == [] and len(consumers) == 2
    assert listener.events[-1] == ("lost", [(TOPIC, 0)])


def test_a_member_fenced_again_and_again_stops_naming_its_instance_id(
    consumers: list[ScriptedConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two live workers with one name fence each other in turn: after REJOIN_LIMIT re-joins within
    REJOIN_WINDOW_S the next fatal error stops the member with an error naming the duplicate name (the
    other keeps it). Re-joins spread wider than the window do not add up."""
    now = [1000.0]
    monkeypatch.setattr(group.time, "monotonic", lambda: now[0])
    reader = KafkaGroupReader({"bootstrap.servers": "unused:1"}, "g", [TOPIC], 1.0, Listener(), "sink-0")

    def fenced() -> None:
        consumers[-1].steps = [[FatalMessage()]]
        reader.poll(100, 0.5)

    fenced()
    now[0] += REJOIN_WINDOW_S + 1  # the first one is out of the window by the end
    for _ in range(REJOIN_LIMIT):
        fenced()
    assert len(consumers) == REJOIN_LIMIT + 2
    with pytest.raises(LogError, match="--group-instance-id sink-0") as raised:
        fenced()
    assert "\n" not in str(raised.value)
    assert consumers[-1].closed and len(consumers) == REJOIN_LIMIT + 2
    reader.close()  # already closed: nothing more to do
