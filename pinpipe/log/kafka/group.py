"""A Kafka reader that shares its topics' partitions with the other members of its group.

Several processes reading as one group (lake sink workers) split the partitions through Kafka's group
protocol (``cooperative-sticky``: a join or leave moves only the partitions that change owner). The
owner of a partition is told when it gets one (with the group's committed offset, where it starts) and
when it loses one: it may commit what it finished in ``revoked``, then must forget the partition; the
records of a partition that a poll took before the partition was revoked are not returned, so a new
assignment always starts cleanly at the committed offset. Records taken after the partition came back
in the same poll are returned: they are the new assignment's first ones. A member killed with ``kill -9``
is dropped after ``session.timeout.ms`` (6 s, the broker's default minimum) and its partitions move to
the others.

Static membership (``instance_id``, Kafka's ``group.instance.id``): a member restarted under the same
name within the session timeout takes its partitions back without a rebalance of the others. The price:
a static member does not leave the group when it closes, so a stopped worker's partitions wait for the
session timeout too, unless it comes back.

A fenced static member: the broker answers FENCED_INSTANCE_ID when another join took the member's name,
and librdkafka then gives the whole consumer up (a fatal error: every later poll or commit fails). That
happens without a second process too: after a coordinator moves or answers UNKNOWN_MEMBER_ID, the member
joins again under its name and a request of its older self, still in flight, is then fenced. So the reader
closes the dead consumer, tells the listener its partitions are lost, and joins again with a new consumer
under the same name, from the group's committed offsets. Two live members with one name fence each other
in turn: a member fenced more than ``REJOIN_LIMIT`` times within ``REJOIN_WINDOW_S`` stops with an error
naming the instance id, which leaves the name to the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pinpipe._optional import require
from pinpipe.errors import GroupMovedOnError, LogError
from pinpipe.log.base import Record, TopicPartition
from pinpipe.log.kafka.reader import KafkaFatalError, KafkaLogReader

ck = require("confluent_kafka", "kafka")
_log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 6_000
REJOIN_LIMIT = 3
"""Re-joins after a fatal error allowed within ``REJOIN_WINDOW_S``; one more fatal error stops the member."""
REJOIN_WINDOW_S = 300.0


class PartitionListener(Protocol):
    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        """Partitions now owned, each with its committed offset (None: never committed)."""

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        """Partitions no longer owned; ``lost``: already owned by another member (do not commit)."""


class KafkaGroupReader(KafkaLogReader):
    """A subscribed consumer-group member; the listener hears about every assignment change."""

    def __init__(
        self,
        common: Mapping[str, Any],
        group: str,
        topics: Sequence[str],
        timeout_s: float,
        listener: PartitionListener,
        instance_id: str | None = None,
    ) -> None:
        name = "-".join(filter(None, (common.get("client.id", "pinpipe"), instance_id)))
        config = {
            **common,
            "client.id": f"{name}-{socket.gethostname()}-{os.getpid()}",  # the owner `pinpipe status` shows
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 1000,
        }
        if instance_id:
            config["group.instance.id"] = instance_id
        super().__init__(config, group, topics, timeout_s)
        self._group = group
        self._instance_id = instance_id
        self._listener = listener
        self._fatal: KafkaFatalError | None = None
        """The consumer's fatal error, when it had one: the next poll joins again with a new consumer."""
        self._rejoins: deque[float] = deque()
        self._subscribe()

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def owned(self) -> set[TopicPartition]:
        return set(self._assigned)

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        if self._fatal is None:
            try:
                return super().poll(max_records, timeout)
            except KafkaFatalError as exc:
                self._fatal = exc
        self._rejoin()
        return []

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A consumer gone fatal cannot commit: the next poll joins again, and the partitions' next owners
        start from the last commit (``GroupMovedOnError``, as when the group moved on)."""
        if self._fatal is None:
            try:
                super().commit(offsets)
                return
            except KafkaFatalError as exc:
                self._fatal = exc
        raise GroupMovedOnError(f"{self._fatal} (this member joins the group again)")

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if (topic, partition) not in self._assigned or self._fatal is not None:
            return  # a partition no longer owned has no position
        try:
            super().seek(topic, partition, offset)
        except KafkaFatalError as exc:  # went fatal while the sink handled the last poll's records
            self._fatal = exc

    def _rejoin(self) -> None:
        """Give up the fatal consumer and its partitions (lost: the next owner may be another member),
        then join again under the same name with a new consumer, unless fenced too often."""
        now = time.monotonic()
        while self._rejoins and now - self._rejoins[0] > REJOIN_WINDOW_S:
            self._rejoins.popleft()
        self._rejoins.append(now)
        self._drop_all()
        listener, self._listener = self._listener, _Quiet()
        with contextlib.suppress(ck.KafkaException, RuntimeError):
            self._consumer.close()
        if len(self._rejoins) > REJOIN_LIMIT:
            self._closed = True
            raise LogError(self._give_up_message())
        _log.warning(
            "Kafka consumer of group %r%s stopped by a fatal error (%s): joining the group again with a new "
            "consumer, from the committed offsets (re-join %d of %d allowed within %.0f s)",
            self._group,
            f" as {self._instance_id!r}" if self._instance_id else "",
            self._fatal,
            len(self._rejoins),
            REJOIN_LIMIT,
            REJOIN_WINDOW_S,
        )
        self._fatal = None
        self._listener = listener
        self._consumer = ck.Consumer(self._config)
        self._subscribe()

    def _drop_all(self) -> None:
        self._forget(sorted(self._assigned), lost=True)

    def _forget(self, tps: list[TopicPartition], lost: bool) -> None:
        """Stop owning ``tps``: records taken from them and not yet handed out are dropped (the next
        owner reads them again from the committed offset) and the listener is told."""
        if tps:
            gone = set(tps)
            self._polled[:] = [r for r in self._polled if (r.topic, r.partition) not in gone]
            self._listener.revoked(tps, lost)
        self._assigned.difference_update(tps)

    def _give_up_message(self) -> str:
        times = f"{len(self._rejoins)} times within {REJOIN_WINDOW_S:.0f} s"
        if not self._instance_id:
            return f"Kafka: group {self._group!r}: the consumer failed fatally {times}; last: {self._fatal}"
        return (
            f"Kafka: group {self._group!r}: the member named {self._instance_id!r} was fenced {times}: "
            f"another live worker uses the same --group-instance-id {self._instance_id} (group.instance.id); "
            "give every worker its own name"
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._listener = _Quiet()  # leaving the group at close revokes everything: nothing to do
            self._consumer.close()

    def _refresh(self, force: bool) -> None:
        """The group protocol assigns partitions (new topics and partitions included)."""

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        committed = self._committed(tps) if tps else {}
        for tp in partitions:
            tp.offset = committed.get((tp.topic, tp.partition), ck.OFFSET_BEGINNING)
        consumer.incremental_assign(partitions)
        self._assigned.update(tps)
        if tps:
            self._listener.assigned({tp: committed.get(tp) for tp in tps})

    def _on_revoke(self, consumer: Any, partitions: list[Any], lost: bool = False) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions], lost)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoke(consumer, partitions, lost=True)


class _Quiet:
    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        pass

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        pass
