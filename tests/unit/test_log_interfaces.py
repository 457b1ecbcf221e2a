"""Every log backend is a :class:`~pinpipe.log.base.Log` whose writers and readers are LogWriter and
LogReader: mypy checks the assignments below structurally (``make check``), pytest that they import."""

from __future__ import annotations

from pinpipe.log.base import Log, LogReader, LogWriter
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.embedded.reader import EmbeddedLogReader
from pinpipe.log.embedded.writer import EmbeddedLogWriter
from pinpipe.log.kafka import KafkaLog
from pinpipe.log.kafka.group import KafkaGroupReader
from pinpipe.log.kafka.reader import KafkaLogReader
from pinpipe.log.kafka.writer import KafkaLogWriter
from pinpipe.log.kinesis import KinesisLog
from pinpipe.log.kinesis.io import KinesisLogReader, KinesisLogWriter
from pinpipe.log.memory import MemoryLog, MemoryLogReader, MemoryLogWriter


def _logs(embedded: EmbeddedLog, kafka: KafkaLog, kinesis: KinesisLog, memory: MemoryLog) -> list[Log]:
    return [embedded, kafka, kinesis, memory]


def _writers(
    embedded: EmbeddedLogWriter, kafka: KafkaLogWriter, kinesis: KinesisLogWriter, memory: MemoryLogWriter
) -> list[LogWriter]:
    return [embedded, kafka, kinesis, memory]


def _readers(
    embedded: EmbeddedLogReader,
    kafka: KafkaLogReader,
    group: KafkaGroupReader,
    kinesis: KinesisLogReader,
    memory: MemoryLogReader,
) -> list[LogReader]:
    return [embedded, kafka, group, kinesis, memory]


def test_every_backend_class_has_the_interface_methods() -> None:
    for cls, names in [
        ((EmbeddedLog, KafkaLog, KinesisLog, MemoryLog), ("writer", "reader", "create_topic", "end_offsets")),
        (
            (EmbeddedLogWriter, KafkaLogWriter, KinesisLogWriter, MemoryLogWriter),
            ("append", "flush", "close"),
        ),
        (
            (EmbeddedLogReader, KafkaLogReader, KafkaGroupReader, KinesisLogReader, MemoryLogReader),
            ("poll", "commit", "seek", "close"),
        ),
    ]:
        for backend in cls:
            assert all(callable(getattr(backend, name, None)) for name in names), backend
