"""The log: append-only, partitioned, offset-addressed topics with consumer groups.

``open_log(url)`` chooses the backend from the URL scheme:

- ``embedded:///path/to/dir`` : the embedded durable log on local disk (default, no server);
- ``kafka://host:port[,host:port]`` : Apache Kafka (needs ``pinpipe[kafka]``);
- ``kinesis://[region]`` : AWS Kinesis or a local endpoint (needs ``pinpipe[s3]``);
- ``memory://`` : in-process, for unit tests only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from pinpipe.errors import ConfigError
from pinpipe.log.base import Log, LogAdmin, LogReader, LogWriter, OutgoingRecord, Record, TopicPartition

__all__ = [
    "Log",
    "LogAdmin",
    "LogReader",
    "LogWriter",
    "OutgoingRecord",
    "Record",
    "TopicPartition",
    "open_log",
]


def open_log(url: str, **options: Any) -> Log:
    """Open the log at ``url``; ``options`` (e.g. ``partitions``) are passed to the backend."""
    scheme = urlparse(url).scheme
    if scheme == "embedded":
        from pinpipe.log.embedded import EmbeddedLog

        return EmbeddedLog(url, **options)
    if scheme == "kafka":
        from pinpipe.log.kafka import KafkaLog

        return KafkaLog(url, **options)
    if scheme == "kinesis":
        from pinpipe.log.kinesis import KinesisLog

        return KinesisLog(url, **options)
    if scheme == "memory":
        from pinpipe.log.memory import MemoryLog

        return MemoryLog(url, **options)
    raise ConfigError(f"unknown log URL {url!r}: use embedded:///dir, kafka://host:port or kinesis://")
