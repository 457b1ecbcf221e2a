"""Reading a topic's end offsets while no broker leads its partitions (one down, or restarting) is the
retryable error, not a plain failure: the stream processor stopped on librdkafka's "Failed to query
partition leaders: No leaders found" during a broker outage, where it rides through every other one."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import confluent_kafka as ck
import pytest

from pinpipe.errors import LogUnavailableError
from pinpipe.log.kafka import KafkaLog


class NoLeaders:
    """An admin client whose offset queries fail as librdkafka's do when no partition has a leader."""

    def list_offsets(self, requests: dict[Any, Any], request_timeout: float) -> dict[Any, Future[Any]]:
        failed: Future[Any] = Future()
        error = ck.KafkaError(ck.KafkaError._NOENT, "Failed to query partition leaders: No leaders found")
        failed.set_exception(ck.KafkaException(error))
        return dict.fromkeys(requests, failed)


def test_end_offsets_without_partition_leaders_are_unavailable_not_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = KafkaLog("kafka://127.0.0.1:9", timeout_s=2.0)
    monkeypatch.setattr(log, "_admin", NoLeaders())
    monkeypatch.setattr(log, "_listed", lambda: {"t": 2})
    with pytest.raises(LogUnavailableError, match="No leaders found"):
        log.end_offsets("t")
    log.close()
