"""Backends of the log contract suite.

``LOG_BACKENDS`` maps a parameter name to a factory taking the pytest ``request`` and returning an open
:class:`~pinpipe.log.base.Log`; ``LOG_MARKS`` gives a backend's parameter its marks. The suite runs on
the in-memory and embedded logs, on Kinesis (moto), on one Kafka broker and on a three-broker cluster
(the service fixtures of ``tests/services.py``). Another backend is one more factory and entry.

Every test uses fresh topic names, so backends that share one broker across tests are fine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from pinpipe.locations import embedded_url
from pinpipe.log.base import Log
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog


def _memory(request: pytest.FixtureRequest) -> Log:
    return MemoryLog(partitions=3, auto_create=False)


def _embedded(request: pytest.FixtureRequest) -> Log:
    tmp_path = request.getfixturevalue("tmp_path")
    return EmbeddedLog(embedded_url(tmp_path / "log"), partitions=3)


LOG_BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Log]] = {
    "memory": _memory,
    "embedded": _embedded,
}


LOG_MARKS: dict[str, list[pytest.MarkDecorator]] = {}


def _kinesis(request: pytest.FixtureRequest) -> Log:
    from pinpipe.log.kinesis import KinesisLog
    from tests.cloud import aws_environment

    endpoint = request.getfixturevalue("moto_endpoint")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in aws_environment(endpoint).items():  # credentials and region, as users set them
        monkeypatch.setenv(name, value)
    state = request.getfixturevalue("tmp_path") / "kinesis-state.db"
    return KinesisLog(f"kinesis://?endpoint={endpoint}&state={state}", partitions=3)


LOG_BACKENDS["kinesis"] = _kinesis
LOG_MARKS["kinesis"] = [pytest.mark.kinesis]


def _kafka(request: pytest.FixtureRequest) -> Log:
    from pinpipe.log.kafka import KafkaLog

    bootstrap = request.getfixturevalue("kafka_bootstrap")  # session broker from tests/services.py
    return KafkaLog(f"kafka://{bootstrap}", partitions=3)


LOG_BACKENDS["kafka"] = _kafka
LOG_MARKS["kafka"] = [pytest.mark.kafka]


def _kafka_cluster(request: pytest.FixtureRequest) -> Log:
    from pinpipe.log.kafka import KafkaLog

    cluster = request.getfixturevalue("kafka_cluster")  # three brokers, from tests/services.py
    return KafkaLog(f"kafka://{cluster.endpoint}", partitions=3)


LOG_BACKENDS["kafka3"] = _kafka_cluster
LOG_MARKS["kafka3"] = [pytest.mark.kafka]


@pytest.fixture(params=[pytest.param(name, marks=LOG_MARKS.get(name, [])) for name in LOG_BACKENDS])
def log_backend(request: pytest.FixtureRequest) -> Iterator[Log]:
    log = LOG_BACKENDS[request.param](request)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def new_topic(log_backend: Log) -> Callable[[int], str]:
    """Creates a topic with a fresh name and the given number of partitions, and returns the name."""

    def create(partitions: int = 3) -> str:
        name = f"contract-{uuid.uuid4().hex[:12]}"
        log_backend.create_topic(name, partitions)
        return name

    return create
