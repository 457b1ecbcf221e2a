"""A producer librdkafka gives up on a real broker is replaced: with ``enable.gapless.guarantee`` a
permanent produce error (a record over the topic's ``max.message.bytes``, which the broker refuses) is a
fatal error of the idempotent producer, after which librdkafka refuses every record of that client."""

from __future__ import annotations

import time
import uuid

import pytest

from pinpipe.errors import LogUnavailableError
from pinpipe.log.base import OutgoingRecord
from pinpipe.log.kafka import KafkaLog

pytestmark = pytest.mark.kafka


def _keyed(*values: bytes, key: str) -> list[OutgoingRecord]:
    return [OutgoingRecord(v, idempotency_key=f"{key}:{i}", fingerprint="f") for i, v in enumerate(values)]


def test_an_append_after_the_producer_went_fatal_is_stored_by_a_new_producer(kafka_bootstrap: str) -> None:
    """The failed append's records share a batch, so their reports arrive together with the fatal error
    (the first one's callback runs with that error pending)."""
    gapless = {"enable.idempotence": True, "enable.gapless.guarantee": True}  # every client gets them
    log = KafkaLog(f"kafka://{kafka_bootstrap}", kafka=gapless)
    topic = f"fatal-{uuid.uuid4().hex[:10]}"
    try:
        log.create_topic(topic, 1, config={"max.message.bytes": "2000"})
        writer = log.writer()
        assert writer.append(topic, _keyed(b"before", key="a")) == [(0, 0)]
        with pytest.raises(LogUnavailableError, match="fatal") as failed:
            writer.append(topic, _keyed(b"q1", b"x" * 10_000, b"q2", key="b"))
        assert "may be stored" in str(failed.value)
        ((_, offset),) = writer.append(topic, _keyed(b"after", key="c"))
        assert writer.append(topic, _keyed(b"after", key="c")) == [(0, offset)]  # found by its key
        reader = log.reader(f"g-{uuid.uuid4().hex[:8]}", [topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while b"after" not in values and time.monotonic() < deadline:
            values.extend(r.value for r in reader.poll(10, 0.5))
        assert values[0] == b"before" and values[-1] == b"after" and len(values) == offset + 1
        assert b"x" * 10_000 not in values
    finally:
        log.close()
