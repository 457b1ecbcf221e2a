"""The log interfaces: what every backend (embedded, Kafka, Kinesis) provides.

A log holds topics (Kinesis streams are topics too); a topic has partitions (shards); a record in a
partition has an offset (a sequence number). Writers append and are told where each record landed;
readers belong to a consumer group, poll, and commit the next offset to read per partition.

``open_log(url)`` in :mod:`pinpipe.log` picks the backend from the URL scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the batch path imports this module and never runs an event loop
    import asyncio

TopicPartition = tuple[str, int]
"""(topic, partition)"""
Headers = tuple[tuple[str, bytes | None], ...]
"""A record's headers: (name, value) pairs, in order, names repeatable, a value may be null."""
RESERVED_HEADER_PREFIX = "pinpipe-"
"""Header names the log uses itself (idempotency keys and fingerprints on Kafka): never a producer's."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    """Seconds since the epoch: the producer's timestamp when it gave one, else the log's append time."""
    headers: Headers = ()


@dataclass(slots=True)
class OutgoingRecord:
    """One record to append.

    ``partition`` None means key-hash partitioning (round-robin when ``key`` is None too).
    ``idempotency_key``: a second append with the same key to the same topic is not stored again and
    returns the first append's (partition, offset). ``fingerprint`` is stored with the key: when a later
    record with that key carries another fingerprint (None included), the whole append raises
    IdempotencyConflictError and stores nothing, so a key reused for different content cannot pass as
    a retry.

    Not frozen: a frozen dataclass's ``__init__`` costs a microsecond (every field set through
    ``object.__setattr__``), a tenth of the API's work per record of a batched request. No log changes
    a record it was given.
    """

    value: bytes
    key: bytes | None = None
    partition: int | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    headers: Headers = ()
    timestamp: float | None = None


class LogWriter(Protocol):
    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        """Append durably (as the backend's durability policy states) and return (partition, offset) of
        each record, in order. All or nothing for one call on the embedded log. Raises
        TopicNotFoundError, IdempotencyConflictError (nothing stored), LogUnavailableError (retriable)
        or LogError."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class LogReader(Protocol):
    """A member of a consumer group reading some topics (all their partitions)."""

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records after the current position, waiting up to ``timeout`` seconds
        for the first one. Positions start at the group's committed offsets (earliest when none)."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably store, for the group, the next offset to read in each partition."""
        ...

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Move this reader's position (not the committed offset)."""
        ...

    def close(self) -> None: ...


class LogAdmin(Protocol):
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create the topic if missing (no error when it exists)."""
        ...

    def delete_topic(self, topic: str) -> None: ...

    def topics(self) -> dict[str, int]:
        """Existing topics and their partition counts."""
        ...

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next appended record will get."""
        ...

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, the group's committed offset (partitions never committed are left out)."""
        ...

    def groups(self) -> list[str]:
        """Consumer groups known to the log."""
        ...


class Log(LogAdmin, Protocol):
    """A backend: its admin operations plus factories for writers and readers."""

    url: str

    def refusal(
        self, value: bytes, key: bytes | None, headers: Headers, timestamp: float | None
    ) -> str | None:
        """Why this log would refuse the record by its own limits (size, key form, what it can store of
        headers and a producer's ``timestamp``, in seconds), or None. The API asks before appending, so
        such a record fails alone instead of failing its whole append."""
        ...

    def writer(self) -> LogWriter: ...

    def reader(self, group: str, topics: Sequence[str]) -> LogReader: ...

    def close(self) -> None: ...


class Later:
    """A result of ``append_many`` that only a wait can decide (another API process holds the call's
    idempotency claim): ``decide()`` is that call's ``append``, run by the caller off the thread that
    commits groups, so one call's wait holds up no other call of the group nor the groups after it."""

    __slots__ = ("decide",)

    def __init__(self, decide: Callable[[], list[tuple[int, int]]]) -> None:
        self.decide = decide


def resolve(future: asyncio.Future[Any], result: object) -> None:
    """Give ``future`` its result, or raise it there when it is an exception (a cancelled one is left)."""
    if future.cancelled():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
