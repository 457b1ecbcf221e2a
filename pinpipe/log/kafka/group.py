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
session timeout too, unless it comes back. Two live members with one name: the older one is fenced.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pinpipe._optional import require
from pinpipe.log.base import TopicPartition
from pinpipe.log.kafka.reader import KafkaLogReader

ck = require("confluent_kafka", "kafka")

SESSION_TIMEOUT_MS = 6_000


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
        self._listener = listener
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def owned(self) -> set[TopicPartition]:
        return set(self._assigned)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if (topic, partition) in self._assigned:  # a partition no longer owned has no position
            super().seek(topic, partition, offset)

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
        tps = [(tp.topic, tp.partition) for tp in partitions]
        if tps:
            # records taken before the revoke: the next owner reads them again from the committed offset
            gone = set(tps)
            self._polled[:] = [r for r in self._polled if (r.topic, r.partition) not in gone]
            self._listener.revoked(tps, lost)
        self._assigned.difference_update(tps)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoke(consumer, partitions, lost=True)


class _Quiet:
    def assigned(self, offsets: Mapping[TopicPartition, int | None]) -> None:
        pass

    def revoked(self, partitions: Sequence[TopicPartition], lost: bool) -> None:
        pass
