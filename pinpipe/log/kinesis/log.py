"""AWS Kinesis Data Streams (or a local endpoint such as moto) as the log, through boto3.

``open_log("kinesis://[region][?endpoint=URL&state=PATH]")``: the region defaults to the AWS configuration
(``AWS_REGION``...), the endpoint to ``AWS_ENDPOINT_URL_KINESIS`` / ``AWS_ENDPOINT_URL`` / AWS itself,
credentials to the usual AWS chain (see :mod:`pinpipe.aws`); ``state`` is the small SQLite file of
:mod:`pinpipe.log.kinesis.state` (default ``.pinpipe/kinesis-state.db``; the settings put it in the workdir).

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

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pinpipe import aws
from pinpipe.errors import ConfigError, LogError, TopicNotFoundError
from pinpipe.log.base import Headers
from pinpipe.log.kinesis.io import KinesisLogReader, KinesisLogWriter, record_problem
from pinpipe.log.kinesis.state import KinesisStateStore
from pinpipe.log.kinesis.streams import KinesisStreams, error_code

DEFAULT_STATE = Path(".pinpipe") / "kinesis-state.db"


BARE = "the Kinesis log keeps neither record headers nor timestamps: send the record without them"


class KinesisLog(KinesisStreams):
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
        super().__init__(
            client
            or aws.client(
                "kinesis",
                endpoint_url=query.get("endpoint"),
                region=parsed.netloc or None,
                connect_timeout=5,
                read_timeout=30,
            ),
            KinesisStateStore(Path(state or query.get("state") or DEFAULT_STATE)),
        )

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

    def delete_topic(self, topic: str) -> None:
        self.call(topic, self.client.delete_stream, StreamName=topic, EnforceConsumerDeletion=True)
        self.forget(topic)
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

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: self.sync(topic, p) for p in range(len(self.shards(topic)))}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return self.state.committed(group, topic)

    def groups(self) -> list[str]:
        return self.state.groups()

    # ---- factories --------------------------------------------------------------------------
    def refusal(
        self, value: bytes, key: bytes | None, headers: Headers, timestamp: float | None
    ) -> str | None:
        if headers or timestamp is not None:
            return BARE
        return record_problem(value, key)

    def writer(self) -> KinesisLogWriter:
        return KinesisLogWriter(self)

    def reader(self, group: str, topics: Sequence[str]) -> KinesisLogReader:
        return KinesisLogReader(self, group, topics)

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> KinesisLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
