"""The lake sink's options and what a run reports (split from sink.py, which holds the sink itself)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pinpipe.errors import ConfigError
from pinpipe.lake.formats import lake_format


@dataclass(frozen=True)
class SinkOptions:
    flush_size: int = 500
    rotate_interval_s: float = 0.0
    """Cut a file when record time reaches its first record's time + this (0: off)."""
    idle_flush_s: float = 5.0
    format: str = "json"
    max_object_bytes: int = 64 * 1024 * 1024
    """Cap on the value bytes of one file, so a large flush size cannot exhaust memory."""
    poll_records: int = 2000
    poll_timeout_s: float = 0.2
    put_queue: int = 4
    """Encoded objects waiting for the background put thread (0: put synchronously)."""
    commit_interval_s: float = 1.0
    """Commit group offsets at most this often (and always when stopping or caught up). Objects written
    but not yet committed are found in the lake on restart, so this trades no safety for fewer fsyncs."""
    commit_patience_s: float = 30.0
    """How long the last commit (caught up, or stopping) retries while the log cannot take it: on Kafka,
    a new group coordinator takes over some seconds after a broker dies."""

    def __post_init__(self) -> None:
        if self.flush_size < 1:
            raise ConfigError("lake flush_size must be at least 1")
        if self.rotate_interval_s < 0 or self.idle_flush_s < 0:
            raise ConfigError("lake rotate_interval_s and idle_flush_s must not be negative")
        if self.max_object_bytes < 1 or self.put_queue < 0:
            raise ConfigError("max_object_bytes must be at least 1 and put_queue not negative")
        lake_format(self.format)


@dataclass
class TopicSummary:
    objects: int = 0
    records: int = 0
    bytes: int = 0
    recovered_objects: int = 0
    """Objects found in the lake past the committed offset (written before a crash) and kept."""


@dataclass
class SinkSummary:
    topics: dict[str, TopicSummary] = field(default_factory=dict)
    stopped: bool = False
    """True when a stop request ended the run (not caught up)."""

    @property
    def objects(self) -> int:
        return sum(t.objects for t in self.topics.values())

    @property
    def records(self) -> int:
        return sum(t.records for t in self.topics.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.topics.values())
