"""The log: append-only, partitioned, offset-addressed topics with consumer groups.

``open_log(url)`` chooses the backend from the URL scheme:

- ``embedded:///path/to/dir`` : the embedded durable log on local disk (default, no server);
- ``kafka://host:port[,host:port]`` : Apache Kafka (needs ``pinpipe[kafka]``);
- ``kinesis://[region]`` : AWS Kinesis or a local endpoint (needs ``pinpipe[s3]``);
- ``memory://`` : in-process, for unit tests only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pinpipe.errors import ConfigError
from pinpipe.locations import scheme as url_scheme
from pinpipe.log.base import Log, LogAdmin, LogReader, LogWriter, OutgoingRecord, Record, TopicPartition

if TYPE_CHECKING:
    from pinpipe.config import Settings

__all__ = [
    "Log",
    "LogAdmin",
    "LogReader",
    "LogWriter",
    "OutgoingRecord",
    "Record",
    "TopicPartition",
    "open_log",
    "open_settings_log",
]


def open_log(url: str, **options: Any) -> Log:
    """Open the log at ``url``; ``options`` (e.g. ``partitions``) are passed to the backend."""
    scheme = url_scheme(url)
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


def open_settings_log(settings: Settings, url: str | None = None) -> Log:
    """Open ``url`` (default: the topics' log) with the options the settings give its backend: the
    partition count of topics it creates, and for Kafka the extra librdkafka settings (SASL/SSL)."""
    url = url or settings.log_url
    options: dict[str, Any] = {"partitions": settings.log.partitions}
    if url_scheme(url) == "kafka":
        if settings.log.kafka:
            options["kafka"] = dict(settings.log.kafka)
        options["replication_factor"] = settings.log.replication_factor
        options["min_insync_replicas"] = settings.log.min_insync_replicas
    return open_log(url, **options)
