"""Lag per partition and events per second, from a real embedded log in a tmp workdir."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from pinpipe.config import Settings
from pinpipe.dashboard import create_dashboard_app
from pinpipe.dashboard.live import StatusSampler
from pinpipe.log import OutgoingRecord, open_log
from pinpipe.schema import stream_name, topic_name


def fill_log(settings: Settings, pins: int, geos: int) -> None:
    log = open_log(settings.log_url, partitions=2)
    try:
        pin, geo = stream_name(settings.prefix, "pin"), topic_name(settings.prefix, "geo")
        log.create_topic(pin, 2)
        log.create_topic(geo, 2)
        log.create_topic("otherprefix.pin", 1)
        writer = log.writer()
        writer.append(pin, [OutgoingRecord(value=b"{}", partition=i % 2) for i in range(pins)])
        writer.append(geo, [OutgoingRecord(value=b"{}", partition=0) for _ in range(geos)])
        writer.close()
        reader = log.reader("pinpipe-stream", [pin])
        reader.commit({(pin, 0): 1})
        reader.close()
    finally:
        log.close()


def test_lag_per_partition_and_group(settings: Settings) -> None:
    fill_log(settings, pins=6, geos=4)
    status = TestClient(create_dashboard_app(settings)).get("/api/status").json()
    assert status["available"] is True
    rows = {(r["topic"], r["partition"], r["group"]): r for r in status["partitions"]}
    pin, geo = stream_name(settings.prefix, "pin"), topic_name(settings.prefix, "geo")
    assert rows[(pin, 0, "pinpipe-stream")] == {
        "topic": pin,
        "partition": 0,
        "end_offset": 3,
        "group": "pinpipe-stream",
        "committed": 1,
        "lag": 2,
    }
    # a partition the group never committed: it would start at 0, so everything is lag
    assert rows[(pin, 1, "pinpipe-stream")]["lag"] == 3
    # no group on geo: end offsets only
    assert rows[(geo, 0, None)]["end_offset"] == 4 and rows[(geo, 0, None)]["lag"] is None
    assert not any(r["topic"].startswith("otherprefix") for r in status["partitions"])


def test_events_per_second_from_end_offsets_between_samples(settings: Settings) -> None:
    fill_log(settings, pins=2, geos=0)
    sampler = StatusSampler(settings, window_s=30)
    first = {r.stream: r for r in sampler.status().rates}
    assert first[stream_name(settings.prefix, "pin")].events == 0
    time.sleep(0.2)
    log = open_log(settings.log_url)
    writer = log.writer()
    writer.append(stream_name(settings.prefix, "pin"), [OutgoingRecord(value=b"{}")] * 10)
    writer.close()
    log.close()
    second = {r.stream: r for r in sampler.status().rates}
    rate = second[stream_name(settings.prefix, "pin")]
    assert rate.events == 10
    assert 10 / 2.0 < rate.events_per_second <= 10 / 0.2
    assert second[topic_name(settings.prefix, "geo")].events_per_second == 0
