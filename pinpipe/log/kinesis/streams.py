"""The Kinesis calls a log needs, below both :class:`~pinpipe.log.kinesis.KinesisLog` and its writers
and readers (:mod:`pinpipe.log.kinesis.io`): errors mapped to LogError kinds, a stream's shards as
partitions, shard iterators, and the dense offset index kept in the state file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pinpipe.errors import LogError, LogUnavailableError, TopicNotFoundError
from pinpipe.log.kinesis.state import KinesisStateStore

T = TypeVar("T")
GET_LIMIT = 10_000


@dataclass(frozen=True)
class KinesisShard:
    shard_id: str
    start_hash: str


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class KinesisStreams:
    """A boto3 Kinesis client and the state file, with the shard and offset bookkeeping shared by the
    admin side and the writers and readers."""

    def __init__(self, client: Any, state: KinesisStateStore) -> None:
        self.client = client
        self.state = state
        self._shards: dict[str, list[KinesisShard]] = {}
        self._lock = threading.Lock()
        self._tails: dict[tuple[str, int], tuple[int, str]] = {}
        """Per shard, where the last sync stopped: (next offset, shard iterator from there)."""

    # ---- calls ------------------------------------------------------------------------------
    def call(self, topic: str, fn: Callable[..., T], **kwargs: Any) -> T:
        """One Kinesis API call with errors as LogError kinds (boto3 already retried throttling)."""
        try:
            return fn(**kwargs)
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                self._shards.pop(topic, None)
                raise TopicNotFoundError(f"stream {topic!r} not found") from exc
            if code in (
                "",
                "ProvisionedThroughputExceededException",
                "LimitExceededException",
            ) or code.startswith(("Throttl", "ServiceUnavailable", "InternalFailure", "KMSThrottling")):
                raise LogUnavailableError(f"Kinesis unavailable ({topic}): {exc}") from exc
            raise LogError(f"Kinesis error on {topic!r}: {exc}") from exc

    def _wait_active(self, topic: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            summary = self.call(topic, self.client.describe_stream_summary, StreamName=topic)
            found: dict[str, Any] = summary["StreamDescriptionSummary"]
            if found["StreamStatus"] in ("ACTIVE", "UPDATING"):
                return found
            if found["StreamStatus"] == "DELETING":
                raise TopicNotFoundError(f"stream {topic!r} is being deleted")
            if time.monotonic() > deadline:
                raise LogUnavailableError(f"stream {topic!r} still {found['StreamStatus']} after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def shards(self, topic: str) -> list[KinesisShard]:
        """The stream's open shards sorted by id (partition i = shards[i]); cached per log."""
        with self._lock:
            cached = self._shards.get(topic)
        if cached is not None:
            return cached
        summary = self._wait_active(topic)
        self.state.check_incarnation(topic, summary["StreamCreationTimestamp"].timestamp())
        shards: list[KinesisShard] = []
        kwargs: dict[str, Any] = {"StreamName": topic}
        while True:
            page = self.call(topic, self.client.list_shards, **kwargs)
            shards.extend(
                KinesisShard(s["ShardId"], s["HashKeyRange"]["StartingHashKey"])
                for s in page["Shards"]
                if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
            )
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}
        shards.sort(key=lambda s: s.shard_id)
        with self._lock:
            self._shards[topic] = shards
        return shards

    def forget(self, topic: str) -> None:
        """Drop what is known of a deleted stream: its shards, its index, where syncs stopped."""
        with self._lock:
            self._shards.pop(topic, None)
        self.state.forget(topic)
        self._tails = {tp: v for tp, v in self._tails.items() if tp[0] != topic}

    # ---- the offset index -------------------------------------------------------------------
    def iterator(self, topic: str, partition: int, kind: str, seq: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "StreamName": topic,
            "ShardId": self.shards(topic)[partition].shard_id,
            "ShardIteratorType": kind,
        }
        if seq is not None:
            kwargs["StartingSequenceNumber"] = seq
        it: str = self.call(topic, self.client.get_shard_iterator, **kwargs)["ShardIterator"]
        return it

    def sync(self, topic: str, partition: int, until: int | None = None) -> int:
        """Index the shard's records past the last indexed one: to its end, or until sequence number
        ``until`` is indexed. Returns the next offset (the count of indexed records)."""
        last = self.state.last(topic, partition)
        if until is not None and last is not None and int(last[1]) >= until:
            return last[0] + 1
        next_offset = last[0] + 1 if last else 0
        tail = self._tails.get((topic, partition))
        try:
            if tail is not None and tail[0] == next_offset:  # where the last sync stopped: no new iterator
                return self._index_from(topic, partition, next_offset, tail[1], until)
        except LogError as exc:
            if error_code(exc.__cause__ or exc) != "ExpiredIteratorException":
                raise
        it = (
            self.iterator(topic, partition, "AFTER_SEQUENCE_NUMBER", last[1])
            if last
            else self.iterator(topic, partition, "TRIM_HORIZON")
        )
        return self._index_from(topic, partition, next_offset, it, until)

    def _index_from(self, topic: str, partition: int, next_offset: int, it: str, until: int | None) -> int:
        current: str | None = it
        while current is not None:
            page = self.call(topic, self.client.get_records, ShardIterator=current, Limit=GET_LIMIT)
            seqs = [r["SequenceNumber"] for r in page["Records"]]
            self.state.index(topic, partition, next_offset, seqs)
            next_offset += len(seqs)
            current = page.get("NextShardIterator")
            if current is not None:
                self._tails[(topic, partition)] = (next_offset, current)
            if until is not None and seqs and int(seqs[-1]) >= until:
                break
            if not seqs and page.get("MillisBehindLatest", 0) == 0:
                break
        return next_offset
