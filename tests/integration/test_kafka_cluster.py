"""KafkaLog on a three-broker cluster (``kafka_cluster``): replicated topics and the brokers it reports."""

from __future__ import annotations

import uuid

import pytest

from pinpipe.config import Settings
from pinpipe.log import open_settings_log
from pinpipe.log.kafka import KafkaLog, admin
from tests.services import InfraService

pytestmark = pytest.mark.kafka


def described(log: KafkaLog, topic: str) -> tuple[set[int], str]:
    """(replica counts of the topic's partitions, its min.insync.replicas)."""
    client = admin.AdminClient({"bootstrap.servers": log.common["bootstrap.servers"]})
    meta = client.list_topics(topic, timeout=10).topics[topic]
    resource = admin.ConfigResource(admin.ResourceType.TOPIC, topic)
    config = client.describe_configs([resource])[resource].result()
    return {len(p.replicas) for p in meta.partitions.values()}, config["min.insync.replicas"].value


def test_topics_on_three_brokers_get_three_replicas_and_min_insync_two(kafka_cluster: InfraService) -> None:
    assert kafka_cluster.endpoint is not None
    settings = Settings.model_validate({"log": {"url": f"kafka://{kafka_cluster.endpoint}"}})
    log = open_settings_log(settings)
    assert isinstance(log, KafkaLog)
    try:
        assert len(log.brokers()) == 3
        topic = f"rf-{uuid.uuid4().hex[:10]}"
        log.create_topic(topic, 3)
        assert described(log, topic) == ({3}, "2")
        writer = log.writer()
        assert writer.config["acks"] == "all" and writer.config["enable.idempotence"] is True
    finally:
        log.close()


def test_replication_settings_override_the_derived_ones(kafka_cluster: InfraService) -> None:
    log = KafkaLog(f"kafka://{kafka_cluster.endpoint}", replication_factor=2, min_insync_replicas=1)
    try:
        topic = f"rf-{uuid.uuid4().hex[:10]}"
        log.create_topic(topic, 2)
        assert described(log, topic) == ({2}, "1")
    finally:
        log.close()


def test_one_broker_gets_one_replica(kafka_log: KafkaLog) -> None:
    assert kafka_log.replication() == (1, 1)
    topic = f"rf-{uuid.uuid4().hex[:10]}"
    kafka_log.create_topic(topic, 1)
    assert described(kafka_log, topic) == ({1}, "1")
