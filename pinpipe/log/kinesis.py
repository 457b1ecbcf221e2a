"""AWS Kinesis Data Streams (or a local endpoint such as moto) as the log, through boto3.

``open_log("kinesis://[region][?endpoint=URL&state=PATH]")``: the region defaults to the AWS configuration
(``AWS_REGION``...), the endpoint to ``AWS_ENDPOINT_URL_KINESIS`` / ``AWS_ENDPOINT_URL`` / AWS itself,
credentials to the usual AWS chain (see :mod:`pinpipe.aws`); ``state`` is the small SQLite file of
:mod:`pinpipe.log.kinesis_state` (default ``.pinpipe/kinesis-state.db``; the settings put it in the workdir).

Mapping onto Kinesis:

- a topic is a stream; partition ``i`` is the ``i``-th open shard sorted by shard id (streams created by
  pinpipe have ``partitions`` shards with equal hash ranges; resharding is not supported);
- a record with a key goes to shard ``partition_for_key(key, shards)`` (Kafka's murmur2, so a key lands on
  the same partition number as on the embedded log and Kafka), a record with an explicit partition to
  that shard: the writer sets ``ExplicitHashKey`` to the shard's first hash key. The key itself is the
  ``PartitionKey`` (as text; a missing key is ``pinpipe~none``, a key that is not 1-256 characters of
  UTF-8 text is ``pinpipe~b64~<base64>``, at most 183 bytes);
- offsets are dense (0, 1, 2, ... per shard), not raw sequence numbers: those are 50+ digit numbers with
  gaps, which neither the lake's file names, nor Delta's transaction versions (64-bit), nor lag
  arithmetic can use. A record's offset is its rank in its shard; the state file indexes offset <->
  sequence number, filled by whoever reads the shard (writers read back up to their own records, so an
  append returns its offsets; readers index what they read). The API's ``SequenceNumber`` is this offset.
  Ranks count from the oldest record the index first saw: start pinpipe on a stream before retention
  trims it (always true for streams pinpipe creates);
- appends use PutRecords in batches within Kinesis limits (500 records, 5 MiB, 1 MiB per record) and
  retry the records a response lists as failed (``FailedRecordCount``, throttling) with backoff. An append
  is not all-or-nothing: after an error some records may have landed; their idempotency keys are kept, so
  a retry with the same keys does not write them twice (keys are checked per process under a lock: two
  processes racing on the same new key may both write it);
- consumer-group commits live in the state file (no DynamoDB, no KCL leases): one reader per group reads
  every shard of its streams, as on the embedded log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from pinpipe import aws
from pinpipe.errors import ConfigError, LogError, LogUnavailableError, TopicNotFoundError
from pinpipe.log.kinesis_state import KinesisStateStore

T = TypeVar("T")
DEFAULT_STATE = Path(".pinpipe") / "kinesis-state.db"
GET_LIMIT = 10_000


@dataclass(frozen=True)
class KinesisShard:
    shard_id: str
    start_hash: str


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class KinesisLog:
    """Admin operations on Kinesis streams and the factory of their writers and readers."""

    def __init__(
        self, url: str, partitions: int = 3, *, client: Any = None, state: str | Path | None = None
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "kinesis":
            raise ConfigError(f"not a Kinesis log URL: {url!r} (use kinesis://[region][?endpoint=URL])")
        if partitions < 1:
            raise ConfigError(f"partitions must be at least 1, got {partitions}")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.url = url
        self.default_partitions = partitions
        self.client = client or aws.client(
            "kinesis",
            endpoint_url=query.get("endpoint"),
            region=parsed.netloc or None,
            connect_timeout=5,
            read_timeout=30,
        )
        self.state = KinesisStateStore(Path(state or query.get("state") or DEFAULT_STATE))
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

    # ---- admin ------------------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        try:
            self.call(
                topic,
                self.client.create_stream,
                StreamName=topic,
                ShardCount=partitions or self.default_partitions,
            )
        except LogError as exc:
            if error_code(exc.__cause__ or exc) != "ResourceInUseException":
                raise
        self._wait_active(topic)

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

    def delete_topic(self, topic: str) -> None:
        self.call(topic, self.client.delete_stream, StreamName=topic, EnforceConsumerDeletion=True)
        with self._lock:
            self._shards.pop(topic, None)
        self.state.forget(topic)
        self._tails = {tp: v for tp, v in self._tails.items() if tp[0] != topic}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.call(topic, self.client.describe_stream_summary, StreamName=topic)
            except TopicNotFoundError:
                return
            time.sleep(0.2)

    def topics(self) -> dict[str, int]:
        names: list[str] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.call("*", self.client.list_streams, **kwargs)
            names.extend(page.get("StreamNames", []))
            if not page.get("HasMoreStreams") or not names:
                break
            # NextToken where the server gives one, else the older ExclusiveStartStreamName paging
            token = page.get("NextToken")
            kwargs = {"NextToken": token} if token else {"ExclusiveStartStreamName": names[-1]}
        found = {}
        for name in names:
            try:
                found[name] = len(self.shards(name))
            except TopicNotFoundError:  # deleted meanwhile, or being deleted
                continue
        return found

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

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: self.sync(topic, p) for p in range(len(self.shards(topic)))}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return self.state.committed(group, topic)

    def groups(self) -> list[str]:
        return self.state.groups()

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

    # ---- factories --------------------------------------------------------------------------
    def writer(self) -> Any:
        from pinpipe.log.kinesis_io import KinesisLogWriter

        return KinesisLogWriter(self)

    def reader(self, group: str, topics: Sequence[str]) -> Any:
        from pinpipe.log.kinesis_io import KinesisLogReader

        return KinesisLogReader(self, group, topics)

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> KinesisLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
