"""Multi-record produce requests on a log with a committer: checked on the event loop a slice at a time,
the other connections served in between, with the same answer and the same stored records as the
threadpool path."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from pinpipe.config import Settings
from pinpipe.errors import ErrorCode
from pinpipe.ingest.idempotency import RequestKey
from pinpipe.ingest.metrics import ApiMetrics
from pinpipe.ingest.service import CHECK_SLICE, IngestService, Item
from pinpipe.log.embedded import EmbeddedLog
from tests.unit.api_support import KAFKA_JSON, PIN, PIN_RECORD, client_for, open_backend, read_all

COUNT = 3 * CHECK_SLICE + 7


def pins(count: int) -> list[dict[str, Any]]:
    """Pin records; every 37th lacks its identifying field and every 53rd names a missing partition,
    so refused records fall in every slice and across slice boundaries."""
    records = []
    for i in range(count):
        value = {**copy.deepcopy(PIN_RECORD), "index": i}
        if i % 37 == 5:
            del value["index"]
        record: dict[str, Any] = {"key": f"k{i}", "value": value}
        if i % 53 == 7:
            record["partition"] = 99
        records.append(record)
    return records


@pytest.fixture
def log(settings: Settings) -> Iterator[EmbeddedLog]:
    backend = open_backend("embedded", settings)
    assert isinstance(backend, EmbeddedLog)
    yield backend
    backend.close()


def test_a_large_request_is_checked_in_slices_with_other_tasks_served_between(
    settings: Settings, log: EmbeddedLog
) -> None:
    service = IngestService(settings, log, log, ApiMetrics())
    assert service.start()
    items = [Item({**copy.deepcopy(PIN_RECORD), "index": i}) for i in range(COUNT)]
    turns: list[int] = []

    async def main() -> int:
        assert service.can_produce_inline("topics", PIN)
        stop = asyncio.Event()

        async def other_connection() -> None:
            while not stop.is_set():
                turns.append(len(read_all(log, PIN)))
                await asyncio.sleep(0)

        other = asyncio.create_task(other_connection())
        await asyncio.sleep(0)
        outcomes = await service.produce_inline("topics", PIN, items, None)
        stop.set()
        await other
        return len(outcomes)

    try:
        assert asyncio.run(main()) == COUNT
    finally:
        service.close()
    # the other task ran between the slices, while nothing of the request was stored yet
    assert turns.count(0) > COUNT // CHECK_SLICE
    assert len(read_all(log, PIN)) == COUNT


def test_slices_answer_and_store_as_one_check_does(settings: Settings, log: EmbeddedLog) -> None:
    """Per-record errors, positions and idempotency ids do not depend on where the slices fall: a retry
    of the request through the threadpool path finds every record stored by the inline one."""
    service = IngestService(settings, log, log, ApiMetrics())
    assert service.start()
    body = orjson.dumps({"records": pins(COUNT)})
    key = RequestKey("anonymous", "retry-me", body)

    def items() -> list[Item]:
        return [
            Item(r["value"], r["key"].encode(), r.get("partition")) for r in orjson.loads(body)["records"]
        ]

    try:
        inline = asyncio.run(service.produce_inline("topics", PIN, items(), key))
        retried = service.produce("topics", PIN, items(), key)
    finally:
        service.close()
    assert retried == inline
    refused = [o for o in inline if o.error_code is not None]
    assert {o.error_code for o in refused} == {ErrorCode.INVALID, ErrorCode.RECORD_PARTITION_NOT_FOUND}
    assert len(read_all(log, PIN)) == COUNT - len(refused)


def test_a_500_record_request_stores_exactly_what_was_sent(settings: Settings, log: EmbeddedLog) -> None:
    records = pins(500)
    records[1]["value"]["weight"] = 0.5  # sent as 0.50 below: stored as sent, not as orjson writes it
    body = orjson.dumps({"records": records}).replace(b'"weight":0.5', b'"weight":0.50', 1)
    with client_for(settings, log) as client:
        response = client.post(f"/topics/{PIN}", content=body, headers=KAFKA_JSON)
    assert response.status_code == 200, response.text
    offsets = response.json()["offsets"]
    assert len(offsets) == 500
    stored = {r.key: r.value for r in read_all(log, PIN)}
    accepted = [(r, o) for r, o in zip(records, offsets, strict=True) if o["error_code"] is None]
    assert len(stored) == len(accepted)
    assert b'"weight":0.50' in stored[b"k1"]
    for record, _ in accepted:
        expected = orjson.dumps(record["value"])
        if "weight" in record["value"]:
            expected = expected.replace(b'"weight":0.5', b'"weight":0.50')
        assert stored[record["key"].encode()] == expected
