"""Helpers for the ingestion API unit tests: apps on memory or embedded logs, sample records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pinpipe.config import ApiSettings, Settings
from pinpipe.ingest import create_app
from pinpipe.log.base import Log, Record
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import DEFAULT_PREFIX, stream_name, topic_name

KAFKA_JSON = {"Content-Type": "application/vnd.kafka.json.v2+json"}
PIN = topic_name(DEFAULT_PREFIX, "pin")
GEO = topic_name(DEFAULT_PREFIX, "geo")
USER = topic_name(DEFAULT_PREFIX, "user")
PIN_STREAM = stream_name(DEFAULT_PREFIX, "pin")
GEO_STREAM = stream_name(DEFAULT_PREFIX, "geo")

GEO_RECORD = {
    "ind": 7528,
    "timestamp": "2020-08-28 03:52:47",
    "latitude": -89.9787,
    "longitude": -173.293,
    "country": "Albania",
}
PIN_RECORD = {
    "index": 7528,
    "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf",
    "title": "No Title Data Available",
    "description": "No description available Story format",
    "poster_name": "User Info Error",
    "follower_count": "User Info Error",
    "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
    "is_image_or_video": "multi-video(story page format)",
    "image_src": "Image src error.",
    "downloaded": 0,
    "save_location": "Local save in /data/mens-fashion",
    "category": "mens-fashion",
}


def open_backend(name: str, settings: Settings) -> Log:
    if name == "memory":
        return MemoryLog(auto_create=False)
    return EmbeddedLog(f"embedded://{settings.workdir.resolve() / 'log'}")


def with_api(settings: Settings, **api: Any) -> Settings:
    """``settings`` with some ``api.*`` fields changed."""
    section = ApiSettings.model_validate({**settings.api.model_dump(), **api})
    return settings.model_copy(update={"api": section})


@contextmanager
def client_for(settings: Settings, log: Log, **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(settings, log=log)
    with TestClient(app, **kwargs) as client:
        yield client


def app_for(settings: Settings, log: Log) -> FastAPI:
    return create_app(settings, log=log)


def read_all(log: Log, topic: str) -> list[Record]:
    """Every record of ``topic``, by partition then offset (a fresh group reads from the start)."""
    reader = log.reader(f"test-{id(object())}", [topic])
    out: list[Record] = []
    while True:
        batch = reader.poll(10_000, 0.05)
        if not batch:
            break
        out.extend(batch)
    reader.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def total(log: Log, topic: str) -> int:
    return sum(log.end_offsets(topic).values())
