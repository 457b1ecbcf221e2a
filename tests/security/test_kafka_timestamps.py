"""A record timestamp a Kafka 4 broker refuses is the client's error, found before the append.

Kafka 4 refuses a record stamped more than ``log.message.timestamp.after.max.ms`` (default one hour)
after the broker's clock: the v3 produce of a timestamp in 2100 was a 500 / 50002 ("Broker: Invalid
timestamp"), with the whole append refused, the request's valid records included.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pinpipe.config import Settings, load_settings
from pinpipe.ingest import create_app
from pinpipe.log.kafka import KafkaLog
from pinpipe.schema import topic_name
from tests.unit.samples import GEO_RECORD

pytestmark = pytest.mark.kafka


@pytest.fixture
def client(kafka_bootstrap: str, settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    prefix = f"t{int(time.time() * 1000)}"  # topics of their own on the session's broker
    on_kafka = load_settings(
        workdir=settings.workdir, prefix=prefix, **{"log.url": f"kafka://{kafka_bootstrap}"}
    )
    log = KafkaLog(f"kafka://{kafka_bootstrap}", partitions=1)
    try:
        with TestClient(create_app(on_kafka, log=log)) as api:
            cluster = api.get("/v3/clusters").json()["data"][0]["cluster_id"]
            yield api, f"/v3/clusters/{cluster}/topics/{topic_name(prefix, 'geo')}/records"
    finally:
        log.close()


def entry(name: str, timestamp: str) -> dict[str, object]:
    return {"id": name, "value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": timestamp}


def test_a_timestamp_past_the_brokers_limit_fails_alone_as_the_clients_error(
    client: tuple[TestClient, str],
) -> None:
    api, records = client
    far = "2100-01-01T00:00:00Z"
    one = api.post(records, json={"value": {"type": "JSON", "data": GEO_RECORD}, "timestamp": far})
    assert one.status_code == 422 and one.json()["error_code"] == 42206, one.text
    assert "timestamp" in one.json()["message"]
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    batch = api.post(
        f"{records}:batch",
        json={"entries": [entry("old", "1970-01-01T00:00:00Z"), entry("far", far), entry("soon", soon)]},
    )
    assert batch.status_code == 207, batch.text
    assert sorted(s["id"] for s in batch.json()["successes"]) == ["old", "soon"]
    (failure,) = batch.json()["failures"]
    assert failure["id"] == "far" and failure["error_code"] == 42206
