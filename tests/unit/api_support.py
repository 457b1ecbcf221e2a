"""Helpers for the ingestion API unit tests: apps on memory or embedded logs, names, sample records.

The ``log`` (memory and embedded) and ``client`` fixtures are shared by the REST proxy and the Kinesis
tests, which import them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pinpipe.config import ApiSettings, Settings
from pinpipe.ingest import create_app
from pinpipe.locations import embedded_url
from pinpipe.log.base import Log, Record
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.log.memory import MemoryLog
from pinpipe.schema import DEFAULT_PREFIX, stream_name, topic_name
from tests.unit.samples import GEO_RECORD as GEO_RECORD  # re-exported for the API tests
from tests.unit.samples import PIN_RECORD as PIN_RECORD

KAFKA_JSON = {"Content-Type": "application/vnd.kafka.json.v2+json"}
PIN = topic_name(DEFAULT_PREFIX, "pin")
GEO = topic_name(DEFAULT_PREFIX, "geo")
USER = topic_name(DEFAULT_PREFIX, "user")
PIN_STREAM = stream_name(DEFAULT_PREFIX, "pin")
GEO_STREAM = stream_name(DEFAULT_PREFIX, "geo")


def open_backend(name: str, settings: Settings) -> Log:
    if name == "memory":
        return MemoryLog(auto_create=False)
    return EmbeddedLog(embedded_url(settings.workdir.resolve() / "log"))


def with_api(settings: Settings, **api: Any) -> Settings:
    """``settings`` with some ``api.*`` fields changed."""
    section = ApiSettings.model_validate({**settings.api.model_dump(), **api})
    return settings.model_copy(update={"api": section})


@contextmanager
def client_for(settings: Settings, log: Log, **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(settings, log=log)
    with TestClient(app, **kwargs) as client:
        yield client


@pytest.fixture(params=["memory", "embedded"])
def log(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Log]:
    backend = open_backend(request.param, settings)
    yield backend
    backend.close()


@pytest.fixture
def client(settings: Settings, log: Log) -> Iterator[TestClient]:
    with client_for(settings, log) as c:
        yield c


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


def write_keys_file(path: Path, keys: Mapping[str, tuple[str, str, str | None]]) -> Path:
    """A keys file (``api.keys_file``): ``[keys.NAME]`` for each ``NAME: (secret, prefix, role or None)``."""
    path.write_text(
        "".join(
            f'[keys.{name}]\nkey = "{secret}"\nprefixes = ["{prefix}"]\n'
            + (f'role = "{role}"\n' if role else "")
            for name, (secret, prefix, role) in keys.items()
        )
    )
    return path
